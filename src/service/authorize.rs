//! `credentials/authorize` (CSC §3.3, SCAL2): the signer proves sole control with PIN and TOTP
//! and gets a SAD bound to their token, the credential, the digest algorithm and exactly the
//! digests they approved.

use crate::auth::{otp, password, token};
use crate::blocking;
use crate::crypto::HashAlg;
use crate::error::CscError;
use crate::metrics::AuthorizeFailure;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::models::{CredentialRow, NewSad, UserId};
use crate::store::repo;

/// A parsed authorize request (v2 names, with the v1 names pyHanko sends mapped in).
#[derive(Debug, Default)]
pub struct AuthorizeInput {
    pub credential_id: String,
    pub num_signatures: Option<i64>,
    /// v2 `hashes`: needs `hashAlgorithmOID`.
    pub hashes: Option<Vec<String>>,
    /// v1 `hash`: the digest algorithm may be inferred from the digest length.
    pub hashes_v1: Option<Vec<String>>,
    pub hash_algo: Option<String>,
    pub pin: Option<Secret>,
    pub otp: Option<Secret>,
}

/// A SAD and its lifetime in seconds.
pub struct Authorization {
    pub sad: Secret,
    pub expires_in: i64,
}

#[tracing::instrument(skip_all, fields(credential_id = %input.credential_id))]
pub async fn authorize(
    state: &AppState,
    user: &UserId,
    token_hash: Vec<u8>,
    input: AuthorizeInput,
) -> Result<Authorization, CscError> {
    let cred = super::owned_credential(state, user, &input.credential_id).await?;
    if cred.status != super::STATUS_ENABLED {
        return Err(CscError::invalid(
            "The credential identified by credentialID is disabled",
        ));
    }
    let n = input.num_signatures.ok_or_else(|| {
        CscError::invalid("Missing (or invalid type) integer parameter numSignatures")
    })?;
    if n < 1 {
        return Err(CscError::invalid("Invalid parameter numSignatures"));
    }
    if n > i64::from(cred.multisign) {
        return Err(CscError::invalid("Numbers of signatures is too high"));
    }
    let (values, v1) = match (input.hashes, input.hashes_v1) {
        (Some(h), _) => (h, false),
        (None, Some(h)) => (h, true),
        (None, None) => {
            return Err(CscError::invalid(
                "Missing (or invalid type) array parameter hashes: SCAL2 credentials need the hashes to authorize",
            ));
        }
    };
    if values.is_empty() {
        return Err(CscError::invalid("Empty hash array"));
    }
    if i64::try_from(values.len()).ok() != Some(n) {
        return Err(CscError::invalid(
            "numSignatures must equal the number of hashes (SCAL2)",
        ));
    }
    let hash = match (&input.hash_algo, v1) {
        (Some(oid), _) => HashAlg::from_oid(oid)?,
        (None, true) => values
            .first()
            .and_then(|v| crate::crypto::b64::decode(v).ok())
            .and_then(|d| HashAlg::from_digest_len(d.len()))
            .ok_or_else(|| CscError::invalid("Invalid digest value length"))?,
        (None, false) => {
            return Err(CscError::invalid(
                "Missing (or invalid type) string parameter hashAlgorithmOID",
            ));
        }
    };
    let digests = super::decode_digests(&values, hash)?;
    let (Some(pin), Some(code)) = (input.pin, input.otp) else {
        return Err(CscError::invalid(
            "Missing authentication data: PIN and OTP are both required",
        ));
    };

    let st = state.clone();
    let cred_id = cred.id.clone();
    let user_id = user.0.clone();
    blocking::run(move || {
        let now = st.clock.now();
        check_sole_control(&st, &user_id, &cred, &pin, &code, now)?;
        let sad = token::generate();
        let expires_in = st.settings.sad_ttl;
        let row = NewSad {
            sad_hash: token::hash(sad.expose()),
            token_hash,
            user_id,
            credential_id: cred_id,
            hash_algo: hash.name().to_string(),
            num_signatures: i32::try_from(n).unwrap_or(1),
            expires_at: now + expires_in,
            created_at: now,
            digests,
        };
        let audit = super::event(
            now,
            &row.user_id,
            "authorize",
            Some(&row.credential_id),
            "granted",
            serde_json::json!({
                "num_signatures": n,
                "hash_algo": row.hash_algo,
                "hashes": row.digests.iter().map(hex::encode).collect::<Vec<_>>(),
            }),
        );
        st.store.with(|c| repo::sads::insert(c, &row, &audit))?;
        tracing::info!(num_signatures = n, "authorization granted");
        Ok(Authorization { sad, expires_in })
    })
    .await
}

/// A parsed `credentials/extendTransaction` request.
#[derive(Debug, Default)]
pub struct ExtendInput {
    pub credential_id: String,
    pub sad: Option<Secret>,
    pub hashes: Option<Vec<String>>,
    pub hash_algo: Option<String>,
}

/// Trade a live SAD for a fresh one within the same signature budget (CSC §3.6).
#[tracing::instrument(skip_all, fields(credential_id = %input.credential_id))]
pub async fn extend_transaction(
    state: &AppState,
    user: &UserId,
    input: ExtendInput,
) -> Result<Authorization, CscError> {
    let cred = super::owned_credential(state, user, &input.credential_id).await?;
    super::check_usable(state, &cred.status, cred.failed_auths)?;
    let old = input
        .sad
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter SAD"))?;
    let rebind = match input.hashes {
        Some(values) => {
            let oid = input.hash_algo.as_deref().ok_or_else(|| {
                CscError::invalid("Missing (or invalid type) string parameter hashAlgorithmOID")
            })?;
            let hash = HashAlg::from_oid(oid)?;
            if values.is_empty() {
                return Err(CscError::invalid("Empty hash array"));
            }
            Some((hash, super::decode_digests(&values, hash)?))
        }
        None => None,
    };
    let st = state.clone();
    let user_id = user.0.clone();
    blocking::run(move || {
        let now = st.clock.now();
        let sad = token::generate();
        let expires_in = st.settings.sad_ttl;
        let old_hash = token::hash(old.expose());
        let new_hash = token::hash(sad.expose());
        let req = repo::sads::Extend {
            old_sad_hash: &old_hash,
            new_sad_hash: &new_hash,
            user_id: &user_id,
            credential_id: &cred.id,
            clock: st.clock.as_ref(),
            max_failures: st.settings.max_auth_failures,
            ttl: expires_in,
            rebind: rebind.as_ref().map(|(h, d)| (h.name(), d.as_slice())),
        };
        let audit = super::event(
            now,
            &user_id,
            "extend_transaction",
            Some(&cred.id),
            "granted",
            serde_json::json!({"rebound": req.rebind.is_some()}),
        );
        st.store
            .with(|c| repo::sads::extend(c, &req, &audit))?
            .map_err(super::signing::refusal)?;
        tracing::info!("transaction extended with a new SAD");
        Ok(Authorization { sad, expires_in })
    })
    .await
}

/// Sole control (SCAL2), the one place it is checked: the credential is not locked (the attempt
/// is reserved first, so parallel guesses cannot pass the limit), the PIN is right, and the OTP
/// is fresh (a TOTP step later than any accepted before, or the pending online code). Failures
/// are counted, audited and may lock the credential; success clears the count. Blocking.
pub(crate) fn check_sole_control(
    st: &AppState,
    user_id: &str,
    cred: &CredentialRow,
    pin: &Secret,
    code: &Secret,
    now: i64,
) -> Result<(), CscError> {
    let limit = st.settings.max_auth_failures;
    if !st
        .store
        .with(|c| repo::credentials::reserve_attempt(c, &cred.id, limit))?
    {
        tracing::warn!("authorization refused: credential locked");
        st.metrics.authorize_failure(AuthorizeFailure::Locked);
        super::record(
            st,
            &super::event(
                now,
                user_id,
                "authorize",
                Some(&cred.id),
                "locked",
                serde_json::json!({}),
            ),
        )?;
        return Err(CscError::invalid("Credential locked"));
    }
    let checked = check_factors(st, user_id, cred, pin, code, now, limit);
    if let Err(e) = &checked
        && !matches!(e, CscError::InvalidAuthenticationData)
    {
        // The factors could not be judged (token or database error): the reserved attempt
        // was no guess. (A process killed mid-check keeps it: the safe side.)
        if let Err(release) = st
            .store
            .with(|c| repo::credentials::release_attempt(c, &cred.id))
        {
            tracing::warn!(error = %release, "could not give back a reserved attempt");
        }
    }
    checked
}

/// The checks of [`check_sole_control`] once the attempt is reserved.
fn check_factors(
    st: &AppState,
    user_id: &str,
    cred: &CredentialRow,
    pin: &Secret,
    code: &Secret,
    now: i64,
    limit: i32,
) -> Result<(), CscError> {
    // Check both factors every time, so timing does not tell which one was wrong.
    let pin_ok = password::verify(pin, &cred.pin_hash, &st.pepper);
    let online = super::challenge::is_online(cred);
    let otp_step = match &cred.otp_secret {
        Some(sealed) if !online => {
            let secret = st.qscd.unseal(cred.id.as_bytes(), sealed)?;
            otp::verify(&secret, code, now)
        }
        _ => None,
    };
    // An online code is judged against the live challenge's sealed code, then redeemed (one
    // try spent; a match ends the challenge).
    let online_ok = online
        && match st
            .store
            .with(|c| repo::challenges::live_code(c, &cred.id, now))?
        {
            None => false,
            Some(sealed) => {
                let matched =
                    super::challenge::code_matches(st.qscd.as_ref(), &cred.id, &sealed, code)?;
                st.store
                    .with(|c| repo::challenges::redeem(c, &cred.id, &sealed, matched, now))?
            }
        };
    // A TOTP code is accepted once: its time step must be later than any accepted before
    // (consumed only when the PIN is right too, so a wrong PIN does not burn the code).
    let otp_ok = match otp_step.and_then(|s| i64::try_from(s).ok()) {
        _ if online => online_ok,
        Some(step) if pin_ok => {
            let fresh = st
                .store
                .with(|c| repo::credentials::consume_otp_step(c, &cred.id, step))?;
            if !fresh {
                tracing::warn!("authorization refused: replayed OTP");
            }
            fresh
        }
        _ => false,
    };
    if !(pin_ok && otp_ok) {
        st.metrics.authorize_failure(AuthorizeFailure::WrongFactor);
        let locks = cred.failed_auths + 1 >= limit;
        if locks {
            tracing::warn!(limit, "credential locked after repeated PIN/OTP failures");
        } else {
            tracing::info!("authorization refused: wrong PIN or OTP");
        }
        super::record(
            st,
            &super::event(
                now,
                user_id,
                "authorize",
                Some(&cred.id),
                if locks { "failed_and_locked" } else { "failed" },
                serde_json::json!({"pin_ok": pin_ok}),
            ),
        )?;
        return Err(CscError::InvalidAuthenticationData);
    }
    st.store
        .with(|c| repo::credentials::clear_attempts(c, &cred.id))?;
    if let Some(new) = password::rehash_if_stale(pin, &cred.pin_hash, st.settings.hash, &st.pepper)
    {
        super::store_rehash(st, "PIN", |c| {
            repo::credentials::replace_pin_hash(c, &cred.id, &cred.pin_hash, &new)
        });
    }
    Ok(())
}
