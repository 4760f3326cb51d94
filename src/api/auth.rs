//! `auth/login` and `auth/revoke` (CSC §2).

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::extract::{Caller, CscJson};
use crate::error::CscError;
use crate::secret::Secret;
use crate::service::session;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    #[serde(default, rename = "refresh_token")]
    pub refresh_token: Option<Secret>,
    #[serde(default)]
    pub remember_me: Option<bool>,
    #[serde(default)]
    pub client_data: Option<String>,
}

#[derive(Serialize)]
pub struct LoginResponse {
    pub access_token: String,
    pub expires_in: i64,
}

#[derive(Debug, Default, Deserialize)]
pub struct RevokeRequest {
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_type_hint: Option<String>,
    #[serde(default, rename = "clientData")]
    pub client_data: Option<String>,
}

/// User name and password from `Authorization: Basic …`.
fn basic_credentials(req: &HttpRequest) -> Result<(String, Secret), CscError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| CscError::BadAuthorizationHeader("Missing Authorization header".into()))?;
    let malformed = || CscError::BadAuthorizationHeader("Malformed authorization header".into());
    let value = header.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded =
        zeroize::Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| malformed())?);
    let text = std::str::from_utf8(&decoded).map_err(|_| malformed())?;
    let (user, password) = text.split_once(':').ok_or_else(|| {
        CscError::invalid("The credentials in the Authorization header are not user:password")
    })?;
    if user.is_empty() {
        return Err(CscError::invalid("Empty user name"));
    }
    Ok((user.to_string(), Secret::new(password)))
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: CscJson<LoginRequest>,
) -> Result<HttpResponse, CscError> {
    if body.0.refresh_token.is_some() {
        return Err(CscError::invalid("Invalid refresh_token"));
    }
    let (user, password) = basic_credentials(&req)?;
    let login = session::login(&state, user, password).await?;
    Ok(super::ok_no_store().json(LoginResponse {
        access_token: login.access_token.expose().to_string(),
        expires_in: login.expires_in,
    }))
}

pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    body: CscJson<RevokeRequest>,
) -> Result<HttpResponse, CscError> {
    let body = body.0;
    match body.token_type_hint.as_deref() {
        None | Some("access_token") | Some("refresh_token") => {}
        Some(_) => return Err(CscError::invalid("Invalid parameter token_type_hint")),
    }
    let token = body
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter token"))?;
    session::revoke(&state, &caller.user, token).await?;
    Ok(HttpResponse::NoContent().finish())
}
