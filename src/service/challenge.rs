//! Online OTP (CSC §3.5 `credentials/getChallenge`, v1 `credentials/sendOTP`): a fresh random
//! 6-digit code per request, stored only sealed by the token, with a short expiry and a try limit,
//! delivered by the configured `OtpSender` to the credential's sealed phone number or address.

use rand::Rng;
use subtle::ConstantTimeEq;

use crate::blocking;
use crate::error::CscError;
use crate::notify::OtpMessage;
use crate::qscd::{Qscd, QscdError};
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

/// What binds a sealed code to its credential (the seal's additional data).
fn code_aad(credential_id: &str) -> Vec<u8> {
    [b"quill-online-otp\0".as_slice(), credential_id.as_bytes()].concat()
}

/// The stored form of a code: sealed by the token, bound to its credential. Six digits under
/// any unkeyed hash would be read back from a copy of the database by trying them all.
pub fn seal_code(qscd: &dyn Qscd, credential_id: &str, code: &Secret) -> Result<Vec<u8>, CscError> {
    Ok(qscd.seal(&code_aad(credential_id), code.expose().as_bytes())?)
}

/// Is `code` the one sealed in `sealed` (compared in constant time)? A value that does not
/// unseal for this credential matches nothing; a token that does not answer is an error.
pub fn code_matches(
    qscd: &dyn Qscd,
    credential_id: &str,
    sealed: &[u8],
    code: &Secret,
) -> Result<bool, CscError> {
    match qscd.unseal(&code_aad(credential_id), sealed) {
        Ok(plain) => Ok(bool::from(plain.as_slice().ct_eq(code.expose().as_bytes()))),
        Err(QscdError::Unseal) => Ok(false),
        Err(e) => Err(e.into()),
    }
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
        let sealed_code = seal_code(st.qscd.as_ref(), &cred.id, &code)?;
        st.store.with(|c| {
            repo::challenges::put(c, &cred.id, &sealed_code, now + CODE_TTL, CODE_TRIES)
        })?;
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
