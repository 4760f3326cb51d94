//! `signatures/signDoc` (CSC §4.2, CAdES), `signatures/timestamp` (CSC §4.4) and the plain
//! RFC 3161 endpoint `POST /tsa` (application/timestamp-query → application/timestamp-reply).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::extract::{Caller, CscJson, SignCaller};
use crate::error::CscError;
use crate::secret::Secret;
use crate::service::sign_doc::{self, DocItem, Payload as DocPayload, SignDocInput};
use crate::service::sign_jobs::{self, AsyncFields, JobCaller};
use crate::service::tsa;
use crate::state::AppState;

/// Fields `documentDigests[]` and `documents[]` share.
#[derive(Debug, Default, Deserialize)]
pub struct SignDocCommon {
    #[serde(default)]
    pub signature_format: Option<String>,
    #[serde(default)]
    pub conformance_level: Option<String>,
    #[serde(default, rename = "signAlgo")]
    pub sign_algo: Option<String>,
    #[serde(default, rename = "signAlgoParams")]
    pub sign_algo_params: Option<String>,
    #[serde(default)]
    pub signed_props: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub signed_envelope_property: Option<String>,
    #[serde(default, rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DocumentDigests {
    #[serde(default)]
    pub hashes: Option<Vec<String>>,
    #[serde(flatten)]
    pub common: SignDocCommon,
}

#[derive(Debug, Default, Deserialize)]
pub struct Document {
    #[serde(default)]
    pub document: Option<String>,
    #[serde(flatten)]
    pub common: SignDocCommon,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignDocRequest {
    #[serde(default, rename = "credentialID")]
    pub credential_id: Option<String>,
    #[serde(default)]
    pub signature_qualifier: Option<String>,
    #[serde(default, rename = "SAD")]
    pub sad: Option<Secret>,
    #[serde(default)]
    pub document_digests: Option<Vec<DocumentDigests>>,
    #[serde(default)]
    pub documents: Option<Vec<Document>>,
    #[serde(default)]
    pub operation_mode: Option<serde_json::Value>,
    #[serde(default, rename = "validity_period")]
    pub validity_period: Option<serde_json::Value>,
    #[serde(default, rename = "response_uri")]
    pub response_uri: Option<serde_json::Value>,
    #[serde(default)]
    pub client_data: Option<String>,
    #[serde(default)]
    pub return_validation_info: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct SignDocResponse {
    #[serde(rename = "DocumentWithSignature")]
    pub document_with_signature: Vec<String>,
    #[serde(rename = "SignatureObject")]
    pub signature_object: Vec<String>,
}

fn item(payload: DocPayload, c: SignDocCommon) -> DocItem {
    DocItem {
        payload,
        hash_algo: c.hash_algorithm_oid,
        signature_format: c.signature_format,
        conformance_level: c.conformance_level,
        sign_algo: c.sign_algo,
        sign_algo_params: c.sign_algo_params,
        has_signed_props: c.signed_props.is_some_and(|p| !p.is_empty()),
        envelope: c.signed_envelope_property,
    }
}

pub async fn sign_doc(
    state: web::Data<AppState>,
    http: HttpRequest,
    caller: SignCaller,
    body: CscJson<SignDocRequest>,
) -> Result<HttpResponse, CscError> {
    let req = body.0;
    tracing::debug!("signDoc body received");
    if req.return_validation_info == Some(true) {
        return Err(CscError::invalid(
            "Invalid parameter returnValidationInfo: validation info is not available",
        ));
    }
    let items = match (req.document_digests, req.documents) {
        (Some(_), Some(_)) => {
            return Err(CscError::invalid(
                "Both documentDigests and documents parameters passed",
            ));
        }
        (Some(digests), None) => digests
            .into_iter()
            .map(|d| {
                let hashes = d.hashes.ok_or_else(|| {
                    CscError::invalid("Missing (or invalid type) array parameter hashes")
                })?;
                Ok(item(DocPayload::Digests(hashes), d.common))
            })
            .collect::<Result<Vec<_>, CscError>>()?,
        (None, Some(documents)) => documents
            .into_iter()
            .map(|d| {
                let doc = d.document.ok_or_else(|| {
                    CscError::invalid("Missing (or invalid type) string parameter document")
                })?;
                Ok(item(DocPayload::Document(doc), d.common))
            })
            .collect::<Result<Vec<_>, CscError>>()?,
        (None, None) => Vec::new(),
    };
    if items.is_empty() {
        return Err(CscError::invalid(
            "Empty documentDigests and documents objects",
        ));
    }
    let mode = AsyncFields {
        operation_mode: req.operation_mode,
        validity_period: req.validity_period,
        response_uri: req.response_uri,
    }
    .check(&state)?;
    let input = SignDocInput {
        credential_id: req.credential_id,
        signature_qualifier: req.signature_qualifier,
        sad: super::signatures::effective_sad(caller.credential_token.clone(), req.sad)?,
        items,
    };
    if let Some(params) = mode {
        sign_doc::check_well_formed(&input)?;
        // The request is well-formed: the rest (the SAD, its spend, the signing) runs as it
        // would have synchronously, and signPolling gives its answer.
        let st = state.get_ref().clone();
        let bearer = super::extract::bearer(&http)?;
        let job_caller = JobCaller {
            user: caller.user.clone(),
            credential_token: caller.credential_token.clone(),
        };
        let work = async move {
            // The token is judged again when the call runs, as a synchronous call judges it
            // when it arrives: revoked meanwhile, the call signs nothing.
            let (user, _) = crate::service::session::authenticate_for_signing(&st, &bearer).await?;
            let out = sign_doc::sign_doc(&st, &user, input).await?;
            serde_json::to_value(response(out)).map_err(|e| CscError::Internal(e.to_string()))
        };
        let id = sign_jobs::accept(&state, &job_caller, params, work).await?;
        return Ok(super::signatures::accepted(&id));
    }
    let out = sign_doc::sign_doc(&state, &caller.user, input).await?;
    Ok(HttpResponse::Ok().json(response(out)))
}

fn response(out: sign_doc::SignDocOutput) -> SignDocResponse {
    SignDocResponse {
        document_with_signature: out.documents_with_signature,
        signature_object: out.signature_objects,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimestampRequest {
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub hash_algo: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub client_data: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TimestampResponse {
    pub timestamp: String,
}

pub async fn timestamp(
    state: web::Data<AppState>,
    _caller: Caller,
    body: CscJson<TimestampRequest>,
) -> Result<HttpResponse, CscError> {
    let req = body.0;
    let timestamp = tsa::timestamp(&state, req.hash, req.hash_algo, req.nonce).await?;
    Ok(HttpResponse::Ok().json(TimestampResponse { timestamp }))
}

/// Media types of RFC 3161 §3.4.
const QUERY_TYPE: &str = "application/timestamp-query";
const REPLY_TYPE: &str = "application/timestamp-reply";

/// `POST /tsa`: RFC 3161 over HTTP (no CSC authentication, as public TSAs are).
pub async fn rfc3161(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, CscError> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The media type, whatever parameters follow it (RFC 9110 §8.3.1: `; charset=binary`).
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case(QUERY_TYPE) {
        return Err(CscError::invalid(
            "Content-Type must be application/timestamp-query",
        ));
    }
    let body = super::extract::read_body(&req, payload, super::extract::OPEN_MAX_BODY).await?;
    let reply = tsa::rfc3161(&state, body.to_vec()).await?;
    Ok(HttpResponse::Ok().content_type(REPLY_TYPE).body(reply))
}
