//! `credentials/list`, `credentials/info`, `credentials/authorize` (CSC §3.1–3.3). `list` pages
//! with the v1 fields `maxResults` / `pageToken` → `nextPageToken` (see `service::paging`).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::extract::{Caller, CscJson, SignCaller};
use crate::crypto::b64;
use crate::error::CscError;
use crate::pki;
use crate::secret::Secret;
use crate::service::authorize::{self as authz, AuthorizeInput, ExtendInput};
use crate::service::credentials::{self as creds, CredentialView};
use crate::service::paging;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    #[serde(default, rename = "userID")]
    pub user_id: Option<String>,
    #[serde(default)]
    pub credential_info: Option<bool>,
    #[serde(default)]
    pub certificates: Option<String>,
    #[serde(default)]
    pub cert_info: Option<bool>,
    #[serde(default)]
    pub auth_info: Option<bool>,
    #[serde(default)]
    pub only_valid: Option<bool>,
    /// Page size, 1 to 1000 (default and cap 1000). Read as raw JSON so that a wrong type gets
    /// a precise error instead of serde's generic one.
    #[serde(default)]
    pub max_results: Option<serde_json::Value>,
    /// `nextPageToken` of the previous page.
    #[serde(default)]
    pub page_token: Option<serde_json::Value>,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub client_data: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoRequest {
    #[serde(default, rename = "credentialID")]
    pub credential_id: Option<String>,
    #[serde(default)]
    pub certificates: Option<String>,
    #[serde(default)]
    pub cert_info: Option<bool>,
    #[serde(default)]
    pub auth_info: Option<bool>,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub client_data: Option<String>,
}

/// One `authData` element, `{"id", "value"?}`. Read from a JSON object only (a derived
/// `Deserialize` would also take `["PIN", "123456"]` positionally).
#[derive(Debug, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct AuthDataItem {
    pub id: String,
    pub value: Option<Secret>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for AuthDataItem {
    type Error = &'static str;

    fn try_from(mut item: serde_json::Map<String, serde_json::Value>) -> Result<Self, Self::Error> {
        use serde_json::Value;
        let id = match item.remove("id") {
            Some(Value::String(id)) => id,
            _ => return Err("authData: each item needs a string id"),
        };
        let value = match item.remove("value") {
            None | Some(Value::Null) => None,
            Some(Value::String(value)) => Some(Secret::new(value)),
            Some(_) => return Err("authData: value must be a string"),
        };
        Ok(AuthDataItem { id, value })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeRequest {
    #[serde(default, rename = "credentialID")]
    pub credential_id: Option<String>,
    #[serde(default)]
    pub num_signatures: Option<i64>,
    #[serde(default)]
    pub hashes: Option<Vec<String>>,
    /// v1 name of `hashes` (pyHanko).
    #[serde(default)]
    pub hash: Option<Vec<String>>,
    #[serde(default, rename = "hashAlgorithmOID", alias = "hashAlgo")]
    pub hash_algorithm_oid: Option<String>,
    #[serde(default)]
    pub auth_data: Option<Vec<AuthDataItem>>,
    /// v1 top-level PIN.
    #[serde(default, rename = "PIN")]
    pub pin: Option<Secret>,
    /// v1 top-level OTP.
    #[serde(default, rename = "OTP")]
    pub otp: Option<Secret>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub client_data: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct KeyJson {
    pub status: &'static str,
    pub algo: Vec<&'static str>,
    pub len: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<String>>,
    #[serde(rename = "issuerDN", skip_serializing_if = "Option::is_none")]
    pub issuer_dn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(rename = "subjectDN", skip_serializing_if = "Option::is_none")]
    pub subject_dn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuthObject {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'static str,
    pub format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<&'static str>,
    pub label: &'static str,
    pub description: &'static str,
}

#[derive(Debug, Serialize)]
pub struct AuthJson {
    pub mode: &'static str,
    pub expression: &'static str,
    pub objects: Vec<AuthObject>,
}

/// v1 `PIN` / `OTP` description objects, kept for v1-era clients.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1AuthJson {
    pub presence: &'static str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub format: &'static str,
    pub label: &'static str,
    pub description: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialInfoJson {
    #[serde(rename = "credentialID", skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// From the certificate's QCStatements (`pki::cert::signature_qualifier`).
    pub signature_qualifier: &'static str,
    pub key: KeyJson,
    pub cert: CertJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthJson>,
    #[serde(rename = "SCAL")]
    pub scal: &'static str,
    pub multisign: i32,
    pub lang: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<&'static str>,
    #[serde(rename = "PIN", skip_serializing_if = "Option::is_none")]
    pub pin: Option<V1AuthJson>,
    #[serde(rename = "OTP", skip_serializing_if = "Option::is_none")]
    pub otp: Option<V1AuthJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    #[serde(rename = "credentialIDs")]
    pub credential_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_infos: Option<Vec<CredentialInfoJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_valid: Option<bool>,
    /// Present exactly when more credentials follow: send it as `pageToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeResponse {
    #[serde(rename = "SAD")]
    pub sad: String,
    pub expires_in: i64,
}

impl From<authz::Authorization> for AuthorizeResponse {
    fn from(granted: authz::Authorization) -> Self {
        AuthorizeResponse {
            sad: granted.sad.expose().to_string(),
            expires_in: granted.expires_in,
        }
    }
}

#[derive(Clone, Copy)]
enum Certificates {
    None,
    Single,
    Chain,
}

fn certificates_param(value: Option<&str>) -> Result<Certificates, CscError> {
    match value {
        None | Some("single") => Ok(Certificates::Single),
        Some("none") => Ok(Certificates::None),
        Some("chain") => Ok(Certificates::Chain),
        Some(_) => Err(CscError::invalid("Invalid parameter certificates")),
    }
}

/// Shape one credential as the CSC `credentials/info` object.
fn to_json(
    v: &CredentialView,
    certs: Certificates,
    cert_info: bool,
    auth_info: bool,
    with_id: bool,
) -> CredentialInfoJson {
    let certificates = match certs {
        Certificates::None => None,
        Certificates::Single => Some(v.chain.iter().take(1).map(|c| b64::encode(c)).collect()),
        Certificates::Chain => Some(v.chain.iter().map(|c| b64::encode(c)).collect()),
    };
    let detail = |s: &str| cert_info.then(|| s.to_string());
    let otp_type = if v.otp_online { "online" } else { "offline" };
    CredentialInfoJson {
        credential_id: with_id.then(|| v.id.clone()),
        description: v.description.clone(),
        signature_qualifier: v.cert.qualifier,
        key: KeyJson {
            status: if v.enabled { "enabled" } else { "disabled" },
            algo: v.sign_algos.iter().map(|a| a.oid()).collect(),
            len: v.key_bits,
            curve: v.key_type.curve_oid(),
        },
        cert: CertJson {
            // CSC names no status for a certificate not yet valid, and asks for an accurate
            // one or none.
            status: match v.cert_validity {
                pki::Validity::Valid => Some("valid"),
                pki::Validity::Expired => Some("expired"),
                pki::Validity::NotYetValid => None,
            },
            certificates,
            issuer_dn: detail(&v.cert.issuer_dn),
            serial_number: detail(&v.cert.serial_hex),
            subject_dn: detail(&v.cert.subject_dn),
            valid_from: cert_info.then(|| pki::generalized_time(v.cert.not_before)),
            valid_to: cert_info.then(|| pki::generalized_time(v.cert.not_after)),
        },
        auth: auth_info.then(|| AuthJson {
            mode: "explicit",
            expression: "PIN AND OTP",
            objects: vec![
                AuthObject {
                    kind: "Password",
                    id: "PIN",
                    format: "N",
                    generator: None,
                    label: "PIN",
                    description: "The signing PIN (6 to 8 digits)",
                },
                if v.otp_online {
                    AuthObject {
                        kind: "ChallengeResponse",
                        id: "OTP",
                        format: "N",
                        generator: None,
                        label: "OTP",
                        description: "The 6-digit code sent by SMS or e-mail after credentials/getChallenge",
                    }
                } else {
                    AuthObject {
                        kind: "Password",
                        id: "OTP",
                        format: "N",
                        generator: Some("totp"),
                        label: "OTP",
                        description: "The 6-digit code from the authenticator app",
                    }
                },
            ],
        }),
        scal: "2",
        multisign: v.multisign,
        lang: "en-US",
        auth_mode: auth_info.then_some("explicit"),
        pin: auth_info.then_some(V1AuthJson {
            presence: "true",
            kind: None,
            format: "N",
            label: "PIN",
            description: "The signing PIN (6 to 8 digits)",
        }),
        otp: auth_info.then_some(V1AuthJson {
            presence: "true",
            kind: Some(otp_type),
            format: "N",
            label: "OTP",
            description: "The 6-digit code from the authenticator app",
        }),
    }
}

pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    body: CscJson<ListRequest>,
) -> Result<HttpResponse, CscError> {
    let req = body.0;
    if req.user_id.is_some() {
        return Err(CscError::invalid("userID parameter MUST be null"));
    }
    let certs = certificates_param(req.certificates.as_deref())?;
    let only_valid = req.only_valid.unwrap_or(false);
    let limit = paging::max_results(req.max_results.as_ref())?;
    let after = paging::page_token(&caller.user.0, req.page_token.as_ref())?;
    let details = req.credential_info.unwrap_or(false);
    let page = creds::list(&state, &caller.user, only_valid, details, limit, after).await?;
    let infos = page.views.map(|views| {
        views
            .iter()
            .map(|v| {
                to_json(
                    v,
                    certs,
                    req.cert_info.unwrap_or(false),
                    req.auth_info.unwrap_or(false),
                    true,
                )
            })
            .collect()
    });
    Ok(HttpResponse::Ok().json(ListResponse {
        credential_ids: page.ids,
        credential_infos: infos,
        only_valid: only_valid.then_some(true),
        next_page_token: page.next_page_token,
    }))
}

pub async fn info(
    state: web::Data<AppState>,
    caller: SignCaller,
    body: CscJson<InfoRequest>,
) -> Result<HttpResponse, CscError> {
    let req = body.0;
    let id = super::required_credential_id(req.credential_id)?;
    let certs = certificates_param(req.certificates.as_deref())?;
    let view = creds::info(&state, &caller.user, caller.credential_token.as_ref(), &id).await?;
    Ok(HttpResponse::Ok().json(to_json(
        &view,
        certs,
        req.cert_info.unwrap_or(false),
        true,
        false,
    )))
}

pub async fn authorize(
    state: web::Data<AppState>,
    caller: Caller,
    body: CscJson<AuthorizeRequest>,
) -> Result<HttpResponse, CscError> {
    let req = body.0;
    let credential_id = super::required_credential_id(req.credential_id)?;
    if req.hashes.is_some() && req.hash.is_some() {
        return Err(super::hashes_twice());
    }
    let mut pin = req.pin;
    let mut otp = req.otp;
    for item in req.auth_data.unwrap_or_default() {
        match item.id.as_str() {
            "PIN" => pin = item.value.or(pin),
            "OTP" => otp = item.value.or(otp),
            _ => return Err(CscError::invalid("Invalid parameter authData: unknown id")),
        }
    }
    let input = AuthorizeInput {
        credential_id,
        num_signatures: req.num_signatures,
        hashes: req.hashes,
        hashes_v1: req.hash,
        hash_algo: req.hash_algorithm_oid,
        pin,
        otp,
    };
    let granted = authz::authorize(&state, &caller.user, caller.token_hash, input).await?;
    Ok(super::ok_no_store().json(AuthorizeResponse::from(granted)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendRequest {
    #[serde(default, rename = "credentialID")]
    pub credential_id: Option<String>,
    #[serde(default, rename = "SAD")]
    pub sad: Option<Secret>,
    #[serde(default, alias = "hash")]
    pub hashes: Option<Vec<String>>,
    #[serde(default, rename = "hashAlgorithmOID", alias = "hashAlgo")]
    pub hash_algorithm_oid: Option<String>,
    #[serde(default)]
    pub client_data: Option<String>,
}

pub async fn extend_transaction(
    state: web::Data<AppState>,
    caller: Caller,
    body: CscJson<ExtendRequest>,
) -> Result<HttpResponse, CscError> {
    let req = body.0;
    let credential_id = super::required_credential_id(req.credential_id)?;
    let input = ExtendInput {
        credential_id,
        sad: req.sad,
        hashes: req.hashes,
        hash_algo: req.hash_algorithm_oid,
    };
    let granted = authz::extend_transaction(&state, &caller.user, input).await?;
    Ok(super::ok_no_store().json(AuthorizeResponse::from(granted)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeRequest {
    #[serde(default, rename = "credentialID")]
    pub credential_id: Option<String>,
    #[serde(default, rename = "authObjectID")]
    pub auth_object_id: Option<String>,
    #[serde(default)]
    pub client_data: Option<String>,
}

/// `credentials/getChallenge` (v2): `authObjectID` is required (CSC §3.5). The code goes out
/// of band, so the answer is 204.
pub async fn get_challenge(
    state: web::Data<AppState>,
    caller: Caller,
    body: CscJson<ChallengeRequest>,
) -> Result<HttpResponse, CscError> {
    send_challenge(&state, &caller, body.0, None).await
}

/// `credentials/sendOTP` (v1): the online OTP of the credential, `authObjectID` implied.
pub async fn send_otp(
    state: web::Data<AppState>,
    caller: Caller,
    body: CscJson<ChallengeRequest>,
) -> Result<HttpResponse, CscError> {
    send_challenge(&state, &caller, body.0, Some("OTP")).await
}

/// Send the code of the auth object the request names, else of `implied`.
async fn send_challenge(
    state: &AppState,
    caller: &Caller,
    req: ChallengeRequest,
    implied: Option<&str>,
) -> Result<HttpResponse, CscError> {
    let credential_id = super::required_credential_id(req.credential_id)?;
    let object = req
        .auth_object_id
        .or_else(|| implied.map(str::to_string))
        .ok_or_else(|| {
            CscError::invalid("Missing (or invalid type) string parameter authObjectID")
        })?;
    let resend = crate::service::challenge::Resend::Always;
    crate::service::challenge::send_code(state, &caller.user, &credential_id, &object, resend)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyType, sign_algos_for};

    fn view(cert_validity: pki::Validity) -> CredentialView {
        CredentialView {
            id: "c1".into(),
            description: None,
            enabled: true,
            key_type: KeyType::EcP256,
            key_bits: 256,
            sign_algos: sign_algos_for(KeyType::EcP256),
            chain: vec![vec![0x30, 0x00]],
            cert: pki::CertInfo {
                subject_dn: "CN=A".into(),
                issuer_dn: "CN=CA".into(),
                serial_hex: "01".into(),
                not_before: 10,
                not_after: 20,
                spki_der: Vec::new(),
                qualifier: "eu_eidas_aes",
            },
            cert_validity,
            multisign: 1,
            otp_online: false,
        }
    }

    /// CSC's cert.status names valid, expired, revoked and suspended: a certificate not yet
    /// valid has no accurate one, and gets none.
    #[test]
    fn cert_status_is_accurate_or_absent() {
        let status = |validity| {
            let json = serde_json::to_value(to_json(
                &view(validity),
                Certificates::None,
                false,
                false,
                true,
            ))
            .unwrap();
            json["cert"].get("status").cloned()
        };
        assert_eq!(status(pki::Validity::Valid), Some("valid".into()));
        assert_eq!(status(pki::Validity::Expired), Some("expired".into()));
        assert_eq!(status(pki::Validity::NotYetValid), None);
    }
}
