//! The `Qscd` over a PKCS#11 token with cryptoki. One `Pkcs11` context per module per process
//! (C_Initialize once; again at start-up only, to look afresh for a token that was not there),
//! the token found by label (SoftHSM2 renumbers slots), one login for the
//! life of the process (the pool never closes its last healthy session), cached key handles (the
//! first miss indexes every private key on the token at once), and one retry after session loss,
//! logout or a stale handle.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use der::{Decode, Encode};
use rand::RngCore;
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::pool::Pool;
use super::{KeySpec, Qscd, QscdError, SignMechanism};
use crate::crypto::HashAlg;

/// Label of the AES key that seals TOTP secrets.
pub const SEAL_KEY_LABEL: &str = "quill-seal-key";
/// Label of the HMAC key behind `derive_secret`.
pub const MAC_KEY_LABEL: &str = "quill-mac-key";
const IV_LEN: usize = 12;

/// How to reach the token.
#[derive(Clone)]
pub struct Pkcs11Config {
    pub module: PathBuf,
    pub token_label: String,
    pub pin: SecretString,
    pub max_sessions: usize,
}

pub struct Pkcs11Qscd {
    pool: Pool,
    pin: SecretString,
    handles: Mutex<HashMap<Vec<u8>, ObjectHandle>>,
    /// Whether the token's private keys were indexed into `handles` (or found too many to).
    indexed: AtomicBool,
    /// Most private keys the index reads the CKA_ID of ([`INDEX_MAX_KEYS`]).
    index_max: usize,
    /// Token objects are created and destroyed one at a time: SoftHSM2's file object store
    /// fails concurrent `C_GenerateKeyPair` / `C_CreateObject` calls now and then with
    /// CKR_GENERAL_ERROR (SoftHSMv2 #573), and the sealing key's find-or-create must not run
    /// twice at once (two sealing keys under one label would leave secrets sealed under the one
    /// later lookups do not find). This does not make whole enrolments safe in parallel: a key
    /// generation that meets a sign or a seal in another thread still fails now and then in
    /// SoftHSM2, so enrolments in one process run one after the other. Creating objects is
    /// enrolment's business, never the signing path's.
    objects: Mutex<()>,
    /// Keeps the module from being rescanned under the pool's sessions; dropped last.
    _module: ModuleUse,
}

/// How long `Pkcs11Qscd::open` waits for a token that is not there or not answering yet.
pub const OPEN_PATIENCE: Duration = Duration::from_secs(10);

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

/// A token with more private keys than this is not indexed: one CKA_ID read per key would cost
/// a network HSM a round trip each, and such HSMs find one key by CKA_ID quickly anyway.
const INDEX_MAX_KEYS: usize = 4096;

/// An operation's error: cryptoki's, or ours.
enum OpError {
    Ck(CkError),
    Q(QscdError),
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        OpError::Ck(e)
    }
}

impl From<QscdError> for OpError {
    fn from(e: QscdError) -> Self {
        OpError::Q(e)
    }
}

fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// Errors after which the operation is worth another try on a fresh or re-logged-in session
/// (network HSMs report a lost link as a device error or a removed token). Not
/// CKR_GENERAL_ERROR: SoftHSM2 answers a failed GCM tag check with it.
fn is_session_level(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::UserNotLoggedIn
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
        )
    )
}

fn map_ck(e: CkError) -> QscdError {
    match rv(&e) {
        Some(
            RvError::DataLenRange
            | RvError::ArgumentsBad
            | RvError::DataInvalid
            | RvError::MechanismParamInvalid
            | RvError::MechanismInvalid
            | RvError::KeyTypeInconsistent
            | RvError::KeyFunctionNotPermitted,
        ) => QscdError::BadInput(e.to_string()),
        _ => QscdError::Device(e.to_string()),
    }
}

/// A loaded module: its context (C_Initialize happens once per process, and again only on a
/// rescan) and how many open `Pkcs11Qscd` use it.
struct Module {
    ctx: Pkcs11,
    users: usize,
}

fn modules() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Module>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Module>>> = OnceLock::new();
    MODULES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn initialize(ctx: &Pkcs11) -> Result<(), QscdError> {
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| QscdError::Config(format!("C_Initialize failed: {e}")))
}

/// The process-wide context for a module.
fn context(module: &Path) -> Result<Pkcs11, QscdError> {
    let mut map = modules();
    if let Some(m) = map.get(module) {
        return Ok(m.ctx.clone());
    }
    let ctx = Pkcs11::new(module)
        .map_err(|e| QscdError::Config(format!("cannot load {}: {e}", module.display())))?;
    initialize(&ctx)?;
    map.insert(
        module.to_path_buf(),
        Module {
            ctx: ctx.clone(),
            users: 0,
        },
    );
    Ok(ctx)
}

/// C_Finalize and C_Initialize the module again, so that it reads its tokens afresh (SoftHSM2
/// reads its token directory only at C_Initialize, and skips a token whose files it caught
/// half-written by another process). Only while no open `Pkcs11Qscd` of this process uses the
/// module (C_Finalize closes every session); `false` when one does.
fn rescan(module: &Path) -> Result<bool, QscdError> {
    let map = modules();
    let Some(m) = map.get(module) else {
        return Ok(false);
    };
    if m.users > 0 {
        return Ok(false);
    }
    if let Err(e) = m.ctx.clone().finalize() {
        tracing::debug!(error = %e, "C_Finalize before a rescan");
    }
    initialize(&m.ctx)?;
    Ok(true)
}

/// Counts one user of a module for as long as it lives (the last field of `Pkcs11Qscd`, so it
/// goes after the sessions).
struct ModuleUse(PathBuf);

impl ModuleUse {
    fn new(module: &Path) -> Self {
        if let Some(m) = modules().get_mut(module) {
            m.users += 1;
        }
        ModuleUse(module.to_path_buf())
    }
}

impl Drop for ModuleUse {
    fn drop(&mut self) {
        if let Some(m) = modules().get_mut(&self.0) {
            m.users = m.users.saturating_sub(1);
        }
    }
}

/// Errors at start-up that mean "not there yet" rather than "wrong": the token is missing,
/// unreadable for a moment, or the device is not answering: the session-level errors, and the
/// general and slot errors SoftHSM2 gives while another process writes its files. Never a PIN
/// error (a retried wrong PIN would use up the token's tries).
fn is_transient(e: &CkError) -> bool {
    is_session_level(e)
        || matches!(
            rv(e),
            Some(
                RvError::GeneralError
                    | RvError::TokenNotRecognized
                    | RvError::SlotIdInvalid
                    | RvError::CryptokiNotInitialized
            )
        )
}

fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Option<Slot>, CkError> {
    for slot in ctx.get_slots_with_token()? {
        let info = ctx.get_token_info(slot)?;
        if info.token_initialized() && info.label().trim_end() == label {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

pub(super) fn login(session: &Session, pin: &SecretString) -> Result<(), CkError> {
    match session.login(UserType::User, Some(pin)) {
        Err(e) if rv(&e) == Some(RvError::UserAlreadyLoggedIn) => Ok(()),
        other => other,
    }
}

fn curve_params(spec: KeySpec) -> Result<Vec<u8>, QscdError> {
    let oid = match spec {
        KeySpec::EcP256 => const_oid::db::rfc5912::SECP_256_R_1,
        KeySpec::EcP384 => const_oid::db::rfc5912::SECP_384_R_1,
        KeySpec::Rsa { .. } => return Err(QscdError::BadInput("not an EC key".into())),
    };
    oid.to_der().map_err(|e| QscdError::Device(e.to_string()))
}

fn hash_mech(h: HashAlg) -> (MechanismType, PkcsMgfType) {
    match h {
        HashAlg::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        HashAlg::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        HashAlg::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
    }
}

/// The SEC1 bytes of a `CKA_EC_POINT` on a curve of `field_len`-byte coordinates. PKCS#11
/// says a DER OCTET STRING, and SoftHSM2 and kryoptic answer so; some tokens answer the bare
/// SEC1 point (PKCS#11 3.x's form for Edwards and Montgomery keys). An uncompressed point begins
/// with 0x04, the OCTET STRING tag, and parses as DER whenever its next byte happens to equal
/// the length of the rest (1 key in 256), so the bare form is recognised by its length first.
pub(super) fn ec_point_bytes(point: Vec<u8>, field_len: usize) -> Vec<u8> {
    if point.len() == 1 + 2 * field_len && point.first() == Some(&0x04) {
        return point;
    }
    der::asn1::OctetString::from_der(&point)
        .map(|o| o.into_bytes())
        .unwrap_or(point)
}

/// DER SPKI of a public key object.
fn spki_of(session: &Session, public: ObjectHandle) -> Result<Vec<u8>, OpError> {
    use rsa::pkcs8::EncodePublicKey;
    let attrs = session.get_attributes(
        public,
        &[
            AttributeType::KeyType,
            AttributeType::Modulus,
            AttributeType::PublicExponent,
            AttributeType::EcParams,
            AttributeType::EcPoint,
        ],
    )?;
    let (mut kt, mut n, mut e, mut params, mut point) = (None, None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(k) => kt = Some(k),
            Attribute::Modulus(v) => n = Some(v),
            Attribute::PublicExponent(v) => e = Some(v),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    let bad = |m: &str| OpError::Q(QscdError::Device(m.to_string()));
    let der = if kt == Some(KeyType::RSA) {
        let (n, e) = n.zip(e).ok_or_else(|| bad("RSA key without modulus"))?;
        rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&n),
            rsa::BigUint::from_bytes_be(&e),
        )
        .map_err(|e| bad(&e.to_string()))?
        .to_public_key_der()
        .map_err(|e| bad(&e.to_string()))?
        .into_vec()
    } else {
        let (params, point) = params
            .zip(point)
            .ok_or_else(|| bad("EC key without point"))?;
        if params == curve_params(KeySpec::EcP256)? {
            let raw = ec_point_bytes(point, 32);
            p256::PublicKey::from_sec1_bytes(&raw)
                .map_err(|e| bad(&e.to_string()))?
                .to_public_key_der()
        } else if params == curve_params(KeySpec::EcP384)? {
            let raw = ec_point_bytes(point, 48);
            p384::PublicKey::from_sec1_bytes(&raw)
                .map_err(|e| bad(&e.to_string()))?
                .to_public_key_der()
        } else {
            return Err(bad("unsupported curve"));
        }
        .map_err(|e| bad(&e.to_string()))?
        .into_vec()
    };
    Ok(der)
}

fn first(session: &Session, template: &[Attribute]) -> Result<Option<ObjectHandle>, CkError> {
    Ok(session.find_objects(template)?.into_iter().next())
}

/// The template that finds every private key on the token that is finished being made: with
/// `CKA_TOKEN` true. Reading an attribute of an object (C_GetAttributeValue) is safe only on
/// those: SoftHSM2's file store makes a key by writing its file once per default attribute
/// (`CKA_TOKEN` false among them) and then once with the caller's template (`CKA_TOKEN` true,
/// `CKA_ID`, ...), and another process that reads an attribute of such a half-made object
/// "completes" it with default values in its own copy and writes that copy back over the
/// file. When that write lands last, the key is lost: its file holds a default-valued,
/// unreadable object, while the enrolment that made it succeeded and stored its credential
/// (signHash then failed with 500, "credential key missing from token").
fn made_private_keys() -> [Attribute; 2] {
    [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Token(true),
    ]
}

/// Every private key on the token with its CKA_ID (keys without one are left out); nothing
/// when there are more than `max`. Keys another process is still making are left out (see
/// [`made_private_keys`]); they are found later by their CKA_ID.
fn private_key_ids(session: &Session, max: usize) -> Result<Vec<(Vec<u8>, ObjectHandle)>, CkError> {
    let keys = session.find_objects(&made_private_keys())?;
    if keys.len() > max {
        tracing::info!(
            keys = keys.len(),
            max,
            "too many private keys to index; each is found on first use"
        );
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(keys.len());
    for h in keys {
        for attribute in session.get_attributes(h, &[AttributeType::Id])? {
            if let Attribute::Id(id) = attribute {
                out.push((id, h));
            }
        }
    }
    Ok(out)
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

    /// Sessions currently open.
    pub fn open_sessions(&self) -> usize {
        self.pool.open_sessions()
    }

    /// Run `op` on a pooled session. After a lost login, a lost session (all idle sessions are
    /// closed with it and new ones logged in) or a stale cached handle, the operation is tried
    /// again, at most `ATTEMPTS` times in all; a token that keeps failing gives the last error.
    fn with_session<T>(&self, op: impl Fn(&Session) -> Result<T, OpError>) -> Result<T, QscdError> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            let lease = self.pool.acquire()?;
            let session = lease
                .session()
                .ok_or_else(|| QscdError::Device("empty lease".into()))?;
            let err = match op(session) {
                Ok(v) => return Ok(v),
                Err(OpError::Q(e)) => return Err(e),
                Err(OpError::Ck(e)) => e,
            };
            if attempt >= ATTEMPTS || !is_session_level(&err) {
                if is_session_level(&err) {
                    // Do not hand a session in an unknown state to the next caller.
                    lease.discard();
                }
                return Err(map_ck(err));
            }
            attempt += 1;
            match rv(&err) {
                Some(RvError::UserNotLoggedIn) => {
                    tracing::warn!("token session not logged in; logging in again");
                    login(session, &self.pin).map_err(map_ck)?;
                }
                Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid) => {
                    self.forget_handles();
                }
                _ => {
                    tracing::warn!(error = %err, "token session lost; re-opening sessions");
                    lease.discard();
                    self.pool.reset();
                    self.forget_handles();
                }
            }
        }
    }

    fn lock_handles(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, ObjectHandle>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hold while creating or destroying token objects (see `objects`).
    fn lock_objects(&self) -> std::sync::MutexGuard<'_, ()> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drop every cached handle (stale after a session loss or an invalid-handle error).
    fn forget_handles(&self) {
        let mut handles = self.lock_handles();
        handles.clear();
        self.indexed.store(false, Ordering::Release);
    }

    /// How many key handles are cached (tests).
    #[cfg(test)]
    pub(crate) fn cached_handles(&self) -> usize {
        self.lock_handles().len()
    }

    /// The same with another index limit (tests).
    #[cfg(test)]
    pub(crate) fn with_index_max(mut self, index_max: usize) -> Self {
        self.index_max = index_max;
        self
    }

    /// A private key's handle, cached. The first miss indexes every private key on the token:
    /// a find by CKA_ID costs a pass over all the token's objects in SoftHSM2 (6 ms with 170 key
    /// pairs), so finding each key on its first use would pay that pass once per key, while one
    /// find by class and a CKA_ID read per key (17 ms for those 170) pays it once. Later misses (a key made
    /// since by another process, such as `quill enroll`) fall back to the find by CKA_ID.
    fn private_key(&self, session: &Session, id: &[u8]) -> Result<ObjectHandle, OpError> {
        if let Some(h) = self.lock_handles().get(id) {
            return Ok(*h);
        }
        if !self.indexed.swap(true, Ordering::AcqRel) {
            let all = private_key_ids(session, self.index_max).inspect_err(|_| {
                self.indexed.store(false, Ordering::Release);
            })?;
            let mut handles = self.lock_handles();
            for (key_id, h) in all {
                handles.entry(key_id).or_insert(h);
            }
            if let Some(h) = handles.get(id) {
                return Ok(*h);
            }
        }
        let h = first(
            session,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(id.to_vec()),
            ],
        )?
        .ok_or(QscdError::KeyNotFound)?;
        self.lock_handles().insert(id.to_vec(), h);
        Ok(h)
    }

    /// The sealing key's handle (AES-256), created on first use. It seals and unseals,
    /// nothing else.
    fn seal_key(&self, session: &Session) -> Result<ObjectHandle, OpError> {
        self.secret_key(session, SEAL_KEY_LABEL, |session, class, label| {
            session.generate_key(
                &Mechanism::AesKeyGen,
                &[
                    class,
                    label,
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Sign(false),
                    Attribute::Verify(false),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Derive(false),
                ],
            )
        })
    }

    /// The key of `derive_secret` (a 256-bit generic secret for HMAC-SHA256), created on
    /// first use. It computes MACs, nothing else.
    fn mac_key(&self, session: &Session) -> Result<ObjectHandle, OpError> {
        self.secret_key(session, MAC_KEY_LABEL, |session, class, label| {
            session.generate_key(
                &Mechanism::GenericSecretKeyGen,
                &[
                    class,
                    label,
                    Attribute::KeyType(KeyType::GENERIC_SECRET),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                    Attribute::Verify(false),
                    Attribute::Encrypt(false),
                    Attribute::Decrypt(false),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Derive(false),
                ],
            )
        })
    }

    /// A secret key of Quill's own by label: cached, else found, else made by `make` (given
    /// the class and label attributes), one maker at a time in this process (across processes
    /// `tsa::ensure_objects` makes them under the database's writer lock).
    fn secret_key(
        &self,
        session: &Session,
        label: &str,
        make: impl FnOnce(&Session, Attribute, Attribute) -> cryptoki::error::Result<ObjectHandle>,
    ) -> Result<ObjectHandle, OpError> {
        let cache_key = label.as_bytes().to_vec();
        if let Some(h) = self.lock_handles().get(&cache_key) {
            return Ok(*h);
        }
        let _one_at_a_time = self.lock_objects();
        if let Some(h) = self.lock_handles().get(&cache_key) {
            return Ok(*h);
        }
        let label = Attribute::Label(label.as_bytes().to_vec());
        let class = Attribute::Class(ObjectClass::SECRET_KEY);
        let h = match first(session, &[class.clone(), label.clone()])? {
            Some(h) => h,
            None => make(session, class, label)?,
        };
        self.lock_handles().insert(cache_key, h);
        Ok(h)
    }
}

impl Qscd for Pkcs11Qscd {
    fn generate_key_pair(
        &self,
        spec: KeySpec,
        id: &[u8],
        label: &str,
    ) -> Result<Vec<u8>, QscdError> {
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Id(id.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
            ]
        };
        // A signing key signs and does nothing else: SoftHSM2's defaults would also let it
        // decrypt, unwrap and sign-recover for anyone holding the token PIN.
        let mut public = common(false);
        public.extend([
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::VerifyRecover(false),
        ]);
        let mut private = common(true);
        private.extend([
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::SignRecover(false),
            Attribute::Derive(false),
        ]);
        let (mech, extra) = match spec {
            KeySpec::Rsa { bits } => (
                Mechanism::RsaPkcsKeyPairGen,
                vec![
                    Attribute::ModulusBits(u64::from(bits).into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                ],
            ),
            KeySpec::EcP256 | KeySpec::EcP384 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(curve_params(spec)?)],
            ),
        };
        public.extend(extra);
        self.with_session(|s| {
            let (pubh, privh) = {
                let _one_at_a_time = self.lock_objects();
                s.generate_key_pair(&mech, &public, &private)?
            };
            let spki = spki_of(s, pubh)?;
            self.lock_handles().insert(id.to_vec(), privh);
            Ok(spki)
        })
    }

    fn public_key(&self, id: &[u8]) -> Result<Vec<u8>, QscdError> {
        self.with_session(|s| {
            let h = first(
                s,
                &[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::Id(id.to_vec()),
                ],
            )?
            .ok_or(QscdError::KeyNotFound)?;
            spki_of(s, h)
        })
    }

    fn sign(
        &self,
        id: &[u8],
        mechanism: SignMechanism,
        inputs: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, QscdError> {
        self.with_session(|s| {
            let key = self.private_key(s, id)?;
            // Mechanism is neither Send nor Sync: build it on the thread that signs.
            let mech = match mechanism {
                SignMechanism::RsaPkcs1 => Mechanism::RsaPkcs,
                SignMechanism::Ecdsa => Mechanism::Ecdsa,
                SignMechanism::RsaPss {
                    hash,
                    mgf_hash,
                    salt_len,
                } => Mechanism::RsaPkcsPss(PkcsPssParams {
                    hash_alg: hash_mech(hash).0,
                    mgf: hash_mech(mgf_hash).1,
                    s_len: salt_len.into(),
                }),
            };
            let mut out = Vec::with_capacity(inputs.len());
            for input in inputs {
                out.push(s.sign(&mech, key, input)?);
            }
            Ok(out)
        })
    }

    fn destroy_key_pair(&self, id: &[u8]) -> Result<(), QscdError> {
        self.lock_handles().remove(id);
        self.with_session(|s| {
            let _one_at_a_time = self.lock_objects();
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                for h in s.find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])? {
                    s.destroy_object(h)?;
                }
            }
            Ok(())
        })
    }

    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, QscdError> {
        self.with_session(|s| {
            let key = self.seal_key(s)?;
            let mut iv = [0u8; IV_LEN];
            rand::rng().fill_bytes(&mut iv);
            let mut iv_param = iv;
            let params = GcmParams::new(&mut iv_param, aad, 128.into())?;
            let ct = s.encrypt(&Mechanism::AesGcm(params), key, plaintext)?;
            let mut out = iv.to_vec();
            out.extend_from_slice(&ct);
            Ok(out)
        })
    }

    fn derive_secret(&self, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, QscdError> {
        self.with_session(|s| {
            let key = self.mac_key(s)?;
            Ok(Zeroizing::new(s.sign(
                &Mechanism::Sha256Hmac,
                key,
                context,
            )?))
        })
    }

    fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, QscdError> {
        let (iv, ct) = sealed.split_at_checked(IV_LEN).ok_or(QscdError::Unseal)?;
        self.with_session(|s| {
            let key = self.seal_key(s)?;
            let mut iv: [u8; IV_LEN] = iv.try_into().map_err(|_| OpError::Q(QscdError::Unseal))?;
            let params = GcmParams::new(&mut iv, aad, 128.into())?;
            match s.decrypt(&Mechanism::AesGcm(params), key, ct) {
                Ok(pt) => Ok(Zeroizing::new(pt)),
                // Session-level trouble is retried by `with_session`; anything else from a
                // GCM decryption (SoftHSM2 says CKR_GENERAL_ERROR) means it did not authenticate.
                Err(e) if is_session_level(&e) => Err(OpError::Ck(e)),
                Err(_) => Err(OpError::Q(QscdError::Unseal)),
            }
        })
    }

    fn put_certificate(&self, id: &[u8], label: &str, der: &[u8]) -> Result<(), QscdError> {
        use der::{Decode as _, Encode as _};
        let subject = x509_cert::Certificate::from_der(der)
            .and_then(|cert| cert.tbs_certificate.subject.to_der())
            .map_err(|e| QscdError::BadInput(format!("not a certificate: {e}")))?;
        self.with_session(|s| {
            let _one_at_a_time = self.lock_objects();
            s.create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Id(id.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Subject(subject.clone()),
                Attribute::Value(der.to_vec()),
            ])?;
            Ok(())
        })
    }

    fn find_certificate(&self, label: &str) -> Result<Option<Vec<u8>>, QscdError> {
        self.with_session(|s| {
            let Some(h) = first(
                s,
                &[
                    Attribute::Class(ObjectClass::CERTIFICATE),
                    Attribute::Label(label.as_bytes().to_vec()),
                ],
            )?
            else {
                return Ok(None);
            };
            for a in s.get_attributes(h, &[AttributeType::Value])? {
                if let Attribute::Value(v) = a {
                    return Ok(Some(v));
                }
            }
            Ok(None)
        })
    }

    fn has_key(&self, id: &[u8]) -> Result<bool, QscdError> {
        self.with_session(|s| match self.private_key(s, id) {
            Ok(_) => Ok(true),
            Err(OpError::Q(QscdError::KeyNotFound)) => Ok(false),
            Err(e) => Err(e),
        })
    }

    fn key_ids_labelled(&self, label_prefix: &str) -> Result<Vec<Vec<u8>>, QscdError> {
        // Only finished keys: reading a half-made one can destroy it (`made_private_keys`).
        self.with_session(|s| {
            let mut out = Vec::new();
            for h in s.find_objects(&made_private_keys())? {
                let (mut id, mut label) = (None, None);
                for a in s.get_attributes(h, &[AttributeType::Id, AttributeType::Label])? {
                    match a {
                        Attribute::Id(v) => id = Some(v),
                        Attribute::Label(v) => label = Some(v),
                        _ => {}
                    }
                }
                if let (Some(id), Some(label)) = (id, label)
                    && label.starts_with(label_prefix.as_bytes())
                {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }

    fn check(&self) -> Result<(), QscdError> {
        self.with_session(|s| Ok(s.get_session_info().map(|_| ())?))
    }
}

impl std::fmt::Debug for Pkcs11Qscd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Qscd").finish_non_exhaustive()
    }
}

#[cfg(test)]
impl Pkcs11Qscd {
    /// Run raw cryptoki calls on a pooled session (tests only).
    pub(crate) fn with_session_for_tests<T>(&self, f: impl FnOnce(&Session) -> T) -> T {
        let lease = self.pool.acquire().unwrap();
        f(lease.session().unwrap())
    }
}
