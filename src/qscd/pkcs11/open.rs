//! Opening a `Pkcs11Qscd`: attaching to the token by label and logging in, with patience for
//! a token that is not there or not answering yet (`open_within`), and initialising a new
//! token (`init_token`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::super::QscdError;
use super::super::pool::Pool;
use super::errors::{is_transient, map_ck, rv};
use super::module::{ModuleUse, context, rescan};
use super::objects::{find_slot, login};
use super::{INDEX_MAX_KEYS, OPEN_PATIENCE, Pkcs11Config, Pkcs11Qscd};

/// Why one try at opening the token failed.
enum Attach {
    /// Worth another look (see `is_transient`).
    NotYet(QscdError),
    /// Retrying will not help.
    Fatal(QscdError),
}

impl Attach {
    fn of(e: CkError) -> Self {
        if is_transient(&e) {
            Attach::NotYet(map_ck(e))
        } else {
            Attach::Fatal(map_ck(e))
        }
    }
}

impl Pkcs11Qscd {
    /// Load the module, find the token by label and log in once, waiting up to
    /// [`OPEN_PATIENCE`] for a token that is missing or not answering yet.
    pub fn open(cfg: &Pkcs11Config) -> Result<Self, QscdError> {
        Self::open_within(cfg, OPEN_PATIENCE)
    }

    /// `open`, giving up after `patience`. While the labelled token is missing or the module
    /// answers with a device-level error (an HSM still starting, a network HSM not reachable
    /// yet, SoftHSM2 catching another process writing its token file), it looks again with
    /// growing pauses, re-reading the module's tokens each time when nothing else in the
    /// process uses the module. A wrong or locked PIN fails at once: retrying it would use up
    /// the token's tries.
    pub fn open_within(cfg: &Pkcs11Config, patience: Duration) -> Result<Self, QscdError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let error = match Self::attach(cfg) {
                Ok((ctx, slot, session, module_use)) => {
                    return Ok(Pkcs11Qscd {
                        pool: Pool::new(ctx, slot, cfg.pin.clone(), cfg.max_sessions, session),
                        pin: cfg.pin.clone(),
                        handles: Mutex::new(HashMap::new()),
                        indexed: AtomicBool::new(false),
                        index_max: INDEX_MAX_KEYS,
                        objects: Mutex::new(()),
                        _module: module_use,
                    });
                }
                Err(Attach::Fatal(e)) => return Err(e),
                Err(Attach::NotYet(e)) => e,
            };
            if start.elapsed() + pause > patience {
                return Err(error);
            }
            tracing::warn!(
                token = %cfg.token_label,
                error = %error,
                retry_in_ms = pause.as_millis() as u64,
                "token not ready; looking again"
            );
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
            rescan(&cfg.module)?;
        }
    }

    /// One try at finding the token and logging in. Counts as a user of the module from the
    /// start, so that no other thread's rescan closes the session it opens.
    fn attach(cfg: &Pkcs11Config) -> Result<(Pkcs11, Slot, Session, ModuleUse), Attach> {
        let ctx = context(&cfg.module).map_err(Attach::Fatal)?;
        let module_use = ModuleUse::new(&cfg.module);
        let slot = find_slot(&ctx, &cfg.token_label)
            .map_err(Attach::of)?
            .ok_or_else(|| {
                Attach::NotYet(QscdError::Config(format!(
                    "no initialised token labelled {:?}",
                    cfg.token_label
                )))
            })?;
        let session = ctx.open_rw_session(slot).map_err(Attach::of)?;
        login(&session, &cfg.pin).map_err(|e| {
            // CKR_USER_PIN_NOT_INITIALIZED too: SoftHSM2 reads the user PIN's record once, when
            // the module is initialised, and every C_Login of another process rewrites the token
            // file, which reads as empty for a moment. A module initialised then says "not
            // initialised" until it is initialised again (the retry's rescan). No PIN is tried,
            // so no try is used up; a token whose PIN really is not set fails after the patience.
            let transient = is_transient(&e) || rv(&e) == Some(RvError::UserPinNotInitialized);
            let e = QscdError::Config(format!("login to token {:?} failed: {e}", cfg.token_label));
            if transient {
                Attach::NotYet(e)
            } else {
                Attach::Fatal(e)
            }
        })?;
        Ok((ctx, slot, session, module_use))
    }

    /// Initialise a token labelled `label` on a free slot (SoftHSM2 always offers one) and set
    /// its user PIN. `Ok(false)` when such a token exists already. Shares the process-wide
    /// context, so `open` may follow in the same process.
    pub fn init_token(
        module: &Path,
        label: &str,
        so_pin: &SecretString,
        user_pin: &SecretString,
    ) -> Result<bool, QscdError> {
        static INIT: Mutex<()> = Mutex::new(());
        let _serialised = INIT.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = context(module)?;
        if find_slot(&ctx, label).map_err(map_ck)?.is_some() {
            return Ok(false);
        }
        let mut free = None;
        for slot in ctx.get_slots_with_token().map_err(map_ck)? {
            if !ctx
                .get_token_info(slot)
                .map_err(map_ck)?
                .token_initialized()
            {
                free = Some(slot);
                break;
            }
        }
        let slot = free.ok_or_else(|| QscdError::Config("no free slot for a new token".into()))?;
        ctx.init_token(slot, so_pin, label).map_err(map_ck)?;
        let slot = find_slot(&ctx, label).map_err(map_ck)?.unwrap_or(slot);
        let session = ctx.open_rw_session(slot).map_err(map_ck)?;
        session.login(UserType::So, Some(so_pin)).map_err(map_ck)?;
        session.init_pin(user_pin).map_err(map_ck)?;
        session.logout().map_err(map_ck)?;
        Ok(true)
    }
}
