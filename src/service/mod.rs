//! The service layer: HTTP-free business rules. Handlers call exactly one function here; these
//! functions meet the store and the QSCD, always off the async executor (`crate::blocking`).

pub mod authorize;
pub mod challenge;
pub mod credentials;
pub mod enrol;
pub mod oauth;
pub mod own_ca;
pub mod paging;
pub mod purge;
pub mod seed;
pub mod session;
pub mod sign_doc;
pub mod sign_jobs;
pub mod signing;
pub mod tsa;

use crate::blocking;
use crate::crypto::KeyType;
use crate::error::CscError;
use crate::state::AppState;
use crate::store::models::{CredentialRow, UserId};
use crate::store::repo;
use crate::store::repo::audit::Event;

/// Status of a credential's key (`key.status`).
pub const STATUS_ENABLED: &str = crate::store::models::STATUS_ENABLED;

/// Whether a credential may be used: not disabled by the operator and not locked by failed
/// PIN/OTP attempts (`failed_auths` at the limit). `credentials/info` and `credentials/list` show
/// `key.status` "enabled" exactly when this holds.
pub fn is_usable(status: &str, failed_auths: i32, max_auth_failures: i32) -> bool {
    status == STATUS_ENABLED && failed_auths < max_auth_failures
}

/// CSC §11: never sign (nor extend an authorization or send a code) with a credential whose
/// `key.status` is "disabled", whether the operator disabled it or failed attempts locked it;
/// a SAD issued before the lock does not outlive it. 400 `invalid_request`, as `authorize`.
pub fn check_usable(st: &AppState, status: &str, failed_auths: i32) -> Result<(), CscError> {
    if status != STATUS_ENABLED {
        return Err(CscError::invalid(
            "The credential identified by credentialID is disabled",
        ));
    }
    if !is_usable(status, failed_auths, st.settings.max_auth_failures) {
        return Err(CscError::invalid("Credential locked"));
    }
    Ok(())
}

/// How a key type is written in the `credentials.key_type` column.
pub fn key_type_name(k: KeyType) -> &'static str {
    match k {
        KeyType::Rsa => "rsa",
        KeyType::EcP256 => "ec-p256",
        KeyType::EcP384 => "ec-p384",
    }
}

pub fn key_type_of(key_type: &str) -> Result<KeyType, CscError> {
    match key_type {
        "rsa" => Ok(KeyType::Rsa),
        "ec-p256" => Ok(KeyType::EcP256),
        "ec-p384" => Ok(KeyType::EcP384),
        other => Err(CscError::Internal(format!(
            "unknown key type {other:?} in store"
        ))),
    }
}

/// The caller's credential `id`; another user's credential and an unknown id give the same error.
/// Why a credential cannot make `wanted` signatures (its `signatureQualifier`, from the end
/// entity certificate of its stored chain, is another), or `None` when it can.
pub(crate) fn qualifier_mismatch(chain: &[u8], wanted: &str) -> Result<Option<String>, CscError> {
    let chain = crate::pki::split_chain(chain)?;
    let leaf = chain
        .first()
        .ok_or_else(|| CscError::Internal("credential without certificate".into()))?;
    let made = crate::pki::parse(leaf)?.qualifier;
    Ok((wanted != made).then(|| {
        format!("Invalid parameter signatureQualifier: the credential makes {made} signatures")
    }))
}

pub async fn owned_credential(
    state: &AppState,
    user: &UserId,
    id: &str,
) -> Result<CredentialRow, CscError> {
    let store = state.store.clone();
    let (user, id) = (user.clone(), id.to_string());
    blocking::run(move || store.with(|c| Ok(owned_credential_on(c, &user, &id)))?).await
}

/// `owned_credential` on a connection the caller holds (blocking).
pub(crate) fn owned_credential_on(
    conn: &mut crate::store::DbConn,
    user: &UserId,
    id: &str,
) -> Result<CredentialRow, CscError> {
    if !credential_id_valid(id) {
        return Err(unknown_credential());
    }
    repo::credentials::owned(conn, &user.0, id)?.ok_or_else(unknown_credential)
}

/// Whether `id` can name a credential at all (it is looked up only then).
pub(crate) fn credential_id_valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256
}

/// The answer for a credential that is not the caller's (unknown or another user's alike).
pub(crate) fn unknown_credential() -> CscError {
    CscError::invalid("Invalid parameter credentialID")
}

/// A credential's certificate must be valid at `now` to sign (RFC 5280: notBefore through
/// notAfter, inclusive).
pub(crate) fn check_certificate_valid(
    not_before: i64,
    not_after: i64,
    now: i64,
) -> Result<(), CscError> {
    match crate::pki::Validity::at(not_before, not_after, now) {
        crate::pki::Validity::Valid => Ok(()),
        crate::pki::Validity::Expired => Err(CscError::invalid("Signing certificate is expired")),
        crate::pki::Validity::NotYetValid => {
            Err(CscError::invalid("Signing certificate is not yet valid"))
        }
    }
}

/// An asynchronous call's SAD before it is accepted: there, and not empty (an empty one is
/// refused as the synchronous call refuses it, as unknown).
pub(crate) fn check_sad_given(sad: Option<&crate::secret::Secret>) -> Result<(), CscError> {
    match sad {
        None => Err(CscError::invalid(
            "Missing (or invalid type) string parameter SAD",
        )),
        Some(sad) if sad.expose().is_empty() => {
            Err(signing::refusal(repo::sads::SadRefusal::Unknown))
        }
        Some(_) => Ok(()),
    }
}

/// The key a request is resolved for: its type and, for RSA, its modulus length in bytes.
/// `None` before the credential is known (an asynchronous call's check of its fields).
pub(crate) type KeyFacts = Option<(KeyType, Option<usize>)>;

/// A request's `signAlgo`, `hashAlgorithmOID` and base64 `signAlgoParams`, resolved for `key`.
pub(crate) fn resolve_algorithm(
    key: KeyFacts,
    sign_algo: &str,
    hash_algo: Option<&str>,
    sign_algo_params: Option<&str>,
) -> Result<crate::crypto::ResolvedSign, CscError> {
    let params = sign_algo_params
        .map(|p| {
            crate::crypto::b64::decode(p)
                .map_err(|_| CscError::invalid("Invalid parameter signAlgoParams"))
        })
        .transpose()?;
    Ok(match key {
        Some((key, modulus_bytes)) => {
            crate::crypto::resolve(key, modulus_bytes, sign_algo, hash_algo, params.as_deref())?
        }
        None => crate::crypto::resolve_any_key(sign_algo, hash_algo, params.as_deref())?,
    })
}

/// Decode base64 digests for `hash`, refusing duplicates.
pub fn decode_digests(
    values: &[String],
    hash: crate::crypto::HashAlg,
) -> Result<Vec<Vec<u8>>, CscError> {
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(values.len());
    // A set, not `out.contains`: an authorization may carry a thousand hashes.
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    for v in values {
        let d = crate::crypto::b64::decode_digest(v, hash)?;
        if !seen.insert(d.clone()) {
            return Err(CscError::invalid("Duplicate hash in the hash array"));
        }
        out.push(d);
    }
    Ok(out)
}

/// An audit event by a user.
pub fn event(
    at: i64,
    actor: &str,
    action: &'static str,
    credential_id: Option<&str>,
    outcome: &'static str,
    detail: serde_json::Value,
) -> Event {
    Event {
        at,
        actor: actor.to_string(),
        action,
        credential_id: credential_id.map(str::to_string),
        outcome,
        detail,
    }
}

/// Record an event that has no state change of its own (a refusal). Blocking.
pub fn record(state: &AppState, e: &Event) -> Result<(), CscError> {
    Ok(state.store.with(|c| repo::audit::append_alone(c, e))?)
}

/// Store a password or PIN hash made again after a successful check (`what` names it in the
/// log). Best effort: the check has succeeded, and a failure leaves the old hash, which keeps
/// verifying and is made again next time.
fn store_rehash(
    state: &AppState,
    what: &'static str,
    replace: impl FnOnce(&mut crate::store::DbConn) -> Result<bool, crate::store::StoreError>,
) {
    match state.store.with(replace) {
        Ok(true) => tracing::info!(
            what,
            "stale hash made again with the pepper and current cost"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(what, error = %e, "could not store a hash made again"),
    }
}
