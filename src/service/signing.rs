//! `signatures/signHash` (CSC §4.1): check the request, spend the SAD, then sign in the QSCD —
//! in that order, so no signature ever leaves without a spent authorization.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

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

impl SignHashInput {
    /// The algorithm and the decoded digests, for `key`.
    fn resolve(
        &self,
        key: super::KeyFacts,
    ) -> Result<(crypto::ResolvedSign, Vec<Vec<u8>>), CscError> {
        let resolved = super::resolve_algorithm(
            key,
            &self.sign_algo,
            self.hash_algo.as_deref(),
            self.sign_algo_params.as_deref(),
        )?;
        Ok((
            resolved,
            super::decode_digests(&self.hashes, resolved.hash)?,
        ))
    }

    /// Whether the call could be signed by some credential: every refusal that depends on
    /// neither the credential nor the SAD. An asynchronous call is refused with these before it
    /// is accepted, as a synchronous call with the same body would be.
    pub fn check_well_formed(&self) -> Result<(), CscError> {
        super::check_sad_given(self.sad.as_ref())?;
        if self.hashes.is_empty() {
            return Err(CscError::invalid("Empty hash array"));
        }
        if !super::credential_id_valid(&self.credential_id) {
            return Err(super::unknown_credential());
        }
        self.resolve(None).map(|_| ())
    }
}

/// A signHash body parsed but not yet checked against its caller (the API layer's request type).
pub trait SignHashBody: Send + 'static {
    /// The credential it names, if any: looked up together with the caller's token.
    fn credential_id(&self) -> Option<&str>;
    /// The service's input; `credential_token` is the bearer when it is an OAuth credential
    /// token (its own SAD).
    fn into_input(self, credential_token: Option<Secret>) -> Result<SignHashInput, CscError>;
}

/// Under `--sign-on-worker`, the longest the token may be expected to hold an HTTP worker for
/// one call: a call whose signatures should take longer goes to the blocking pool. A worker
/// serves other connections too, so this bounds what they may wait behind one call.
pub const ON_WORKER_BUDGET: Duration = Duration::from_millis(20);
/// A body at most this large signs on the worker while its key's cost is not known yet (about
/// ten hashes).
pub const ON_WORKER_MAX_BODY: usize = 2048;

/// What one signature costs in the token, per kind of key (type and size), learned from the
/// signatures made: a moving average of the time per signature. It decides where a call signs
/// under `--sign-on-worker` (see [`ON_WORKER_BUDGET`]).
#[derive(Debug, Default)]
pub struct SignCosts {
    per_signature: Mutex<HashMap<(String, i32), Duration>>,
}

impl SignCosts {
    /// The cost of one signature with this kind of key, once one has been made.
    pub fn estimate(&self, kind: &(String, i32)) -> Option<Duration> {
        self.lock().get(kind).copied()
    }

    /// `n` signatures took `took`: a quarter of the new figure goes into the average.
    pub fn record(&self, kind: &(String, i32), n: usize, took: Duration) {
        let Some(each) = u32::try_from(n).ok().filter(|n| *n > 0).map(|n| took / n) else {
            return;
        };
        let mut costs = self.lock();
        match costs.get_mut(kind) {
            Some(average) => *average = (*average * 3 + each) / 4,
            None => {
                costs.insert(kind.clone(), each);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), Duration>> {
        // A poisoned map only loses estimates: calls go to the pool until it learns again.
        self.per_signature
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
        SadRefusal::CredentialDisabled => "The credential identified by credentialID is disabled",
        SadRefusal::CredentialLocked => "Credential locked",
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

/// signHash: the body is parsed, the bearer token and the credential the body names are looked
/// up in one statement (an OAuth credential token is its own SAD), the request, the credential
/// and the SAD are checked, and the SAD spent in one write transaction; the connection goes
/// back to the pool before the token signs. Errors keep the order clients see elsewhere: 401
/// for the token before 400 for the body.
///
/// Where it runs: by default all of it in one hop to the blocking pool. Under
/// `--sign-on-worker` (`sign_on_worker`; in-process database and token) the checks and the
/// spend run on the HTTP worker, and so does the signing when its expected time fits
/// [`ON_WORKER_BUDGET`] ([`SignCosts`]; while the key's cost is not known yet, when the body is
/// `small`); otherwise the signing alone goes to the pool.
#[tracing::instrument(skip_all, fields(credential_id = tracing::field::Empty, n = tracing::field::Empty))]
pub async fn sign_hash<B: SignHashBody>(
    state: &AppState,
    bearer: Secret,
    sign_on_worker: bool,
    small: bool,
    parse: impl FnOnce() -> Result<B, CscError> + Send + 'static,
) -> Result<Vec<String>, CscError> {
    let st = state.clone();
    let now = state.clock.now();
    let check_and_spend = move || -> Result<Signing, CscError> {
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
        let mut input = body?.into_input(credential_token.then_some(bearer))?;
        let span = tracing::Span::current();
        span.record("credential_id", input.credential_id.as_str());
        span.record("n", input.hashes.len());
        match input.operation_mode.as_deref() {
            None | Some("S") => {}
            Some(_) => return Err(CscError::invalid("Invalid parameter operationMode")),
        }
        let sad = input
            .sad
            .take()
            .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter SAD"))?;
        if input.hashes.is_empty() {
            return Err(CscError::invalid("Empty hash array"));
        }
        let cred = cred
            .filter(|_| super::credential_id_valid(&input.credential_id))
            .ok_or_else(super::unknown_credential)?;
        super::check_usable(&st, &cred.status, cred.failed_auths)?;
        super::check_certificate_valid(cred.not_before, cred.not_after, now)?;
        if input.hashes.len() > usize::try_from(cred.multisign).unwrap_or(0) {
            return Err(CscError::invalid(
                "Too many hashes for one call (more than multisign)",
            ));
        }
        let key = super::key_type_of(&cred.key_type)?;
        let modulus_bytes =
            (key == KeyType::Rsa).then(|| usize::try_from(cred.key_bits / 8).unwrap_or(0));
        let (resolved, digests) = input.resolve(Some((key, modulus_bytes)))?;
        let inputs = digests
            .iter()
            .map(|d| token_input(&resolved, d))
            .collect::<Result<Vec<_>, _>>()?;

        let hash_name = resolved.hash.name();
        let spend = OwnedSpend {
            sad_hash: crate::auth::token::hash(sad.expose()).to_vec(),
            user_id: user,
            credential_id: cred.id,
            hash_algo: hash_name,
            digests,
            clock: st.clock.clone(),
            max_failures: st.settings.max_auth_failures,
        };
        let detail = serde_json::json!({
            "sign_algo": input.sign_algo,
            "hash_algo": hash_name,
            "hashes": spend.digests.iter().map(hex::encode).collect::<Vec<_>>(),
        });
        spend_sad(conn, "sign_hash", &spend.borrow(), detail, refusal)?;
        Ok(Signing {
            st,
            kind: (cred.key_type, cred.key_bits),
            key,
            key_id: cred.key_id,
            resolved,
            inputs,
            spend,
            sign_algo: input.sign_algo,
        })
    };
    let (sign_algo, signatures) = if sign_on_worker {
        let signing = on_this_thread(check_and_spend);
        // A refusal was answered on the worker too.
        let here = signing.as_ref().map_or(true, |s| s.fits_on_worker(small));
        state.metrics.sign_hash_call(here);
        let signing = signing?;
        if here {
            on_this_thread(move || signing.finish())?
        } else {
            blocking::run(move || signing.finish()).await?
        }
    } else {
        state.metrics.sign_hash_call(false);
        blocking::run(move || check_and_spend()?.finish()).await?
    };
    tracing::info!(sign_algo = %sign_algo, "signatures produced");
    Ok(signatures)
}

/// Run blocking work on the HTTP worker (`--sign-on-worker`). A panic becomes the same internal
/// error as on the blocking pool (which reports it as a failed task) instead of taking the
/// worker thread and its other connections down.
fn on_this_thread<T>(work: impl FnOnce() -> Result<T, CscError>) -> Result<T, CscError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .map_err(|_| CscError::Internal("signHash work panicked".into()))?
}

/// A spend that owns its data, so that the signing after it may move to another thread.
struct OwnedSpend {
    sad_hash: Vec<u8>,
    user_id: String,
    credential_id: String,
    hash_algo: &'static str,
    digests: Vec<Vec<u8>>,
    clock: crate::clock::SharedClock,
    max_failures: i32,
}

impl OwnedSpend {
    fn borrow(&self) -> repo::sads::Spend<'_> {
        repo::sads::Spend {
            sad_hash: &self.sad_hash,
            user_id: &self.user_id,
            credential_id: &self.credential_id,
            hash_algo: self.hash_algo,
            digests: &self.digests,
            clock: self.clock.as_ref(),
            max_failures: self.max_failures,
        }
    }
}

/// A signHash call whose SAD is spent: what is left is the token's work.
struct Signing {
    st: AppState,
    /// Key type and size, for [`SignCosts`].
    kind: (String, i32),
    key: KeyType,
    key_id: Vec<u8>,
    resolved: ResolvedSign,
    inputs: Vec<Vec<u8>>,
    spend: OwnedSpend,
    sign_algo: String,
}

impl Signing {
    /// Should the token's work stay on the HTTP worker (see [`ON_WORKER_BUDGET`])?
    fn fits_on_worker(&self, small: bool) -> bool {
        match self.st.sign_costs.estimate(&self.kind) {
            Some(each) => u32::try_from(self.inputs.len())
                .ok()
                .and_then(|n| each.checked_mul(n))
                .is_some_and(|total| total <= ON_WORKER_BUDGET),
            None => small,
        }
    }

    /// Sign (the SAD is given back if the token fails) and encode the signatures. Blocking.
    fn finish(self) -> Result<(String, Vec<String>), CscError> {
        let Signing {
            st,
            kind,
            key,
            key_id,
            resolved,
            inputs,
            spend,
            sign_algo,
        } = self;
        let raw = sign_or_refund(&st, "sign_hash", &spend.borrow(), || {
            let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
            let started = std::time::Instant::now();
            let signed = st.qscd.sign(&key_id, mechanism(&resolved), &refs);
            let took = started.elapsed();
            st.metrics.hsm_sign(took);
            if let Ok(values) = &signed {
                st.metrics.signatures(resolved.algo.oid(), values.len());
                st.sign_costs.record(&kind, values.len(), took);
            }
            Ok(signed?)
        })?;
        let signatures = raw
            .into_iter()
            .map(|r| signature_value(key, &resolved.scheme, r).map(|s| crypto::b64::encode(&s)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((sign_algo, signatures))
    }
}

fn audit_event(
    spend: &repo::sads::Spend<'_>,
    action: &'static str,
    outcome: &'static str,
    detail: serde_json::Value,
) -> repo::audit::Event {
    super::event(
        spend.clock.now(),
        spend.user_id,
        action,
        Some(spend.credential_id),
        outcome,
        detail,
    )
}

/// A refused spend's record names its digests by their count and one SHA-256 over them
/// (concatenated in request order), not one by one: a refusal costs its caller no PIN and no token work, and records
/// of 100 digests each grew the audit log, which is never purged, by 12 MB a second.
fn refused_detail(mut detail: serde_json::Value) -> serde_json::Value {
    use sha2::Digest as _;
    if let Some(fields) = detail.as_object_mut()
        && let Some(serde_json::Value::Array(hashes)) = fields.remove("hashes")
    {
        let mut all = sha2::Sha256::new();
        for h in &hashes {
            all.update(hex::decode(h.as_str().unwrap_or_default()).unwrap_or_default());
        }
        fields.insert("n".into(), hashes.len().into());
        fields.insert("hashes_sha256".into(), hex::encode(all.finalize()).into());
    }
    detail
}

/// Spend the SAD on `conn` in one transaction with its `sad_spent` record (a refusal is audited
/// and answered through `refuse`), and give the connection back. Blocking.
fn spend_sad(
    mut conn: crate::store::Pooled,
    action: &'static str,
    spend: &repo::sads::Spend<'_>,
    detail: serde_json::Value,
    refuse: impl FnOnce(SadRefusal) -> CscError,
) -> Result<(), CscError> {
    let spent = audit_event(spend, action, "sad_spent", detail.clone());
    if let Err(refused) = repo::sads::spend(&mut conn, spend, &spent)? {
        let detail = refused_detail(detail);
        repo::audit::append_alone(&mut conn, &audit_event(spend, action, "refused", detail))?;
        return Err(refuse(refused));
    }
    Ok(())
}

/// Let `sign` do the token work after the spend; when it fails (nothing left the token) the SAD
/// is given back with a `token_error` record. A `sad_spent` record without a later
/// `token_error` for it is a signature made: success adds no second write to the hot path.
/// Blocking.
fn sign_or_refund<T>(
    st: &AppState,
    action: &'static str,
    spend: &repo::sads::Spend<'_>,
    sign: impl FnOnce() -> Result<T, CscError>,
) -> Result<T, CscError> {
    let result = sign();
    if let Err(e) = &result {
        let failed = audit_event(
            spend,
            action,
            "token_error",
            serde_json::json!({ "count": spend.digests.len() }),
        );
        let refunded = st.store.with(|c| repo::sads::refund(c, spend, &failed))?;
        tracing::warn!(error = %e, refunded, action, "signing failed after spending; SAD refunded");
    }
    result
}

/// The one spending path of signHash and signDoc: [`spend_sad`], then [`sign_or_refund`].
/// Blocking.
pub(crate) fn spend_then_sign<T>(
    st: &AppState,
    conn: crate::store::Pooled,
    action: &'static str,
    spend: &repo::sads::Spend<'_>,
    detail: serde_json::Value,
    refuse: impl FnOnce(SadRefusal) -> CscError,
    sign: impl FnOnce() -> Result<T, CscError>,
) -> Result<T, CscError> {
    spend_sad(conn, action, spend, detail, refuse)?;
    sign_or_refund(st, action, spend, sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_costs_learn_a_moving_average_per_kind_of_key() {
        let costs = SignCosts::default();
        let p256 = ("ec".to_owned(), 256);
        let rsa = ("rsa".to_owned(), 3072);
        assert_eq!(costs.estimate(&p256), None);
        // 100 signatures in 10 ms: 100 µs each.
        costs.record(&p256, 100, Duration::from_millis(10));
        assert_eq!(costs.estimate(&p256), Some(Duration::from_micros(100)));
        // A quarter of a new figure of 500 µs: 200 µs.
        costs.record(&p256, 1, Duration::from_micros(500));
        assert_eq!(costs.estimate(&p256), Some(Duration::from_micros(200)));
        // Nothing signed teaches nothing; kinds do not mix.
        costs.record(&p256, 0, Duration::from_secs(1));
        assert_eq!(costs.estimate(&p256), Some(Duration::from_micros(200)));
        assert_eq!(costs.estimate(&rsa), None);
        costs.record(&rsa, 2, Duration::from_millis(6));
        assert_eq!(costs.estimate(&rsa), Some(Duration::from_millis(3)));
        assert_eq!(costs.estimate(&p256), Some(Duration::from_micros(200)));
    }
}
