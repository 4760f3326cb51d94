//! `signatures/signHash` (CSC §4.1) and `signatures/signPolling` (asynchronous calls).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::extract::{
    CscJson, RawBody, SignCaller, bearer, declared_length, parse_body, read_body,
};
use crate::error::CscError;
use crate::secret::Secret;
use crate::service::session;
use crate::service::sign_jobs::{self, AsyncFields, AsyncParams, JobCaller};
use crate::service::signing::{self, SignHashBody, SignHashInput};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignHashRequest {
    #[serde(default, rename = "credentialID")]
    pub credential_id: Option<String>,
    #[serde(default, rename = "SAD")]
    pub sad: Option<Secret>,
    #[serde(default)]
    pub hashes: Option<Vec<String>>,
    /// v1 name of `hashes` (pyHanko).
    #[serde(default)]
    pub hash: Option<Vec<String>>,
    #[serde(default, rename = "hashAlgorithmOID", alias = "hashAlgo")]
    pub hash_algorithm_oid: Option<String>,
    #[serde(default)]
    pub sign_algo: Option<String>,
    #[serde(default)]
    pub sign_algo_params: Option<String>,
    #[serde(default)]
    pub operation_mode: Option<String>,
    #[serde(default)]
    pub client_data: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SignHashResponse {
    pub signatures: Vec<String>,
}

/// A body up to this size is read before its token is judged (with the rest of the call, in
/// one store hop); a larger one, or one of unannounced length, only for a live token.
const READ_BEFORE_AUTH_MAX: usize = 64 << 10;

/// Authentication, parsing, the credential and SAD checks and the spend happen in one blocking
/// call of the service (the hot path: one pooled connection, one write transaction). A body
/// that names `operationMode`, `validity_period` or `response_uri` is looked at first: an
/// asynchronous call is accepted and runs that same call in the background.
pub async fn sign_hash(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, CscError> {
    let bearer = bearer(&req)?;
    if declared_length(&req).is_none_or(|n| n > READ_BEFORE_AUTH_MAX) {
        // Up to 1 MiB is read only for a caller who may sign: the token is judged first (one
        // more store hop, on calls with many hashes).
        session::authenticate_for_signing(&state, &bearer).await?;
    }
    let body = RawBody(read_body(&req, payload, super::extract::MAX_BODY).await?);
    let small = body.0.len() <= signing::ON_WORKER_MAX_BODY;
    if mentions_async_fields(&body.0)
        && let Ok(fields) = serde_json::from_slice::<AsyncFields>(&body.0)
    {
        let mode = fields.check(&state);
        // A synchronous call ("S") goes on as any other; an asynchronous or refused one has its
        // token judged first (401 before 400).
        if !matches!(mode, Ok(None)) {
            let (user, credential) = session::authenticate_for_signing(&state, &bearer).await?;
            if let Some(params) = mode? {
                let caller = JobCaller {
                    user,
                    credential_token: credential.then(|| bearer.clone()),
                };
                return accept_sign_hash(&state, &caller, params, bearer, small, body).await;
            }
        }
    }
    let signatures = signing::sign_hash(
        &state,
        bearer,
        state.settings.sign_on_worker,
        small,
        move || parse_body::<SignHashRequest>(&body.0),
    )
    .await?;
    Ok(HttpResponse::Ok().json(SignHashResponse { signatures }))
}

/// Whether a body may hold a field of the asynchronous mode (a byte search: the synchronous
/// call's body is parsed once, in the service).
fn mentions_async_fields(body: &[u8]) -> bool {
    [&b"operationMode"[..], b"validity_period", b"response_uri"]
        .iter()
        .any(|name| memchr::memmem::find(body, name).is_some())
}

async fn accept_sign_hash(
    state: &AppState,
    caller: &JobCaller,
    params: AsyncParams,
    bearer: Secret,
    small: bool,
    body: RawBody,
) -> Result<HttpResponse, CscError> {
    // A body the synchronous call would refuse whoever's credential and SAD it named is
    // refused now, not accepted to fail later.
    let req = parse_body::<SignHashRequest>(&body.0)?;
    input_of(req, caller.credential_token.clone())?.check_well_formed()?;
    let st = state.clone();
    let work = async move {
        let signatures = signing::sign_hash(&st, bearer, false, small, move || {
            // The service still refuses a mode other than "S": it meets one the byte search
            // above missed (a name written with escapes), and this call's is handled.
            let mut req = parse_body::<SignHashRequest>(&body.0)?;
            req.operation_mode = None;
            Ok(req)
        })
        .await?;
        Ok(serde_json::json!({ "signatures": signatures }))
    };
    let id = sign_jobs::accept(state, caller, params, work).await?;
    Ok(accepted(&id))
}

/// The answer to an accepted asynchronous call.
pub(crate) fn accepted(response_id: &Secret) -> HttpResponse {
    super::ok_no_store().json(serde_json::json!({ "responseID": response_id.expose() }))
}

#[derive(Debug, Default, Deserialize)]
pub struct SignPollingRequest {
    #[serde(default, rename = "requestID")]
    pub request_id: Option<String>,
    #[serde(default, rename = "userID")]
    pub user_id: Option<String>,
    #[serde(default, rename = "clientData")]
    pub client_data: Option<String>,
}

/// `signatures/signPolling`: the answer of an asynchronous signHash or signDoc, as that call
/// would have answered (its status too), or 202 `accepted_request` while it runs.
pub async fn sign_polling(
    state: web::Data<AppState>,
    caller: SignCaller,
    body: CscJson<SignPollingRequest>,
) -> Result<HttpResponse, CscError> {
    let req = body.0;
    let id = req
        .request_id
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter requestID"))?;
    // `userID` serves tokens that name no user (CSC §11.11); Quill's always name one, and a
    // call is found only among its user's.
    let caller = JobCaller {
        user: caller.user,
        credential_token: caller.credential_token,
    };
    let (status, answer) = sign_jobs::poll(&state, &caller, &id).await?;
    let status = actix_web::http::StatusCode::from_u16(status)
        .map_err(|_| CscError::Internal("stored status out of range".into()))?;
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .body(answer))
}

impl SignHashBody for SignHashRequest {
    fn credential_id(&self) -> Option<&str> {
        self.credential_id.as_deref()
    }

    fn into_input(self, credential_token: Option<Secret>) -> Result<SignHashInput, CscError> {
        input_of(self, credential_token)
    }
}

/// The service's input from a signHash body (v1 names mapped in).
fn input_of(
    req: SignHashRequest,
    credential_token: Option<Secret>,
) -> Result<SignHashInput, CscError> {
    let sad = effective_sad(credential_token, req.sad)?;
    tracing::debug!("signHash body received");
    let credential_id = super::required_credential_id(req.credential_id)?;
    let hashes = match (req.hashes, req.hash) {
        (Some(_), Some(_)) => return Err(super::hashes_twice()),
        (Some(h), None) | (None, Some(h)) => h,
        (None, None) => {
            return Err(CscError::invalid(
                "Missing (or invalid type) array parameter hashes",
            ));
        }
    };
    let sign_algo = req
        .sign_algo
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter signAlgo"))?;
    Ok(SignHashInput {
        credential_id,
        sad,
        hashes,
        hash_algo: req.hash_algorithm_oid,
        sign_algo,
        sign_algo_params: req.sign_algo_params,
        operation_mode: req.operation_mode,
    })
}

/// The SAD of a signing call: an OAuth credential token in the header is its own SAD (CSC v2
/// §8: no separate SAD needed; the same value in `SAD` is accepted too).
pub(crate) fn effective_sad(
    credential_token: Option<Secret>,
    sad: Option<Secret>,
) -> Result<Option<Secret>, CscError> {
    match (credential_token, sad) {
        (Some(token), None) => Ok(Some(token)),
        (Some(token), Some(sad))
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                sad.expose().as_bytes(),
                token.expose().as_bytes(),
            )) =>
        {
            Ok(Some(token))
        }
        (Some(_), Some(_)) => Err(CscError::invalid(
            "Invalid parameter SAD: a credential token is its own SAD",
        )),
        (None, sad) => Ok(sad),
    }
}
