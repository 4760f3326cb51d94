//! `signatures/signHash` (CSC §4.1): check the request, spend the SAD, then sign in the QSCD —
//! in that order, so no signature ever leaves without a spent authorization.

use crate::blocking;
use crate::crypto::{self, KeyType, ResolvedSign, Scheme};
use crate::error::CscError;
use crate::qscd::SignMechanism;
use crate::secret::Secret;
use crate::state::AppState;
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

/// A signHash body parsed but not yet checked against its caller (the API layer's request type).
pub trait SignHashBody: Send + 'static {
    /// The credential it names, if any: looked up together with the caller's token.
    fn credential_id(&self) -> Option<&str>;
    /// The service's input; `credential_token` is the bearer when it is an OAuth credential
    /// token (its own SAD).
    fn into_input(self, credential_token: Option<Secret>) -> Result<SignHashInput, CscError>;
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

/// signHash in one blocking hop on one pooled connection: the body is parsed, the bearer token
/// and the credential the body names are looked up in one statement (an OAuth credential token
/// is its own SAD), the request, the credential and the SAD are checked, and the SAD spent in
/// one write transaction; the connection goes back to the pool before the token signs. Errors
/// keep the order clients see elsewhere: 401 for the token before 400 for the body.
#[tracing::instrument(skip_all, fields(credential_id = tracing::field::Empty, n = tracing::field::Empty))]
pub async fn sign_hash<B: SignHashBody>(
    state: &AppState,
    bearer: Secret,
    on_worker: bool,
    parse: impl FnOnce() -> Result<B, CscError> + Send + 'static,
) -> Result<Vec<String>, CscError> {
    let st = state.clone();
    let now = state.clock.now();
    state.metrics.sign_hash_call(on_worker);
    let work = move || {
        let mut conn = st.store.conn()?;
        let token_hash = crate::auth::token::hash(bearer.expose());
        // A body error waits until the token has been judged (401 first).
        let body = parse();
        let named = body
            .as_ref()
            .ok()
            .and_then(|b| b.credential_id())
            .unwrap_or_default();
        let (owner, cred) =
            repo::tokens::live_token_and_credential(&mut conn, &token_hash, now, named)?
                .ok_or(CscError::InvalidToken)?;
        let user = owner.user_id;
        let credential_token = owner.scope == crate::store::models::SCOPE_CREDENTIAL;
        let input = body?.into_input(credential_token.then_some(bearer))?;
        let span = tracing::Span::current();
        span.record("credential_id", input.credential_id.as_str());
        span.record("n", input.hashes.len());
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
        let cred = cred
            .filter(|_| super::credential_id_valid(&input.credential_id))
            .ok_or_else(super::unknown_credential)?;
        if cred.status != super::STATUS_ENABLED {
            return Err(CscError::invalid(
                "The credential identified by credentialID is disabled",
            ));
        }
        if now >= cred.not_after {
            return Err(CscError::invalid("Signing certificate is expired"));
        }
        if input.hashes.len() > usize::try_from(cred.multisign).unwrap_or(0) {
            return Err(CscError::invalid(
                "Too many hashes for one call (more than multisign)",
            ));
        }
        let key = super::key_type_of(&cred.key_type)?;
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

        let hash_name = resolved.hash.name();
        let spend = repo::sads::Spend {
            sad_hash: &crate::auth::token::hash(sad.expose()),
            user_id: &user,
            credential_id: &cred.id,
            hash_algo: hash_name,
            digests: &digests,
            now,
        };
        let detail = serde_json::json!({
            "sign_algo": input.sign_algo,
            "hash_algo": hash_name,
            "hashes": digests.iter().map(hex::encode).collect::<Vec<_>>(),
        });
        let raw = spend_then_sign(&st, conn, "sign_hash", &spend, detail, refusal, || {
            let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
            let started = std::time::Instant::now();
            let signed = st.qscd.sign(&cred.key_id, mechanism(&resolved), &refs);
            st.metrics.hsm_sign(started.elapsed());
            if let Ok(values) = &signed {
                st.metrics.signatures(resolved.algo.oid(), values.len());
            }
            Ok(signed?)
        })?;
        let signatures = raw
            .into_iter()
            .map(|r| signature_value(key, &resolved.scheme, r).map(|s| crypto::b64::encode(&s)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((input.sign_algo, signatures))
    };
    // `--sign-on-worker`: in-process database and token, small call; otherwise the blocking pool.
    // A panic becomes the same internal error on either path (the pool reports it as a failed
    // task) instead of taking the worker thread and its other connections down.
    let (sign_algo, signatures) = if on_worker {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .map_err(|_| CscError::Internal("signHash work panicked".into()))??
    } else {
        blocking::run(work).await?
    };
    tracing::info!(sign_algo = %sign_algo, "signatures produced");
    Ok(signatures)
}

/// The one spending path of signHash and signDoc: spend the SAD on `conn` in one transaction
/// with its `sad_spent` record (a refusal is audited and answered through `refuse`), give the
/// connection back, then let `sign` do the token work. When `sign` fails (nothing left the
/// token) the SAD is given back with a `token_error` record. A `sad_spent` record without a
/// later `token_error` for it is a signature made: success adds no second write to the hot
/// path. Blocking.
pub(crate) fn spend_then_sign<T>(
    st: &AppState,
    mut conn: crate::store::Pooled,
    action: &'static str,
    spend: &repo::sads::Spend<'_>,
    detail: serde_json::Value,
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
    if let Err(refused) = repo::sads::spend(&mut conn, spend, &spent)? {
        repo::audit::append_alone(&mut conn, &event("refused", detail))?;
        return Err(refuse(refused));
    }
    drop(conn);
    let result = sign();
    if let Err(e) = &result {
        let failed = event(
            "token_error",
            serde_json::json!({ "count": spend.digests.len() }),
        );
        let refunded = st.store.with(|c| repo::sads::refund(c, spend, &failed))?;
        tracing::warn!(error = %e, refunded, action, "signing failed after spending; SAD refunded");
    }
    result
}
