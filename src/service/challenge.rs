//! Online OTP (CSC §3.5 `credentials/getChallenge`, v1 `credentials/sendOTP`): a fresh random
//! 6-digit code per request, stored only as a keyed hash with a short expiry and a try limit,
//! delivered by the configured `OtpSender` to the credential's sealed phone number or address.

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::blocking;
use crate::error::CscError;
use crate::notify::OtpMessage;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::models::{CredentialRow, UserId};
use crate::store::repo;

/// How long a sent code is valid, seconds.
pub const CODE_TTL: i64 = 300;
/// Wrong codes accepted before the challenge dies.
pub const CODE_TRIES: i32 = 3;

/// Whether a credential uses an online OTP.
pub fn is_online(row: &CredentialRow) -> bool {
    matches!(row.otp_kind.as_str(), "sms" | "email")
}

/// The stored form of a code: bound to its credential.
pub fn code_hash(credential_id: &str, code: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"quill-online-otp\0");
    h.update(credential_id.as_bytes());
    h.update(b"\0");
    h.update(code.as_bytes());
    h.finalize().to_vec()
}

/// When a new code replaces a pending one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Always (`credentials/getChallenge`: the owner asks, with their token).
    Always,
    /// Only when none is pending (the OAuth page, which anyone can open: opening it again must
    /// neither flood the owner's phone nor cancel the code the owner is typing).
    UnlessPending,
}

/// Generate, store and send a new code for one of the caller's online-OTP credentials.
#[tracing::instrument(skip_all, fields(credential_id = %credential_id))]
pub async fn send_code(
    state: &AppState,
    user: &UserId,
    credential_id: &str,
    auth_object_id: &str,
    resend: Resend,
) -> Result<(), CscError> {
    let cred = super::owned_credential(state, user, credential_id).await?;
    super::check_usable(state, &cred.status, cred.failed_auths)?;
    if auth_object_id != "OTP" || !is_online(&cred) {
        return Err(CscError::invalid(
            "Invalid parameter authObjectID: the credential has no online OTP object with that id",
        ));
    }
    let st = state.clone();
    let user_id = user.0.clone();
    blocking::run(move || {
        let now = st.clock.now();
        if resend == Resend::UnlessPending
            && st
                .store
                .with(|c| repo::challenges::is_pending(c, &cred.id, now))?
        {
            tracing::info!("online OTP still pending; none sent");
            return Ok(());
        }
        let code = Secret::new(format!("{:06}", rand::rng().random_range(0..1_000_000u32)));
        let sealed = cred.otp_secret.as_ref().ok_or_else(|| {
            CscError::Internal("online OTP credential without destination".into())
        })?;
        let destination = st.qscd.unseal(cred.id.as_bytes(), sealed)?;
        let destination = String::from_utf8_lossy(&destination).into_owned();
        let hash = code_hash(&cred.id, code.expose());
        st.store
            .with(|c| repo::challenges::put(c, &cred.id, &hash, now + CODE_TTL, CODE_TRIES))?;
        st.otp_sender
            .send(&OtpMessage {
                channel: &cred.otp_kind,
                destination: &destination,
                code: &code,
                credential_id: &cred.id,
            })
            .map_err(|e| CscError::Unavailable(format!("OTP delivery failed: {e}")))?;
        super::record(
            &st,
            &super::event(
                now,
                &user_id,
                "otp_sent",
                Some(&cred.id),
                "ok",
                serde_json::json!({"channel": cred.otp_kind}),
            ),
        )?;
        tracing::info!(channel = %cred.otp_kind, "online OTP sent");
        Ok(())
    })
    .await
}
