//! `signatures/signDoc` (CSC §4.2) for CAdES (`signature_format` "C"): the server builds the CMS
//! signature. The SAD authorizes the document digests — the `hashes` of `documentDigests`, or the
//! digest of each whole `document` — and is spent through the same store transaction as
//! signHash (`store::repo::sads::spend`) **before** the token signs the DER signed attributes.
//! Levels: AdES-B-B, and AdES-B-T with a signature-time-stamp from the built-in TSA.

use crate::blocking;
use crate::cades::{self, SignerAlgorithm, Signing};
use crate::crypto::{self, HashAlg, KeyType, ResolvedSign, Scheme, SignAlgo};
use crate::error::CscError;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::models::UserId;
use crate::store::repo::{self, sads::SadRefusal};

use super::tsa;

/// What one `documentDigests` or `documents` entry carries.
#[derive(Debug)]
pub enum Payload {
    /// Base64 digests (`documentDigests[].hashes`): one detached signature each.
    Digests(Vec<String>),
    /// A base64 document (`documents[].document`).
    Document(String),
}

/// One entry of `documentDigests` / `documents`.
#[derive(Debug)]
pub struct DocItem {
    pub payload: Payload,
    pub hash_algo: Option<String>,
    pub signature_format: Option<String>,
    pub conformance_level: Option<String>,
    pub sign_algo: Option<String>,
    pub sign_algo_params: Option<String>,
    /// Whether `signed_props` had any entry (none are supported yet).
    pub has_signed_props: bool,
    pub envelope: Option<String>,
}

/// A parsed signDoc request.
#[derive(Debug, Default)]
pub struct SignDocInput {
    /// `None`: the credential of the SAD (or credential token), when `signature_qualifier`
    /// names the kind of signature instead (CSC §4.2).
    pub credential_id: Option<String>,
    pub signature_qualifier: Option<String>,
    pub sad: Option<Secret>,
    pub items: Vec<DocItem>,
}

/// The answer: attached (enveloping) CMS in `documents_with_signature`, detached CMS in
/// `signature_objects`, each in request order.
#[derive(Debug, Default)]
pub struct SignDocOutput {
    pub documents_with_signature: Vec<String>,
    pub signature_objects: Vec<String>,
}

/// `conformance_level`, compared case-insensitively (the CSC text writes both Ades and AdES).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    BaselineB,
    BaselineT,
}

fn level(value: Option<&str>) -> Result<Level, CscError> {
    let Some(v) = value else {
        return Ok(Level::BaselineB);
    };
    match v.to_ascii_lowercase().as_str() {
        "ades-b-b" | "ades-b" => Ok(Level::BaselineB),
        "ades-b-t" | "ades-t" => Ok(Level::BaselineT),
        _ => Err(CscError::invalid(
            "Invalid parameter conformance_level: Ades-B-B and Ades-B-T are supported",
        )),
    }
}

/// Whether the CMS embeds the content. CAdES in CSC: Detached | Attached | Parallel (we also
/// read "Enveloping" as Attached). Digests can only be signed detached.
fn attached(value: Option<&str>, is_document: bool) -> Result<bool, CscError> {
    match value {
        None => Ok(is_document),
        Some("Detached") => Ok(false),
        Some("Attached" | "Enveloping") if is_document => Ok(true),
        Some("Attached" | "Enveloping") => Err(CscError::invalid(
            "Invalid parameter signed_envelope_property: documentDigests can only be signed Detached",
        )),
        Some(_) => Err(CscError::invalid(
            "Invalid parameter signed_envelope_property: Detached or Attached",
        )),
    }
}

/// One signature to make.
struct Task {
    digest: Vec<u8>,
    content: Option<Vec<u8>>,
    resolved: ResolvedSign,
    pss_params: Option<Vec<u8>>,
    level: Level,
    attached: bool,
}

fn plan_item(item: &DocItem, key: super::KeyFacts) -> Result<Vec<Task>, CscError> {
    match item.signature_format.as_deref() {
        Some("C") => {}
        Some(_) => {
            return Err(CscError::invalid(
                "Invalid parameter signature_format: only C (CAdES) is supported",
            ));
        }
        None => {
            return Err(CscError::invalid(
                "Missing (or invalid type) string parameter signature_format",
            ));
        }
    }
    if item.has_signed_props {
        return Err(CscError::invalid(
            "Invalid parameter signed_props: no signed properties are supported",
        ));
    }
    let level = level(item.conformance_level.as_deref())?;
    let is_document = matches!(item.payload, Payload::Document(_));
    let attached = attached(item.envelope.as_deref(), is_document)?;
    let sign_algo = item
        .sign_algo
        .as_deref()
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter signAlgo"))?;
    // A whole document with generic rsaEncryption and no hashAlgorithmOID: SHA-256.
    let hash_algo = match (
        &item.hash_algo,
        &item.payload,
        SignAlgo::from_oid(sign_algo),
    ) {
        (None, Payload::Document(_), Ok(SignAlgo::RsaPkcs1)) => Some(HashAlg::Sha256.oid().into()),
        (given, _, _) => given.clone(),
    };
    let resolved = super::resolve_algorithm(
        key,
        sign_algo,
        hash_algo.as_deref(),
        item.sign_algo_params.as_deref(),
    )?;
    // The parameters go into the SignerInfo as DER written by Quill, from what `resolve` read
    // of them: a client's encoding may spell out DEFAULT values (saltLength 20, trailerField
    // 1), which DER leaves out.
    let pss_params = match resolved.scheme {
        crypto::Scheme::Pss { mgf_hash, salt_len } => {
            Some(crypto::pss::encode(&crypto::pss::PssParams {
                hash: resolved.hash,
                mgf_hash,
                salt_len,
            }))
        }
        _ => None,
    };
    let task = |digest, content| Task {
        digest,
        content,
        resolved,
        pss_params: pss_params.clone(),
        level,
        attached,
    };
    match &item.payload {
        Payload::Digests(hashes) => {
            if hashes.is_empty() {
                return Err(CscError::invalid("Empty hash array"));
            }
            if item.hash_algo.is_none() {
                return Err(CscError::invalid(
                    "Missing (or invalid type) string parameter hashAlgorithmOID",
                ));
            }
            Ok(super::decode_digests(hashes, resolved.hash)?
                .into_iter()
                .map(|d| task(d, None))
                .collect())
        }
        Payload::Document(b64) => {
            let doc = crypto::b64::decode(b64)
                .map_err(|_| CscError::invalid("Invalid Base64 document string parameter"))?;
            let digest = resolved.hash.digest(&doc);
            Ok(vec![task(digest, attached.then_some(doc))])
        }
    }
}

/// The signatures a request asks for, and their one digest algorithm.
fn plan(items: &[DocItem], key: super::KeyFacts) -> Result<(Vec<Task>, HashAlg), CscError> {
    let mut tasks = Vec::new();
    for item in items {
        tasks.extend(plan_item(item, key)?);
    }
    let Some(hash) = tasks.first().map(|t| t.resolved.hash) else {
        return Err(CscError::invalid(
            "Empty documentDigests and documents objects",
        ));
    };
    if tasks.iter().any(|t| t.resolved.hash != hash) {
        return Err(CscError::invalid(
            "Invalid parameter hashAlgorithmOID: one digest algorithm per request (the SAD's)",
        ));
    }
    let digests = tasks.iter().map(|t| t.digest.as_slice());
    let mut seen = std::collections::HashSet::with_capacity(tasks.len());
    if digests.into_iter().any(|d| !seen.insert(d)) {
        return Err(CscError::invalid(
            "Duplicate hash in documentDigests or documents",
        ));
    }
    Ok((tasks, hash))
}

/// Whether a request could be signed by some credential: every refusal that depends on neither
/// the credential nor the SAD. An asynchronous call is refused with these before it is
/// accepted, as a synchronous call with the same body would be.
pub fn check_well_formed(input: &SignDocInput) -> Result<(), CscError> {
    super::check_sad_given(input.sad.as_ref())?;
    match (&input.credential_id, &input.signature_qualifier) {
        (Some(id), _) if !super::credential_id_valid(id) => Err(super::unknown_credential()),
        (None, None) => Err(CscError::invalid(
            "Missing (or invalid type) string parameter credentialID",
        )),
        _ => plan(&input.items, None).map(|_| ()),
    }
}

/// The CSC error for a SAD refusal on signDoc: a digest outside the SAD is CSC's 403
/// `invalid_hash`; the rest read as for signHash.
fn refusal(r: SadRefusal) -> CscError {
    match r {
        SadRefusal::NotAuthorized => CscError::InvalidHash,
        SadRefusal::AlreadySigned => CscError::invalid(
            "documentDigests or documents are not authorized by the SAD: already signed",
        ),
        other => super::signing::refusal(other),
    }
}

/// Sign one digest of signed attributes in the token; the value as CMS carries it.
fn token_sign(
    st: &AppState,
    key_id: &[u8],
    key: KeyType,
    resolved: &ResolvedSign,
    digest: &[u8],
) -> Result<Vec<u8>, CscError> {
    let input = match resolved.scheme {
        Scheme::Pkcs1v15 => crypto::digest_info::digest_info(resolved.hash, digest)?,
        Scheme::Pss { .. } | Scheme::Ecdsa => digest.to_vec(),
    };
    let started = std::time::Instant::now();
    let signed = st.qscd.sign(
        key_id,
        super::signing::mechanism(resolved),
        &[input.as_slice()],
    );
    st.metrics.hsm_sign(started.elapsed());
    let raw = signed?
        .into_iter()
        .next()
        .ok_or_else(|| CscError::Internal("token returned no signature".into()))?;
    st.metrics.signatures(resolved.algo.oid(), 1);
    match resolved.scheme {
        Scheme::Ecdsa => Ok(crypto::ecdsa::raw_to_der(key, &raw)?),
        _ => Ok(raw),
    }
}

fn cms_error(e: cades::CmsError) -> CscError {
    CscError::Internal(format!("CAdES: {e}"))
}

/// Build one CAdES signature (and its time-stamp for B-T). Blocking.
fn build(
    st: &AppState,
    task: &Task,
    chain: &[Vec<u8>],
    key_id: &[u8],
    key: KeyType,
    tsa: Option<&tsa::Tsa>,
    now: i64,
) -> Result<String, CscError> {
    let algorithm = SignerAlgorithm::for_sign_algo(
        task.resolved.algo,
        task.resolved.hash,
        task.pss_params.as_deref(),
    )
    .map_err(cms_error)?;
    let signing = Signing {
        content_type: cades::ID_DATA,
        content: task.content.as_deref(),
        message_digest: &task.digest,
        signing_time: Some(now),
        chain,
        algorithm: &algorithm,
    };
    let mut built = cades::sign(&signing, |d| token_sign(st, key_id, key, &task.resolved, d))
        .map_err(cms_error)??;
    if task.level == Level::BaselineT {
        let tsa = tsa.ok_or_else(|| CscError::Internal("no TSA for AdES-B-T".into()))?;
        let value = built.signature_value().map_err(cms_error)?;
        let hash = task.resolved.hash;
        // Stamped now, after the signature value exists: the request's arrival time (`now`,
        // the signing-time) may lie seconds before it when the database or the token made
        // the call wait, and the token must not be dated before its content.
        let token = tsa::stamp(
            st.qscd.as_ref(),
            tsa,
            st.clock.now(),
            &tsa::StampRequest {
                hash,
                digest: &hash.digest(&value),
                nonce: None,
                with_certs: true,
            },
        )?;
        built
            .add_unsigned(cades::ID_SIGNATURE_TIME_STAMP, &token)
            .map_err(cms_error)?;
    }
    Ok(crypto::b64::encode(&built.to_der().map_err(cms_error)?))
}

#[tracing::instrument(skip_all, fields(credential_id = input.credential_id.as_deref().unwrap_or("(by SAD)"), n = input.items.len()))]
pub async fn sign_doc(
    state: &AppState,
    user: &UserId,
    input: SignDocInput,
) -> Result<SignDocOutput, CscError> {
    let sad = input
        .sad
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter SAD"))?;
    let credential_id = match (input.credential_id, &input.signature_qualifier) {
        (Some(id), _) => id,
        (None, Some(_)) => credential_of_sad(state, &sad).await?,
        (None, None) => {
            return Err(CscError::invalid(
                "Missing (or invalid type) string parameter credentialID",
            ));
        }
    };
    let cred = super::owned_credential(state, user, &credential_id).await?;
    super::check_usable(state, &cred.status, cred.failed_auths)?;
    let now = state.clock.now();
    super::check_certificate_valid(cred.not_before, cred.not_after, now)?;
    if let Some(wanted) = &input.signature_qualifier
        && let Some(why) = super::qualifier_mismatch(&cred.cert_chain, wanted)?
    {
        return Err(CscError::invalid(why));
    }
    let key = super::key_type_of(&cred.key_type)?;
    let modulus_bytes =
        (key == KeyType::Rsa).then(|| usize::try_from(cred.key_bits / 8).unwrap_or(0));
    let (tasks, hash) = plan(&input.items, Some((key, modulus_bytes)))?;
    if tasks.len() > usize::try_from(cred.multisign).unwrap_or(0) {
        return Err(CscError::invalid(
            "Too many signatures for one call (more than multisign)",
        ));
    }
    let digests: Vec<Vec<u8>> = tasks.iter().map(|t| t.digest.clone()).collect();
    let chain = crate::pki::split_chain(&cred.cert_chain)?;
    let needs_tsa = tasks.iter().any(|t| t.level == Level::BaselineT);

    let st = state.clone();
    let user_id = user.0.clone();
    let sad_hash = crate::auth::token::hash(sad.expose());
    let cred_id = cred.id.clone();
    let key_id = cred.key_id.clone();
    let out = blocking::run(move || {
        // Before anything is spent: a B-T request needs a working TSA.
        let tsa = needs_tsa
            .then(|| tsa::Tsa::load(st.qscd.as_ref()))
            .transpose()?;
        let spend = repo::sads::Spend {
            sad_hash: &sad_hash,
            user_id: &user_id,
            credential_id: &cred_id,
            hash_algo: hash.name(),
            digests: &digests,
            clock: st.clock.as_ref(),
            max_failures: st.settings.max_auth_failures,
        };
        let detail = serde_json::json!({
            "format": "CAdES",
            "sign_algos": tasks.iter().map(|t| t.resolved.algo.oid()).collect::<Vec<_>>(),
            "hash_algo": hash.name(),
            "hashes": digests.iter().map(hex::encode).collect::<Vec<_>>(),
        });
        super::signing::spend_then_sign(
            &st,
            st.store.conn()?,
            "sign_doc",
            &spend,
            detail,
            refusal,
            || {
                let mut out = SignDocOutput::default();
                for task in &tasks {
                    let b64 = build(&st, task, &chain, &key_id, key, tsa.as_ref(), now)?;
                    if task.attached {
                        out.documents_with_signature.push(b64);
                    } else {
                        out.signature_objects.push(b64);
                    }
                }
                Ok(out)
            },
        )
    })
    .await?;
    tracing::info!("CAdES signatures produced");
    Ok(out)
}

/// The credential a SAD (or an OAuth credential token) authorizes: how signDoc finds it when
/// the request names a `signatureQualifier` instead of a `credentialID`. An unknown SAD is the
/// SAD's error; whose credential it is, is checked by the caller as for a named one.
async fn credential_of_sad(state: &AppState, sad: &Secret) -> Result<String, CscError> {
    let store = state.store.clone();
    let hash = crate::auth::token::hash(sad.expose());
    blocking::run(move || Ok(store.with(|c| repo::sads::credential_of(c, &hash))?))
        .await?
        .ok_or_else(|| CscError::invalid("Invalid parameter SAD"))
}
