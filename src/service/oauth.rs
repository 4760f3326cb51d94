//! The OAuth 2.0 authorization server of CSC v2 (§8): `oauth2/authorize` (a page where the
//! signer proves sole control), `oauth2/pushed_authorize` (PAR, RFC 9126), `oauth2/token`
//! (authorization_code with PKCE S256, refresh_token, client_credentials for clients given a
//! service user) and `oauth2/revoke` (RFC 7009). `scope=service` yields an API token;
//! `scope=credential` (or RAR `authorization_details` of type `credential`) yields a token that
//! *is* a SAD: stored as a SAD row keyed by the token's hash, bound to the user, credential,
//! digest algorithm, digests and count, and spent by the same code as any SAD.

use std::collections::HashMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::token;
use crate::blocking;
use crate::crypto::HashAlg;
use crate::error::CscError;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::{
    AccessTokenRow, CredentialRow, NewSad, SCOPE_CREDENTIAL, SCOPE_SERVICE, UserId,
};
use crate::store::repo;
use crate::store::repo::oauth::{ClientRow, CodeRow, Issue, Redeemed, RefreshRow, RequestRow};

/// How long the signer has to complete the page.
pub const PAGE_TTL: i64 = 600;
/// Lifetime of a pushed request_uri (RFC 9126 suggests short).
pub const PAR_TTL: i64 = 90;
/// Lifetime of an authorization code.
pub const CODE_TTL: i64 = 60;
/// Lifetime of a refresh token.
pub const REFRESH_TTL: i64 = 30 * 86_400;
/// Prefix of pushed request URIs.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// An OAuth error (RFC 6749 §5.2 shape: `error`, `error_description`).
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, d: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: d.into(),
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(401, "invalid_client", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", d)
    }
    pub fn access_denied(d: impl Into<String>) -> Self {
        Self::new(400, "access_denied", d)
    }
    pub fn payload_too_large() -> Self {
        Self::new(413, "invalid_request", "Request body too large")
    }
    pub fn request_timeout() -> Self {
        Self::new(408, "invalid_request", "Request body not received in time")
    }
}

impl From<CscError> for OAuthError {
    fn from(e: CscError) -> Self {
        match e {
            CscError::Unavailable(_) | CscError::NotReady(_) => Self::new(
                503,
                "temporarily_unavailable",
                "Service temporarily unavailable",
            ),
            CscError::Busy(why) => Self::new(503, "temporarily_unavailable", why),
            CscError::Internal(cause) => {
                tracing::error!(cause = %cause, "oauth request failed");
                Self::new(500, "server_error", "Internal server error")
            }
            other => Self::invalid_request(other.to_string()),
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        CscError::from(e).into()
    }
}

/// Form or query parameters; a repeated parameter is an error (RFC 6749 §3.1). The error names
/// the parameter only when the name looks like one (it is request text, possibly a lot of it).
pub fn single_params(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>, OAuthError> {
    let mut map = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if map.contains_key(&k) {
            let named = (1..=40).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            return Err(OAuthError::invalid_request(if named {
                format!("Parameter {k} given more than once")
            } else {
                "A parameter is given more than once".to_string()
            }));
        }
        map.insert(k, v);
    }
    Ok(map)
}

/// The parameters that describe a credential authorization (`scope=credential`): without that
/// scope, or beside RAR `authorization_details` (which names the credential itself), they are
/// refused rather than silently ignored.
const CREDENTIAL_PARAMS: [&str; 6] = [
    "credentialID",
    "numSignatures",
    "hashes",
    "hash",
    "hashAlgorithmOID",
    "signatureQualifier",
];

/// A validated authorization request, as stored between the steps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthzParams {
    pub client_id: String,
    pub redirect_uri: String,
    /// `service` or `credential`.
    pub scope: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub credential_id: Option<String>,
    pub num_signatures: Option<i64>,
    pub hash_oid: Option<String>,
    /// Digests, standard base64.
    pub digests: Vec<String>,
    /// Document labels (RAR `documentDigests[].label`), same order; may be empty.
    pub labels: Vec<String>,
    pub description: Option<String>,
    /// RAR `authorization_details` as the client sent it.
    pub authorization_details: Option<serde_json::Value>,
    pub lang: Option<String>,
    /// `signatureQualifier` beside `credentialID`: it must be what the credential makes.
    #[serde(default)]
    pub signature_qualifier: Option<String>,
}

impl AuthzParams {
    pub fn is_credential(&self) -> bool {
        self.scope == SCOPE_CREDENTIAL
    }
}

/// Where a failed authorization request goes: to the client (redirect with `error`) once the
/// client and redirect URI are known good, else to the user (an error page, never a redirect).
#[derive(Debug)]
pub enum AuthzFailure {
    Page(OAuthError),
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

impl From<OAuthError> for AuthzFailure {
    fn from(e: OAuthError) -> Self {
        AuthzFailure::Page(e)
    }
}

fn client_redirects(client: &ClientRow) -> Vec<String> {
    serde_json::from_str(&client.redirect_uris).unwrap_or_default()
}

/// The client and its exact registered redirect URI (the only one may be omitted).
fn check_redirect(client: &ClientRow, given: Option<&String>) -> Result<String, OAuthError> {
    let registered = client_redirects(client);
    match given {
        Some(uri) if registered.iter().any(|r| r == uri) => Ok(uri.clone()),
        Some(_) => Err(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        )),
        None => match registered.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(OAuthError::invalid_request(
                "Missing parameter redirect_uri",
            )),
        },
    }
}

async fn load_client(st: &AppState, client_id: &str) -> Result<Option<ClientRow>, OAuthError> {
    let store = st.store.clone();
    let id = client_id.to_string();
    Ok(blocking::run(move || Ok(store.with(|c| repo::oauth::client(c, &id))?)).await?)
}

fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

fn valid_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The most an authorization request may hold once parsed (it is stored until its page or
/// pushed request expires, before anyone has logged in): 1000 SHA-512 digests with short
/// labels fit.
const MAX_STORED_REQUEST: usize = 256 * 1024;
/// The most digests one authorization request may bind.
const MAX_REQUEST_DIGESTS: usize = 1000;

/// Parse and check the authorization parameters of a known client (everything but the user),
/// and bound what will be stored of them.
fn parse_authz(
    p: &HashMap<String, String>,
    client: &ClientRow,
    redirect_uri: String,
) -> Result<AuthzParams, OAuthError> {
    let params = parse_authz_fields(p, client, redirect_uri)?;
    if params.lang.as_deref().is_some_and(|l| {
        l.is_empty() || l.len() > 35 || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }) {
        return Err(OAuthError::invalid_request(
            "Invalid parameter lang: a language tag (BCP 47) of at most 35 characters",
        ));
    }
    if params.digests.len() > MAX_REQUEST_DIGESTS {
        return Err(OAuthError::invalid_request(
            "Too many hashes for one authorization (more than 1000)",
        ));
    }
    if params.labels.iter().any(|l| l.chars().count() > 500) {
        return Err(OAuthError::invalid_request(
            "authorization_details: a documentDigests label is longer than 500 characters",
        ));
    }
    let stored = serde_json::to_string(&params)
        .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
    if stored.len() > MAX_STORED_REQUEST {
        return Err(OAuthError::invalid_request(
            "The authorization request is too large",
        ));
    }
    Ok(params)
}

fn parse_authz_fields(
    p: &HashMap<String, String>,
    client: &ClientRow,
    redirect_uri: String,
) -> Result<AuthzParams, OAuthError> {
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::new(
                400,
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
        None => {
            return Err(OAuthError::invalid_request(
                "Missing parameter response_type",
            ));
        }
    }
    let code_challenge = p
        .get("code_challenge")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter code_challenge (PKCE)"))?;
    if p.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        ));
    }
    if code_challenge.len() != 43 || !valid_pkce_value(code_challenge) {
        return Err(OAuthError::invalid_request(
            "Invalid parameter code_challenge",
        ));
    }
    let state = p.get("state").cloned();
    if state.as_ref().is_some_and(|s| s.chars().count() > 512) {
        return Err(OAuthError::invalid_request("Invalid parameter state"));
    }
    let description = p.get("description").cloned();
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500)
    {
        return Err(OAuthError::invalid_request(
            "description is longer than 500 characters",
        ));
    }
    let mut params = AuthzParams {
        client_id: client.client_id.clone(),
        redirect_uri,
        scope: SCOPE_SERVICE.into(),
        state,
        code_challenge: code_challenge.clone(),
        credential_id: None,
        num_signatures: None,
        hash_oid: None,
        digests: Vec::new(),
        labels: Vec::new(),
        description,
        authorization_details: None,
        lang: p.get("lang").cloned(),
        signature_qualifier: None,
    };
    let scope = p.get("scope").map(String::as_str);
    let credential_params = CREDENTIAL_PARAMS.iter().any(|k| p.contains_key(*k));
    if let Some(details) = p.get("authorization_details") {
        if scope.is_some_and(|s| s != SCOPE_CREDENTIAL) {
            return Err(OAuthError::new(
                400,
                "invalid_scope",
                "authorization_details cannot be combined with scope service",
            ));
        }
        if credential_params {
            return Err(OAuthError::invalid_request(
                "authorization_details names the credential and hashes: credentialID, \
                 numSignatures, hashes, hashAlgorithmOID and signatureQualifier cannot be added",
            ));
        }
        rar_into(details, &mut params)?;
    } else {
        match scope {
            None | Some("service") if credential_params => {
                return Err(OAuthError::invalid_request(
                    "credentialID, numSignatures, hashes, hashAlgorithmOID and \
                     signatureQualifier need scope credential",
                ));
            }
            None | Some("service") => return Ok(params),
            Some("credential") => credential_into(p, &mut params)?,
            Some(_) => {
                return Err(OAuthError::new(
                    400,
                    "invalid_scope",
                    "scope must be service or credential",
                ));
            }
        }
    }
    params.scope = SCOPE_CREDENTIAL.into();
    check_digests(&params)?;
    Ok(params)
}

fn credential_into(p: &HashMap<String, String>, out: &mut AuthzParams) -> Result<(), OAuthError> {
    out.credential_id = p.get("credentialID").cloned();
    out.signature_qualifier = p.get("signatureQualifier").cloned();
    check_credential_named(out)?;
    out.num_signatures = Some(
        p.get("numSignatures")
            .ok_or_else(|| OAuthError::invalid_request("Missing parameter numSignatures"))?
            .parse()
            .map_err(|_| OAuthError::invalid_request("Invalid parameter numSignatures"))?,
    );
    if p.contains_key("hashes") && p.contains_key("hash") {
        return Err(OAuthError::invalid_request(
            "Invalid request: hashes and its v1 name hash both given",
        ));
    }
    let hashes = p.get("hashes").or_else(|| p.get("hash")).ok_or_else(|| {
        OAuthError::invalid_request("Missing parameter hashes: SCAL2 credentials need them")
    })?;
    out.hash_oid = Some(
        p.get("hashAlgorithmOID")
            .cloned()
            .ok_or_else(|| OAuthError::invalid_request("Missing parameter hashAlgorithmOID"))?,
    );
    // The query parameter carries base64url; keep standard base64 internally.
    for h in hashes.split(',') {
        let raw = crate::crypto::b64::decode(h)
            .map_err(|_| OAuthError::invalid_request("Invalid parameter hashes"))?;
        out.digests.push(crate::crypto::b64::encode(&raw));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RarDigest {
    hash: String,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RarDetail {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "credentialID", default)]
    credential_id: Option<String>,
    #[serde(default)]
    signature_qualifier: Option<String>,
    document_digests: Vec<RarDigest>,
    #[serde(rename = "hashAlgorithmOID")]
    hash_algorithm_oid: String,
    #[serde(default)]
    num_signatures: Option<i64>,
}

fn rar_into(details: &str, out: &mut AuthzParams) -> Result<(), OAuthError> {
    let value: serde_json::Value = serde_json::from_str(details)
        .map_err(|_| OAuthError::invalid_request("authorization_details is not JSON"))?;
    // serde's message would quote the offending value: name the field at most.
    let list: Vec<RarDetail> = serde_json::from_value(value.clone()).map_err(|e| {
        let msg = e.to_string();
        let field = msg
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .filter(|f| f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        OAuthError::invalid_request(match field {
            Some(f) => format!("Invalid authorization_details: missing {f}"),
            None => "Invalid authorization_details: an entry has a field of the wrong type or \
                     value"
                .to_string(),
        })
    })?;
    let [detail] = list.as_slice() else {
        return Err(OAuthError::invalid_request(
            "authorization_details must hold exactly one credential entry",
        ));
    };
    if detail.kind != "credential" {
        return Err(OAuthError::invalid_request(
            "authorization_details type must be credential",
        ));
    }
    out.credential_id = detail.credential_id.clone();
    out.signature_qualifier = detail.signature_qualifier.clone();
    check_credential_named(out)?;
    out.hash_oid = Some(detail.hash_algorithm_oid.clone());
    for d in &detail.document_digests {
        let raw = crate::crypto::b64::decode(&d.hash).map_err(|_| {
            OAuthError::invalid_request("authorization_details: invalid documentDigests hash")
        })?;
        out.digests.push(crate::crypto::b64::encode(&raw));
        out.labels.push(d.label.clone().unwrap_or_default());
    }
    out.num_signatures = Some(
        detail
            .num_signatures
            .unwrap_or(i64::try_from(detail.document_digests.len()).unwrap_or(i64::MAX)),
    );
    out.authorization_details = Some(value);
    Ok(())
}

/// A credential request names its credential, or the kind of signature it must make
/// (`signatureQualifier` alone: the signer's credential that makes it is picked once the
/// signer has logged in on the page, CSC §8).
fn check_credential_named(p: &AuthzParams) -> Result<(), OAuthError> {
    if p.credential_id.is_none() && p.signature_qualifier.is_none() {
        return Err(OAuthError::invalid_request(
            "Missing parameter credentialID (or signatureQualifier)",
        ));
    }
    if p.signature_qualifier
        .as_deref()
        .is_some_and(|q| q.is_empty() || q.len() > 64)
    {
        return Err(OAuthError::invalid_request(
            "Invalid parameter signatureQualifier",
        ));
    }
    Ok(())
}

fn check_digests(p: &AuthzParams) -> Result<(HashAlg, Vec<Vec<u8>>), OAuthError> {
    let oid = p
        .hash_oid
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter hashAlgorithmOID"))?;
    let alg = HashAlg::from_oid(oid)
        .map_err(|_| OAuthError::invalid_request("Invalid parameter hashAlgorithmOID"))?;
    let digests = super::decode_digests(&p.digests, alg).map_err(OAuthError::from)?;
    if digests.is_empty() {
        return Err(OAuthError::invalid_request("Empty hash list"));
    }
    let n = p.num_signatures.unwrap_or(0);
    if n < 1 || i64::try_from(digests.len()).ok() != Some(n) {
        return Err(OAuthError::invalid_request(
            "numSignatures must equal the number of hashes (SCAL2)",
        ));
    }
    Ok((alg, digests))
}

/// What the authorization page shows and posts back.
pub struct Page {
    /// The request's handle (a hidden form field).
    pub handle: Secret,
    /// The CSRF token (a hidden form field and a cookie).
    pub csrf: Secret,
    pub params: AuthzParams,
    pub client_name: String,
    /// Credential scope: what the page shows of the credential and asks for.
    pub credential: Option<CredentialView>,
    /// A message after a failed attempt.
    pub error: Option<&'static str>,
}

/// Send the owner of an online-OTP credential its code from the page, unless one is pending
/// (nothing for an authenticator-app credential).
async fn send_online_code(st: &AppState, cred: &CredentialRow) -> Result<(), OAuthError> {
    if !super::challenge::is_online(cred) {
        return Ok(());
    }
    let owner = UserId(cred.user_id.clone());
    let resend = super::challenge::Resend::UnlessPending;
    super::challenge::send_code(st, &owner, &cred.id, "OTP", resend).await?;
    Ok(())
}

/// Which fields a credential-scope page asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A named authenticator-app credential: user name, password, PIN and code, at once.
    All,
    /// User name and password first: for an online-OTP credential, whose code is sent only once
    /// they are its owner's (opening the page, which anyone with a client ID can do, sends
    /// nothing), and for a credential picked by its qualifier, once the signer is known.
    Login,
    /// After the signer logged in on this page: PIN and code (sent now if online).
    Codes,
}

/// The credential as the page shows it.
#[derive(Debug, Clone)]
pub struct CredentialView {
    /// Its description or ID; none before a credential picked by qualifier is known.
    pub name: Option<String>,
    /// Whether its code is sent (online OTP) rather than read from an authenticator app.
    pub sends_code: bool,
    pub step: Step,
}

impl CredentialView {
    fn of(cred: &CredentialRow, step: Step) -> CredentialView {
        CredentialView {
            name: Some(cred.description.clone().unwrap_or_else(|| cred.id.clone())),
            sends_code: super::challenge::is_online(cred),
            step,
        }
    }
}

/// The live authorization request of a page, by its handle's hash.
async fn live_request(st: &AppState, handle_hash: &[u8]) -> Result<Option<RequestRow>, OAuthError> {
    let (store, hh, now) = (st.store.clone(), handle_hash.to_vec(), st.clock.now());
    Ok(blocking::run(move || Ok(store.with(|c| repo::oauth::request(c, &hh, now))?)).await?)
}

async fn credential_row(st: &AppState, id: &str) -> Result<Option<CredentialRow>, OAuthError> {
    let store = st.store.clone();
    let id = id.to_string();
    Ok(blocking::run(move || Ok(store.with(|c| repo::oauth::credential(c, &id))?)).await?)
}

/// The credential of a credential-scope request, usable for this request.
async fn usable_credential(st: &AppState, p: &AuthzParams) -> Result<CredentialRow, OAuthError> {
    let id = p.credential_id.as_deref().unwrap_or_default();
    let cred = credential_row(st, id)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("Invalid parameter credentialID"))?;
    judge_credential(st, p, cred)
}

/// The signer's credential for a request that named only a `signatureQualifier`: the oldest
/// of `user_id`'s credentials that is usable now, makes that qualifier, allows the request's
/// signatures (picked at the page's login step).
async fn credential_by_qualifier(
    st: &AppState,
    p: &AuthzParams,
    user_id: &str,
) -> Result<Option<CredentialRow>, OAuthError> {
    let usable = repo::credentials::UsableAt {
        now: st.clock.now(),
        max_failures: st.settings.max_auth_failures,
    };
    let (store, user_id) = (st.store.clone(), user_id.to_string());
    let rows = blocking::run(move || {
        let start = repo::credentials::Cursor::start();
        Ok(store
            .with(|c| repo::credentials::page_of_user(c, &user_id, &start, Some(usable), 1000))?)
    })
    .await?;
    for cred in rows {
        match judge_credential(st, p, cred) {
            Ok(cred) => return Ok(Some(cred)),
            // Not this one (another qualifier, too few signatures); a fault is no answer.
            Err(e) if e.status < 500 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Whether `cred` can serve the request: usable, enough signatures, the qualifier asked for.
fn judge_credential(
    st: &AppState,
    p: &AuthzParams,
    cred: CredentialRow,
) -> Result<CredentialRow, OAuthError> {
    if !super::is_usable(
        &cred.status,
        cred.failed_auths,
        st.settings.max_auth_failures,
    ) {
        return Err(OAuthError::access_denied(
            "The credential is disabled or locked",
        ));
    }
    if p.num_signatures.unwrap_or(0) > i64::from(cred.multisign) {
        return Err(OAuthError::invalid_request(
            "Numbers of signatures is too high",
        ));
    }
    if let Some(wanted) = &p.signature_qualifier
        && let Some(why) = super::qualifier_mismatch(&cred.cert_chain, wanted)?
    {
        return Err(OAuthError::invalid_request(why));
    }
    Ok(cred)
}

/// `GET oauth2/authorize`: validate, remember the request, and describe the page to show.
pub async fn begin(st: &AppState, p: HashMap<String, String>) -> Result<Page, AuthzFailure> {
    let client_id = p
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter client_id"))?;
    let client = load_client(st, client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("Unknown client_id"))?;
    let now = st.clock.now();
    let csrf = token::generate();
    let csrf_hash = token::hash(csrf.expose());
    let (handle, params, judged) = if let Some(uri) = p.get("request_uri") {
        let handle = uri
            .strip_prefix(REQUEST_URI_PREFIX)
            .ok_or_else(|| OAuthError::invalid_request("Invalid parameter request_uri"))?;
        let handle = Secret::new(handle);
        let handle_hash = token::hash(handle.expose());
        let store = st.store.clone();
        let (hh, ch) = (handle_hash.clone(), csrf_hash.clone());
        let cid = client.client_id.clone();
        let row = blocking::run(move || {
            let row = store.with(|c| repo::oauth::request(c, &hh, now))?;
            // A pushed request opens one page, once, and only for its own client: another
            // client's attempt must not use it up.
            let bound = match &row {
                Some(r) if r.pushed && r.client_id == cid => {
                    store.with(|c| repo::oauth::bind_csrf(c, &hh, &ch, now + PAGE_TTL))?
                }
                _ => false,
            };
            Ok(row.map(|r| (bound, r)))
        })
        .await
        .map_err(OAuthError::from)?;
        let row = match row {
            Some((_, r)) if r.pushed && r.client_id != client.client_id => {
                return Err(
                    OAuthError::invalid_request("request_uri belongs to another client").into(),
                );
            }
            Some((true, r)) => r,
            _ => {
                return Err(
                    OAuthError::invalid_request("request_uri is unknown, used or expired").into(),
                );
            }
        };
        let params: AuthzParams = serde_json::from_str(&row.params)
            .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
        (handle, params, None)
    } else {
        let redirect_uri = check_redirect(&client, p.get("redirect_uri"))?;
        let redirect = |error| AuthzFailure::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: p.get("state").cloned(),
            error,
        };
        let params = parse_authz(&p, &client, redirect_uri.clone()).map_err(redirect)?;
        // The credential is judged before anything is stored: a request for an unknown or
        // unusable credential leaves no row behind.
        let cred = match params.is_credential() && params.credential_id.is_some() {
            true => Some(usable_credential(st, &params).await.map_err(redirect)?),
            false => None,
        };
        let handle = token::generate();
        let row = RequestRow {
            handle_hash: token::hash(handle.expose()),
            client_id: client.client_id.clone(),
            params: serde_json::to_string(&params)
                .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?,
            csrf_hash: Some(csrf_hash),
            pushed: false,
            expires_at: now + PAGE_TTL,
            created_at: now,
            signer_id: None,
        };
        let store = st.store.clone();
        blocking::run(move || Ok(store.with(|c| repo::oauth::insert_request(c, &row))?))
            .await
            .map_err(OAuthError::from)?;
        (handle, params, cred)
    };
    let redirect = |error| AuthzFailure::Redirect {
        redirect_uri: params.redirect_uri.clone(),
        state: params.state.clone(),
        error,
    };
    let credential = if params.is_credential() && params.credential_id.is_none() {
        // Picked by its qualifier once the signer has logged in.
        Some(CredentialView {
            name: None,
            sends_code: false,
            step: Step::Login,
        })
    } else if params.is_credential() {
        let cred = match judged {
            Some(cred) => cred,
            None => usable_credential(st, &params).await.map_err(redirect)?,
        };
        // An online code is sent once the signer has logged in, not when anyone opens the page.
        let step = match super::challenge::is_online(&cred) {
            true => Step::Login,
            false => Step::All,
        };
        Some(CredentialView::of(&cred, step))
    } else {
        None
    };
    Ok(Page {
        handle,
        csrf,
        client_name: client.name,
        params,
        credential,
        error: None,
    })
}

/// The page's form, as posted.
pub struct Submission {
    pub handle: Secret,
    pub csrf_form: Secret,
    pub csrf_cookie: Option<Secret>,
    pub cancel: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub pin: Option<Secret>,
    pub otp: Option<Secret>,
}

/// What the page's submission leads to.
pub enum Outcome {
    /// Redirect to the client with a code.
    Code {
        redirect_uri: String,
        code: Secret,
        state: Option<String>,
    },
    /// Show the page again: its next step, or the same after a wrong answer (counted).
    Page(Box<Page>),
}

/// `POST oauth2/authorize`: the signer's answer.
pub async fn submit(st: &AppState, form: Submission) -> Result<Outcome, AuthzFailure> {
    let now = st.clock.now();
    let handle_hash = token::hash(form.handle.expose());
    let row = live_request(st, &handle_hash)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("This authorization page has expired"))?;
    // Double-submit CSRF check: the form's token equals the cookie's and is the one the page
    // was rendered with.
    let csrf_ok = match (&form.csrf_cookie, &row.csrf_hash) {
        (Some(cookie), Some(stored)) => {
            let same: bool = cookie
                .expose()
                .as_bytes()
                .ct_eq(form.csrf_form.expose().as_bytes())
                .into();
            let bound: bool = token::hash(form.csrf_form.expose()).ct_eq(stored).into();
            same && bound
        }
        _ => false,
    };
    if !csrf_ok {
        return Err(
            OAuthError::invalid_request("Invalid form submission (CSRF check failed)").into(),
        );
    }
    let params: AuthzParams = serde_json::from_str(&row.params)
        .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
    let redirect = |error| AuthzFailure::Redirect {
        redirect_uri: params.redirect_uri.clone(),
        state: params.state.clone(),
        error,
    };
    let drop_request = |st: &AppState| {
        let store = st.store.clone();
        let hh = handle_hash.clone();
        blocking::run(move || Ok(store.with(|c| repo::oauth::drop_request(c, &hh))?))
    };
    // The credential locked: the page ends, and the client hears access_denied.
    let locked = |st: &AppState| {
        let ended = drop_request(st);
        let denied = redirect(OAuthError::access_denied("Credential locked"));
        async move {
            match ended.await {
                Ok(_) => denied,
                Err(e) => OAuthError::from(e).into(),
            }
        }
    };
    if form.cancel {
        drop_request(st).await.map_err(OAuthError::from)?;
        return Err(redirect(OAuthError::access_denied("The signer declined")));
    }
    let client_name = load_client(st, &params.client_id)
        .await?
        .map(|c| c.name)
        .unwrap_or_default();
    let show = |error: Option<&'static str>, credential| {
        Outcome::Page(Box::new(Page {
            handle: form.handle.clone(),
            csrf: form.csrf_form.clone(),
            params: params.clone(),
            client_name: client_name.clone(),
            credential,
            error,
        }))
    };
    let retry = |error: &'static str, credential| show(Some(error), credential);
    let st2 = st.clone();
    let user_id = if params.is_credential() {
        // Named by the request, or picked by its qualifier at this page's login step. One that
        // can no longer serve (disabled or locked meanwhile) ends the page.
        let named = match params.credential_id {
            Some(_) => match usable_credential(st, &params).await {
                Ok(cred) => Some(cred),
                Err(e) => {
                    if e.status < 500 {
                        drop_request(st).await.map_err(OAuthError::from)?;
                    }
                    return Err(redirect(e));
                }
            },
            None => None,
        };
        let step = match (&named, &row.signer_id) {
            (_, Some(_)) => Step::Codes,
            (Some(cred), None) if !super::challenge::is_online(cred) => Step::All,
            _ => Step::Login,
        };
        let shown = |step| match &named {
            Some(cred) => Some(CredentialView::of(cred, step)),
            None => Some(CredentialView {
                name: None,
                sends_code: false,
                step,
            }),
        };
        let signer = match (&row.signer_id, step) {
            // The signer logged in on this page before.
            (Some(id), _) => id.clone(),
            _ => {
                let (Some(name), Some(pw)) = (form.username.clone(), form.password.clone()) else {
                    return Ok(retry("missing", shown(step)));
                };
                if step == Step::All && (form.pin.is_none() || form.otp.is_none()) {
                    return Ok(retry("missing", shown(step)));
                }
                // The signer logs in first: PIN and OTP are only tried (and only counted
                // towards the credential's lockout) for its owner, and an online code only
                // sent to its owner, so knowing a credential ID is not enough to lock it or to
                // send codes. A wrong password counts towards the user's login lockout, as
                // auth/login.
                let st3 = st.clone();
                let logged_in = blocking::run(move || {
                    let now = st3.clock.now();
                    super::session::check_password(&st3, &name, &pw, now)
                })
                .await;
                match logged_in {
                    Ok(user) if named.as_ref().is_none_or(|c| c.user_id == user.id) => user.id,
                    Ok(_) | Err(CscError::AuthenticationError) => {
                        return Ok(retry("wrong_password", shown(step)));
                    }
                    Err(e) => return Err(redirect(e.into())),
                }
            }
        };
        if step == Step::Login {
            let (cred, picked) = match named {
                Some(cred) => (cred, None),
                None => {
                    let found = credential_by_qualifier(st, &params, &signer)
                        .await
                        .map_err(redirect)?;
                    let Some(cred) = found else {
                        drop_request(st).await.map_err(OAuthError::from)?;
                        return Err(redirect(OAuthError::access_denied(
                            "None of the signer's credentials makes this signatureQualifier",
                        )));
                    };
                    // The request now names it: the next step, the code and the token do.
                    let mut p = params.clone();
                    p.credential_id = Some(cred.id.clone());
                    let p = serde_json::to_string(&p)
                        .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
                    (cred, Some(p))
                }
            };
            let store = st.store.clone();
            let (hh, who) = (handle_hash.clone(), signer.clone());
            let recorded = blocking::run(move || {
                let now = st2.clock.now();
                Ok(store.with(|c| repo::oauth::log_in(c, &hh, &who, picked.as_deref(), now))?)
            })
            .await
            .map_err(OAuthError::from)?;
            if !recorded {
                return Err(OAuthError::invalid_request(
                    "This authorization page has expired or was already used",
                )
                .into());
            }
            send_online_code(st, &cred).await.map_err(redirect)?;
            return Ok(show(None, Some(CredentialView::of(&cred, Step::Codes))));
        }
        let (Some(pin), Some(otp)) = (form.pin.clone(), form.otp.clone()) else {
            return Ok(retry("missing", shown(step)));
        };
        let cred = match named.clone() {
            Some(cred) if cred.user_id == signer => cred,
            _ => {
                return Err(redirect(OAuthError::access_denied(
                    "Not the signer's credential",
                )));
            }
        };
        let c2 = cred.clone();
        let st4 = st.clone();
        let checked = blocking::run(move || {
            let now = st4.clock.now();
            super::authorize::check_sole_control(&st4, &c2.user_id, &c2, &pin, &otp, now)
        })
        .await;
        match checked {
            Ok(()) => cred.user_id,
            Err(CscError::InvalidAuthenticationData) => {
                // The same page submitted twice at once: one got the code, the other ends here
                // (its attempt counted, as a replayed OTP); no page to show again, no new code.
                if live_request(st, &handle_hash).await?.is_none() {
                    return Err(OAuthError::invalid_request(
                        "This authorization page was already used",
                    )
                    .into());
                }
                if step == Step::Codes
                    && let Err(e) = send_online_code(st, &cred).await
                {
                    // A code used up by its wrong tries is replaced, a pending one kept; a
                    // credential that this attempt locked gets none, and ends the page.
                    if e.status < 500 {
                        return Err(locked(st).await);
                    }
                    return Err(redirect(e));
                }
                return Ok(retry("wrong_pin_otp", shown(step)));
            }
            Err(CscError::InvalidRequest(_)) => return Err(locked(st).await),
            Err(e) => return Err(redirect(e.into())),
        }
    } else {
        let (Some(name), Some(pw)) = (form.username.clone(), form.password.clone()) else {
            return Ok(retry("missing", None));
        };
        let checked = blocking::run(move || {
            let now = st2.clock.now();
            super::session::check_password(&st2, &name, &pw, now)
        })
        .await;
        match checked {
            Ok(user) => user.id,
            Err(CscError::AuthenticationError) => return Ok(retry("wrong_password", None)),
            Err(e) => return Err(redirect(e.into())),
        }
    };
    let code = token::generate();
    let row = CodeRow {
        code_hash: token::hash(code.expose()),
        client_id: params.client_id.clone(),
        user_id: user_id.clone(),
        // With the credential the signer authorized, named or picked.
        params: row.params,
        used: false,
        token_hash: None,
        expires_at: now + CODE_TTL,
        created_at: now,
    };
    let event = super::event(
        now,
        &user_id,
        "oauth_authorize",
        params.credential_id.as_deref(),
        "granted",
        serde_json::json!({
            "client_id": params.client_id,
            "scope": params.scope,
            "num_signatures": params.num_signatures,
            "hashes": params.digests,
        }),
    );
    let store = st.store.clone();
    let issued = blocking::run(move || {
        Ok(store.with(|c| repo::oauth::issue_code(c, &handle_hash, &row, &event))?)
    })
    .await
    .map_err(OAuthError::from)?;
    if !issued {
        return Err(OAuthError::invalid_request("This authorization page was already used").into());
    }
    tracing::info!(scope = %params.scope, "oauth authorization code issued");
    Ok(Outcome::Code {
        redirect_uri: params.redirect_uri,
        code,
        state: params.state,
    })
}

/// Client credentials as presented: HTTP Basic, or `client_id` (+ `client_secret`) in the form.
pub struct ClientAuth {
    pub basic: Option<(String, Secret)>,
}

/// Authenticate the client of a token, PAR or revocation request.
async fn authenticate_client(
    st: &AppState,
    auth: &ClientAuth,
    p: &HashMap<String, String>,
) -> Result<ClientRow, OAuthError> {
    let (id, secret) = match (&auth.basic, p.get("client_id"), p.get("client_secret")) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "Use one client authentication method, not two",
            ));
        }
        (Some((id, secret)), body_id, None) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            (id.clone(), Some(secret.clone()))
        }
        (None, Some(id), secret) => (id.clone(), secret.map(Secret::new)),
        (None, None, _) => return Err(OAuthError::invalid_client("Missing client authentication")),
    };
    let client = load_client(st, &id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("Client authentication failed"))?;
    match (&client.secret_hash, secret) {
        (Some(stored), Some(given)) if bool::from(token::hash(given.expose()).ct_eq(stored)) => {
            Ok(client)
        }
        (None, None) => Ok(client),
        _ => Err(OAuthError::invalid_client("Client authentication failed")),
    }
}

/// A successful token response (RFC 6749 §5.1 plus CSC's `credentialID` and RAR echo).
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    #[serde(rename = "credentialID", skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<serde_json::Value>,
}

/// `POST oauth2/token`.
pub async fn token_endpoint(
    st: &AppState,
    auth: ClientAuth,
    p: HashMap<String, String>,
) -> Result<TokenResponse, OAuthError> {
    let client = authenticate_client(st, &auth, &p).await?;
    let grant = p
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter grant_type"))?;
    let now = st.clock.now();
    match grant.as_str() {
        "authorization_code" => authorization_code(st, &client, &p, now).await,
        "refresh_token" => {
            let refresh = p
                .get("refresh_token")
                .ok_or_else(|| OAuthError::invalid_request("Missing parameter refresh_token"))?;
            let store = st.store.clone();
            let (hash, cid) = (token::hash(refresh), client.client_id.clone());
            let rotated = blocking::run(move || {
                Ok(store.with(|c| repo::oauth::rotate_refresh(c, &hash, &cid, now))?)
            })
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("Invalid or expired refresh_token"))?;
            let origin = Origin::Rotated(rotated.grant_hash);
            service_tokens(st, &client, &rotated.user_id, origin, now, "refresh_token").await
        }
        "client_credentials" => {
            let user = client.service_user_id.clone().ok_or_else(|| {
                OAuthError::new(
                    400,
                    "unauthorized_client",
                    "This client may not use client_credentials",
                )
            })?;
            if p.get("scope").is_some_and(|s| s != SCOPE_SERVICE) {
                return Err(OAuthError::new(
                    400,
                    "invalid_scope",
                    "client_credentials gives scope service only",
                ));
            }
            let mut response =
                service_tokens(st, &client, &user, Origin::None, now, "client_credentials").await?;
            // A service account gets no refresh token: it can ask again.
            response.refresh_token = None;
            Ok(response)
        }
        _ => Err(OAuthError::new(
            400,
            "unsupported_grant_type",
            "grant_type must be authorization_code, refresh_token or client_credentials",
        )),
    }
}

/// The answer to a code presented twice: whatever it gave is revoked (RFC 6749 §4.1.2).
fn code_replayed() -> OAuthError {
    tracing::warn!("authorization code presented twice; its token is revoked");
    OAuthError::invalid_grant("Code already used")
}

async fn authorization_code(
    st: &AppState,
    client: &ClientRow,
    p: &HashMap<String, String>,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let code = p
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter code"))?;
    let verifier = p
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter code_verifier (PKCE)"))?;
    let code_hash = token::hash(code);
    let store = st.store.clone();
    let ch = code_hash.clone();
    let redeemed =
        blocking::run(move || Ok(store.with(|c| repo::oauth::redeem_code(c, &ch, now))?)).await?;
    let row = match redeemed {
        Redeemed::Fresh(row) => row,
        Redeemed::Invalid => return Err(OAuthError::invalid_grant("Invalid or expired code")),
        Redeemed::Replayed => return Err(code_replayed()),
    };
    if row.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "Code was issued to another client",
        ));
    }
    let params: AuthzParams = serde_json::from_str(&row.params)
        .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
    if p.get("redirect_uri") != Some(&params.redirect_uri) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    if !valid_pkce_value(verifier) || !pkce_ok(verifier, &params.code_challenge) {
        return Err(OAuthError::invalid_grant("PKCE verification failed"));
    }
    if let Some(details) = p.get("authorization_details") {
        let given: serde_json::Value = serde_json::from_str(details)
            .map_err(|_| OAuthError::invalid_request("authorization_details is not JSON"))?;
        if params.authorization_details.as_ref() != Some(&given) {
            return Err(OAuthError::invalid_grant(
                "authorization_details differ from the authorization request",
            ));
        }
    }
    if params.is_credential() {
        credential_token(st, client, &row, &params, now).await
    } else {
        service_tokens(
            st,
            client,
            &row.user_id,
            Origin::Code(&code_hash),
            now,
            "authorization_code",
        )
        .await
    }
}

/// Where a service token pair comes from: an authorization code (its hash names the grant), the
/// rotation of a refresh token (whose grant it continues), or no grant (client_credentials).
enum Origin<'a> {
    Code(&'a [u8]),
    Rotated(Option<Vec<u8>>),
    None,
}

async fn service_tokens(
    st: &AppState,
    client: &ClientRow,
    user_id: &str,
    origin: Origin<'_>,
    now: i64,
    grant: &'static str,
) -> Result<TokenResponse, OAuthError> {
    let (code_hash, grant_hash) = match origin {
        Origin::Code(code) => (Some(code), Some(code.to_vec())),
        Origin::Rotated(grant) => (None, grant),
        Origin::None => (None, None),
    };
    let access = token::generate();
    let refresh = token::generate();
    let expires_in = st.settings.access_token_ttl;
    let access_row = AccessTokenRow {
        token_hash: token::hash(access.expose()),
        user_id: user_id.to_string(),
        expires_at: now + expires_in,
        revoked: false,
        created_at: now,
        scope: SCOPE_SERVICE.into(),
    };
    let refresh_row = RefreshRow {
        token_hash: token::hash(refresh.expose()),
        client_id: client.client_id.clone(),
        user_id: user_id.to_string(),
        access_token_hash: access_row.token_hash.clone(),
        revoked: false,
        expires_at: now + REFRESH_TTL,
        created_at: now,
        grant_hash,
    };
    let event = super::event(
        now,
        user_id,
        "oauth_token",
        None,
        "ok",
        serde_json::json!({"client_id": client.client_id, "grant": grant, "scope": "service"}),
    );
    let store = st.store.clone();
    let code = code_hash.map(<[u8]>::to_vec);
    let issued = blocking::run(move || {
        Ok(store.with(|c| {
            repo::oauth::issue_tokens(
                c,
                &Issue {
                    code_hash: code.as_deref(),
                    access: &access_row,
                    refresh: Some(&refresh_row),
                    sad: None,
                    event: &event,
                },
            )
        })?)
    })
    .await?;
    if !issued {
        return Err(code_replayed());
    }
    Ok(TokenResponse {
        access_token: access.expose().to_string(),
        token_type: "Bearer",
        expires_in,
        refresh_token: Some(refresh.expose().to_string()),
        scope: SCOPE_SERVICE.into(),
        credential_id: None,
        authorization_details: None,
    })
}

async fn credential_token(
    st: &AppState,
    client: &ClientRow,
    code: &CodeRow,
    params: &AuthzParams,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let (alg, digests) = check_digests(params)?;
    let cred_id = params.credential_id.clone().unwrap_or_default();
    let n = params.num_signatures.unwrap_or(0);
    let access = token::generate();
    let expires_in = st.settings.sad_ttl;
    let token_hash = token::hash(access.expose());
    let access_row = AccessTokenRow {
        token_hash: token_hash.clone(),
        user_id: code.user_id.clone(),
        expires_at: now + expires_in,
        revoked: false,
        created_at: now,
        scope: SCOPE_CREDENTIAL.into(),
    };
    // The token is the SAD: same row, same checks, same spending as credentials/authorize's.
    let sad = NewSad {
        sad_hash: token_hash.clone(),
        token_hash,
        user_id: code.user_id.clone(),
        credential_id: cred_id.clone(),
        hash_algo: alg.name().to_string(),
        num_signatures: i32::try_from(n).unwrap_or(1),
        expires_at: now + expires_in,
        created_at: now,
        digests,
    };
    let event = super::event(
        now,
        &code.user_id,
        "oauth_token",
        Some(&cred_id),
        "ok",
        serde_json::json!({
            "client_id": client.client_id,
            "grant": "authorization_code",
            "scope": "credential",
            "num_signatures": n,
            "hash_algo": sad.hash_algo,
            "hashes": sad.digests.iter().map(hex::encode).collect::<Vec<_>>(),
        }),
    );
    let store = st.store.clone();
    let code_hash = code.code_hash.clone();
    let issued = blocking::run(move || {
        Ok(store.with(|c| {
            repo::oauth::issue_tokens(
                c,
                &Issue {
                    code_hash: Some(&code_hash),
                    access: &access_row,
                    refresh: None,
                    sad: Some(&sad),
                    event: &event,
                },
            )
        })?)
    })
    .await?;
    if !issued {
        return Err(code_replayed());
    }
    // RAR: echo the details with what the AS filled in (EUDI clients require these fields).
    let details = params.authorization_details.as_ref().map(|_| {
        serde_json::json!([{
            "type": "credential",
            "credentialID": cred_id,
            "numSignatures": n,
            "hashAlgorithmOID": params.hash_oid,
            "documentDigests": params.digests.iter().zip(
                params.labels.iter().map(Some).chain(std::iter::repeat(None))
            ).map(|(h, l)| match l {
                Some(l) if !l.is_empty() => serde_json::json!({"hash": h, "label": l}),
                _ => serde_json::json!({"hash": h}),
            }).collect::<Vec<_>>(),
        }])
    });
    Ok(TokenResponse {
        access_token: access.expose().to_string(),
        token_type: "Bearer",
        expires_in,
        refresh_token: None,
        scope: SCOPE_CREDENTIAL.into(),
        credential_id: Some(cred_id),
        authorization_details: details,
    })
}

/// `POST oauth2/pushed_authorize` (PAR): store the request; its `request_uri` and lifetime.
pub async fn push(
    st: &AppState,
    auth: ClientAuth,
    mut p: HashMap<String, String>,
) -> Result<(String, i64), OAuthError> {
    let client = authenticate_client(st, &auth, &p).await?;
    p.remove("client_secret");
    if p.contains_key("request_uri") {
        return Err(OAuthError::invalid_request(
            "request_uri is not allowed in a pushed request",
        ));
    }
    let redirect_uri = check_redirect(&client, p.get("redirect_uri"))?;
    let params = parse_authz(&p, &client, redirect_uri)?;
    if params.is_credential() && params.credential_id.is_some() {
        usable_credential(st, &params).await?;
    }
    let now = st.clock.now();
    let handle = token::generate();
    let row = RequestRow {
        handle_hash: token::hash(handle.expose()),
        client_id: client.client_id,
        params: serde_json::to_string(&params)
            .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?,
        csrf_hash: None,
        pushed: true,
        expires_at: now + PAR_TTL,
        created_at: now,
        signer_id: None,
    };
    let store = st.store.clone();
    blocking::run(move || Ok(store.with(|c| repo::oauth::insert_request(c, &row))?)).await?;
    Ok((format!("{REQUEST_URI_PREFIX}{}", handle.expose()), PAR_TTL))
}

/// `POST oauth2/revoke` (RFC 7009): a token of this client stops working; an unknown token is
/// not an error.
pub async fn revoke(
    st: &AppState,
    auth: ClientAuth,
    p: HashMap<String, String>,
) -> Result<(), OAuthError> {
    let client = authenticate_client(st, &auth, &p).await?;
    let t = p
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter token"))?;
    let store = st.store.clone();
    let hash = token::hash(t);
    let revoked = blocking::run(move || {
        Ok(store.with(|c| repo::oauth::revoke_for_client(c, &hash, &client.client_id))?)
    })
    .await?;
    tracing::info!(revoked, "oauth token revocation");
    Ok(())
}

/// A new client: its id and (confidential clients) secret, shown once.
pub struct NewClient {
    pub client_id: String,
    pub client_secret: Option<Secret>,
}

/// Register a client (`quill client add`).
pub fn register_client(
    st: &crate::store::Store,
    name: &str,
    redirect_uris: &[String],
    public: bool,
    service_user: Option<&str>,
    now: i64,
) -> anyhow::Result<NewClient> {
    anyhow::ensure!(
        !redirect_uris.is_empty(),
        "at least one --redirect-uri is needed"
    );
    for uri in redirect_uris {
        let parsed = url::Url::parse(uri).map_err(|e| anyhow::anyhow!("{uri}: {e}"))?;
        anyhow::ensure!(
            parsed.fragment().is_none(),
            "{uri}: a redirect URI has no fragment"
        );
        // Schemes a browser would run or read locally, never a client's callback (RFC 8252
        // private-use schemes such as `com.example.app:/cb` stay allowed), and no credentials.
        anyhow::ensure!(
            !matches!(
                parsed.scheme(),
                "javascript" | "data" | "file" | "vbscript" | "blob" | "about"
            ),
            "{uri}: not a redirect URI scheme"
        );
        anyhow::ensure!(
            parsed.username().is_empty() && parsed.password().is_none(),
            "{uri}: a redirect URI has no user or password"
        );
        anyhow::ensure!(
            parsed.scheme() == "https"
                || parsed
                    .host_str()
                    .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]")
                || !matches!(parsed.scheme(), "http"),
            "{uri}: use https (http only for loopback)"
        );
    }
    let service_user_id = match service_user {
        Some(name) => Some(
            st.with(|c| repo::users::by_name(c, name))?
                .ok_or_else(|| anyhow::anyhow!("no user named {name}"))?
                .id,
        ),
        None => None,
    };
    let client_id = token::random_id(16);
    let secret = (!public).then(token::generate);
    let row = ClientRow {
        client_id: client_id.clone(),
        secret_hash: secret.as_ref().map(|s| token::hash(s.expose())),
        name: name.to_string(),
        redirect_uris: serde_json::to_string(redirect_uris)?,
        service_user_id,
        created_at: now,
    };
    st.with(|c| repo::oauth::insert_client(c, &row))?;
    Ok(NewClient {
        client_id,
        client_secret: secret,
    })
}
