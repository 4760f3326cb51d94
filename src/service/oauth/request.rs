//! An authorization request: its parameters (PKCE, scope, credential, digests, RAR
//! `authorization_details`) parsed, checked and bounded before it is stored.

use super::*;

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

/// The most an authorization request may hold once parsed (it is stored until its page or
/// pushed request expires, before anyone has logged in): 1000 SHA-512 digests with short
/// labels fit.
const MAX_STORED_REQUEST: usize = 256 * 1024;
/// The most digests one authorization request may bind.
const MAX_REQUEST_DIGESTS: usize = 1000;

/// Parse and check the authorization parameters of a known client (everything but the user),
/// and bound what will be stored of them.
pub(super) fn parse_authz(
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

pub(super) fn check_digests(p: &AuthzParams) -> Result<(HashAlg, Vec<Vec<u8>>), OAuthError> {
    let oid = p
        .hash_oid
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter hashAlgorithmOID"))?;
    let alg = HashAlg::from_oid(oid)
        .map_err(|_| OAuthError::invalid_request("Invalid parameter hashAlgorithmOID"))?;
    let digests = crate::service::decode_digests(&p.digests, alg).map_err(OAuthError::from)?;
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
