//! `signatures/signHash` (CSC §4.1): check the request, spend the SAD, then sign in the QSCD —
//! in that order, so no signature ever leaves without a spent authorization.

use crate::blocking;
use crate::crypto::{self, KeyType, ResolvedSign, Scheme};
use crate::error::CscError;
use crate::qscd::SignMechanism;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::models::UserId;
use crate::store::repo::{self, sads::SadRefusal};

/// A parsed signHash request (v2 names, with pyHanko's v1 `hash`/`hashAlgo` mapped in).
#[derive(Debug, Default)]
pub struct SignHashInput {
    pub credential_id: String,
    pub sad: Option<Secret>,
    pub hashes: Vec<String>,
    pub hash_algo: Option<String>,
    pub sign_algo: String,
    pub sign_algo_params: Option<String>,
    pub operation_mode: Option<String>,
}

/// The CSC error for a SAD refusal.
pub fn refusal(r: SadRefusal) -> CscError {
    CscError::invalid(match r {
        SadRefusal::Unknown => "Invalid parameter SAD",
        SadRefusal::Expired => "SAD expired",
        SadRefusal::WrongHashAlgo => {
            "Invalid parameter hashAlgorithmOID: the SAD was issued for another digest algorithm"
        }
        SadRefusal::NotAuthorized => "Hash is not authorized by the SAD",
        SadRefusal::AlreadySigned => "Hash is not authorized by the SAD: it was already signed",
        SadRefusal::Exhausted => "Invalid parameter SAD: not enough signatures left",
    })
}

/// The token mechanism for a resolved signature algorithm (signHash and signDoc).
pub(crate) fn mechanism(resolved: &ResolvedSign) -> SignMechanism {
    match resolved.scheme {
        Scheme::Pkcs1v15 => SignMechanism::RsaPkcs1,
        Scheme::Pss { mgf_hash, salt_len } => SignMechanism::RsaPss {
            hash: resolved.hash,
            mgf_hash,
            salt_len: u64::from(salt_len),
        },
        Scheme::Ecdsa => SignMechanism::Ecdsa,
    }
}

/// What goes into the token for one digest.
fn token_input(resolved: &ResolvedSign, digest: &[u8]) -> Result<Vec<u8>, CscError> {
    Ok(match resolved.scheme {
        Scheme::Pkcs1v15 => crypto::digest_info::digest_info(resolved.hash, digest)?,
        Scheme::Pss { .. } | Scheme::Ecdsa => digest.to_vec(),
    })
}

/// What goes back to the client for one token output.
fn signature_value(key: KeyType, scheme: &Scheme, raw: Vec<u8>) -> Result<Vec<u8>, CscError> {
    match scheme {
        Scheme::Ecdsa => Ok(crypto::ecdsa::raw_to_der(key, &raw)?),
        _ => Ok(raw),
    }
}

#[tracing::instrument(skip_all, fields(credential_id = %input.credential_id, n = input.hashes.len()))]
pub async fn sign_hash(
    state: &AppState,
    user: &UserId,
    input: SignHashInput,
) -> Result<Vec<String>, CscError> {
    match input.operation_mode.as_deref() {
        None | Some("S") => {}
        Some(_) => return Err(CscError::invalid("Invalid parameter operationMode")),
    }
    let sad = input
        .sad
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter SAD"))?;
    if input.hashes.is_empty() {
        return Err(CscError::invalid("Empty hash array"));
    }
    let cred = super::owned_credential(state, user, &input.credential_id).await?;
    if cred.status != super::STATUS_ENABLED {
        return Err(CscError::invalid(
            "The credential identified by credentialID is disabled",
        ));
    }
    let now = state.clock.now();
    if now >= cred.not_after {
        return Err(CscError::invalid("Signing certificate is expired"));
    }
    if input.hashes.len() > usize::try_from(cred.multisign).unwrap_or(0) {
        return Err(CscError::invalid(
            "Too many hashes for one call (more than multisign)",
        ));
    }
    let key = super::key_type_of(&cred)?;
    let params = match &input.sign_algo_params {
        Some(p) => Some(
            crypto::b64::decode(p)
                .map_err(|_| CscError::invalid("Invalid parameter signAlgoParams"))?,
        ),
        None => None,
    };
    let modulus_bytes =
        (key == KeyType::Rsa).then(|| usize::try_from(cred.key_bits / 8).unwrap_or(0));
    let resolved = crypto::resolve(
        key,
        modulus_bytes,
        &input.sign_algo,
        input.hash_algo.as_deref(),
        params.as_deref(),
    )?;
    let digests = super::decode_digests(&input.hashes, resolved.hash)?;
    let inputs = digests
        .iter()
        .map(|d| token_input(&resolved, d))
        .collect::<Result<Vec<_>, _>>()?;

    let st = state.clone();
    let user_id = user.0.clone();
    let sad_hash = crate::auth::token::hash(sad.expose());
    let hash_name = resolved.hash.name();
    let cred_id = cred.id.clone();
    let key_id = cred.key_id.clone();
    let sign_algo = input.sign_algo.clone();
    let signatures = blocking::run(move || {
        let spend = repo::sads::Spend {
            sad_hash: &sad_hash,
            user_id: &user_id,
            credential_id: &cred_id,
            hash_algo: hash_name,
            digests: &digests,
            now,
        };
        let detail = serde_json::json!({
            "sign_algo": sign_algo,
            "hash_algo": hash_name,
            "hashes": digests.iter().map(hex::encode).collect::<Vec<_>>(),
        });
        let signed = spend_then_sign(
            &st,
            "sign_hash",
            &spend,
            detail,
            inputs.len(),
            refusal,
            || {
                let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
                let started = std::time::Instant::now();
                let signed = st.qscd.sign(&key_id, mechanism(&resolved), &refs);
                st.metrics.hsm_sign(started.elapsed());
                if let Ok(values) = &signed {
                    st.metrics.signatures(resolved.algo.oid(), values.len());
                }
                Ok(signed?)
            },
        );
        let raw = signed?;
        raw.into_iter()
            .map(|r| signature_value(key, &resolved.scheme, r).map(|s| crypto::b64::encode(&s)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    tracing::info!(sign_algo = %input.sign_algo, "signatures produced");
    Ok(signatures)
}

/// The one spending path of signHash and signDoc: spend the SAD in one transaction with its
/// `sad_spent` record (a refusal is audited and answered through `refuse`), then let `sign` do
/// the token work, then record `signed`, or, when `sign` failed and nothing left the token,
/// give the SAD back with a `token_error` record. Blocking.
pub(crate) fn spend_then_sign<T>(
    st: &AppState,
    action: &'static str,
    spend: &repo::sads::Spend<'_>,
    detail: serde_json::Value,
    count: usize,
    refuse: impl FnOnce(SadRefusal) -> CscError,
    sign: impl FnOnce() -> Result<T, CscError>,
) -> Result<T, CscError> {
    let event = |outcome, detail| {
        super::event(
            spend.now,
            spend.user_id,
            action,
            Some(spend.credential_id),
            outcome,
            detail,
        )
    };
    let spent = event("sad_spent", detail.clone());
    if let Err(refused) = st.store.with(|c| repo::sads::spend(c, spend, &spent))? {
        super::record(st, &event("refused", detail))?;
        return Err(refuse(refused));
    }
    let result = sign();
    match &result {
        Ok(_) => super::record(st, &event("signed", serde_json::json!({ "count": count })))?,
        Err(e) => {
            let failed = event("token_error", serde_json::json!({ "count": count }));
            let refunded = st.store.with(|c| repo::sads::refund(c, spend, &failed))?;
            tracing::warn!(error = %e, refunded, action, "signing failed after spending; SAD refunded");
        }
    }
    result
}
