//! `signatures/signHash` (CSC §4.1).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::extract::{RawBody, bearer, parse_body};
use crate::error::CscError;
use crate::secret::Secret;
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

/// Authentication, parsing, the credential and SAD checks and the spend happen in one blocking
/// call of the service (the hot path: one pooled connection, one write transaction).
pub async fn sign_hash(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: RawBody,
) -> Result<HttpResponse, CscError> {
    let bearer = bearer(&req)?;
    let small = body.0.len() <= signing::ON_WORKER_MAX_BODY;
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
