//! Enrolment and the server: the signer's secrets, the credentials of one key type (with the
//! TOTP steps each has used), their enrolment in-process as `quill enroll` does, and the
//! `quill serve` child on 127.0.0.1.

use std::path::Path;
use std::sync::Arc;

use super::args::SignArgs;
use super::{OUTBOX, PER_SAD, PREP_OTP, TOKEN_LABEL, USER};
use crate::auth::otp;
use crate::auth::password::HashParams;
use crate::cli::bench::child::ServeChild;
use crate::clock::SystemClock;
use crate::qscd::Qscd;
use crate::secret::Secret;
use crate::service::enrol::{self, EnrolRequest};
use crate::store::{Store, repo};

/// The credentials of one key type and the TOTP steps each has used. A code is accepted once
/// per credential and step, within one step either side of now, and only if its step is later
/// than every step accepted before; so each credential yields up to three authorizations at
/// once (and one more every 30 s), and is used by one worker only, in order.
#[derive(Default)]
pub(super) struct Creds {
    pub(super) ids: Vec<String>,
    pub(super) key_ids: Vec<Vec<u8>>,
    pub(super) last_step: Vec<Option<i64>>,
    pub(super) owner: Vec<Option<usize>>,
}

impl Creds {
    pub(super) fn next_code(
        &mut self,
        secret: &[u8],
        worker: usize,
    ) -> anyhow::Result<(String, String)> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let step = now / 30;
        // The previous step only while it cannot expire before the request arrives.
        let lowest = if now % 30 < 25 { step - 1 } else { step };
        let slots = self
            .ids
            .iter()
            .zip(self.last_step.iter_mut())
            .zip(self.owner.iter_mut());
        for ((id, last), owner) in slots {
            if owner.is_some_and(|o| o != worker) {
                continue;
            }
            let candidate = last.map_or(lowest, |l| (l + 1).max(lowest));
            if candidate <= step + 1 {
                *last = Some(candidate);
                *owner = Some(worker);
                let code = otp::generate(secret, candidate * 30).map_err(anyhow::Error::msg)?;
                return Ok((id.clone(), code));
            }
        }
        anyhow::bail!(
            "no unused TOTP step left on the {} credentials",
            self.ids.len()
        )
    }
}

/// The signer's secrets (one user; every credential shares PIN and TOTP secret).
pub(super) struct Signer {
    pub(super) password: String,
    pub(super) pin: String,
    pub(super) totp: zeroize::Zeroizing<Vec<u8>>,
}

/// How the enrolled credentials take their one-time password.
#[derive(Clone, Copy)]
pub(super) enum Otp {
    /// The signer's TOTP secret.
    Totp,
    /// A code per `credentials/getChallenge`, delivered to the server's outbox.
    Online,
}

/// Enrol `n` credentials of `key`, one after the other: SoftHSM2 fails a key generation that
/// meets other work on the token in another thread now and then (CKR_GENERAL_ERROR).
#[allow(clippy::too_many_arguments)]
pub(super) fn enrol_credentials(
    store: &Store,
    qscd: &Arc<dyn Qscd>,
    hash: HashParams,
    signer: &Signer,
    key: &str,
    n: usize,
    otp_kind: Otp,
    creds: &mut Creds,
) -> anyhow::Result<()> {
    for _ in 0..n {
        let (totp_secret, online_otp) = match otp_kind {
            Otp::Totp => (
                Some(Secret::new(
                    otp::to_base32(&signer.totp).expose().to_string(),
                )),
                None,
            ),
            Otp::Online => (None, Some(PREP_OTP.to_string())),
        };
        let outcome = enrol::enrol(
            store,
            qscd,
            &SystemClock,
            hash,
            EnrolRequest {
                user: USER.into(),
                password: Secret::new(signer.password.clone()),
                pin: Secret::new(signer.pin.clone()),
                key: key.into(),
                totp_secret,
                online_otp,
                common_name: Some("Bench Signer".into()),
                multisign: i32::try_from(PER_SAD)?,
                cert_days: enrol::CERT_DAYS,
                description: None,
            },
        )?;
        let uid = store
            .with(|c| repo::users::by_name(c, USER))?
            .map(|u| u.id)
            .ok_or_else(|| anyhow::anyhow!("no user after enrolment"))?;
        let row = store
            .with(|c| repo::credentials::owned(c, &uid, &outcome.credential_id))?
            .ok_or_else(|| anyhow::anyhow!("no credential after enrolment"))?;
        creds.ids.push(outcome.credential_id);
        creds.key_ids.push(row.key_id);
        creds.last_step.push(None);
        creds.owner.push(None);
    }
    Ok(())
}

pub(super) fn start_server(
    dir: &Path,
    args: &SignArgs,
    db_url: &str,
    token_pin: &str,
) -> anyhow::Result<ServeChild> {
    let empty_config = dir.join("quill.toml");
    std::fs::write(&empty_config, "")?;
    let config = empty_config.to_string_lossy().into_owned();
    // SQLite and SoftHSM2 are in-process: the configuration for that setup (and refused with
    // PostgreSQL).
    let on_worker = crate::store::sqlite_path(db_url).is_ok();
    ServeChild::start(&["--config", &config], |cmd| {
        if on_worker {
            cmd.arg("--sign-on-worker");
        }
        cmd.args(["--database-url", db_url])
            .arg("--pkcs11-module")
            .arg(&args.pkcs11_module)
            .args(["--token-label", TOKEN_LABEL, "--pkcs11-sessions", "8"])
            .args(["--sad-ttl", "3600", "--max-auth-failures", "5"])
            .arg("--argon2-memory-kib")
            .arg(args.hash.argon2_memory_kib.to_string())
            .arg("--argon2-iterations")
            .arg(args.hash.argon2_iterations.to_string())
            .arg("--argon2-parallel")
            .arg(args.hash.argon2_parallel.to_string())
            .arg("--otp-sender")
            .arg(format!("outbox:{}", dir.join(OUTBOX).display()))
            .env("QUILL_TOKEN_PIN", token_pin)
            .env("QUILL_LOG_FORMAT", "text")
            .env_remove("QUILL_TLS_CERT")
            .env_remove("QUILL_TLS_KEY")
    })
}
