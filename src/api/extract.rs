//! Request extractors: `CscJson<T>` (a JSON body of any content type, `{}` when empty, size
//! limited, with error messages that never echo values) and `Caller` (the user behind a bearer
//! token).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::error::CscError;
use crate::secret::Secret;
use crate::service::session;
use crate::state::AppState;
use crate::store::models::UserId;

/// Largest accepted request body.
pub const MAX_BODY: usize = 1 << 20;

/// Largest body of a method anyone may call without a token (`info`, `auth/login`, the OAuth
/// token, revocation and authorization-page forms, RFC 3161): their bodies are a few hundred
/// bytes, and a stranger should not make Quill hold a megabyte per connection.
pub const OPEN_MAX_BODY: usize = 64 << 10;

/// A CSC JSON request body.
pub struct CscJson<T>(pub T);

/// Describe a serde error without quoting the offending value (it may be a PIN).
pub fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let msg = e.to_string();
    match e.classify() {
        Category::Syntax | Category::Eof => "Malformed JSON request body".to_string(),
        Category::Io => "Unreadable request body".to_string(),
        Category::Data => {
            if let Some(field) = msg
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                format!("Missing (or invalid type) parameter {field}")
            } else {
                format!(
                    "Invalid type or value in request body (line {}, column {})",
                    e.line(),
                    e.column()
                )
            }
        }
    }
}

/// Parse a CSC request body: an empty body means `{}`, anything else must be a JSON object;
/// errors are `invalid_request` and never quote the body.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CscError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    // serde would read a JSON array positionally into a struct; CSC bodies are objects.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(CscError::invalid("The request body must be a JSON object"));
    }
    serde_json::from_slice::<T>(body).map_err(|e| CscError::invalid(describe_json_error(&e)))
}

/// Whether reading a body failed because it is over the size limit.
pub fn is_overflow(e: &actix_web::Error) -> bool {
    matches!(e.as_error::<PayloadError>(), Some(PayloadError::Overflow))
        || e.to_string().contains("overflow")
}

/// Read a request body taken as `web::Payload` (for a handler that judges the caller before it
/// reads): the deadline and errors of [`RawBody`], with the size limit `limit`.
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, CscError> {
    if declared_length(req).is_some_and(|n| n > limit) {
        return Err(CscError::PayloadTooLarge);
    }
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if super::deadline::is_timeout(&e) => Err(CscError::RequestTimeout),
        Ok(Err(_)) => Err(CscError::invalid("Unreadable request body")),
        Err(_) => Err(CscError::PayloadTooLarge),
    }
}

/// The body length a request announces (`Content-Length`), if it announces one.
pub fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A request body read but not yet parsed (for handlers that must check the caller first and
/// parse later, off the executor); the same size limit and errors as `CscJson`.
pub struct RawBody(pub web::Bytes);

impl FromRequest for RawBody {
    type Error = CscError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, CscError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            bytes.await.map(RawBody).map_err(|e| {
                if is_overflow(&e) {
                    CscError::PayloadTooLarge
                } else if super::deadline::is_timeout(&e) {
                    CscError::RequestTimeout
                } else {
                    CscError::invalid("Unreadable request body")
                }
            })
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for CscJson<T> {
    type Error = CscError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, CscError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = RawBody::from_request(req, payload);
        Box::pin(async move { parse_body(&body.await?.0).map(CscJson) })
    }
}

/// The authenticated caller: user id and the hash of the bearer token used.
pub struct Caller {
    pub user: UserId,
    pub token_hash: Vec<u8>,
}

/// The bearer token in the Authorization header.
pub fn bearer(req: &HttpRequest) -> Result<Secret, CscError> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or(CscError::InvalidToken)?
        .to_str()
        .map_err(|_| CscError::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(CscError::InvalidToken)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 512 {
        return Err(CscError::InvalidToken);
    }
    Ok(Secret::new(token))
}

impl FromRequest for Caller {
    type Error = CscError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, CscError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| CscError::Internal("application state missing".into()))?;
            let (user, token_hash) = session::authenticate(&state, token?).await?;
            Ok(Caller { user, token_hash })
        })
    }
}

/// The caller of signHash (and of credentials/info): a service token, or an OAuth credential
/// token (which is also the SAD, and shows only its own credential).
pub struct SignCaller {
    pub user: UserId,
    pub credential_token: Option<Secret>,
}

impl FromRequest for SignCaller {
    type Error = CscError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, CscError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| CscError::Internal("application state missing".into()))?;
            let token = token?;
            let (user, credential) = session::authenticate_for_signing(&state, &token).await?;
            Ok(SignCaller {
                user,
                credential_token: credential.then_some(token),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct T {
        #[serde(rename = "PIN")]
        pin: String,
        n: u32,
    }

    #[test]
    fn json_errors_do_not_echo_values() {
        let e = serde_json::from_str::<T>(r#"{"PIN": 987654, "n": 1}"#).unwrap_err();
        let d = describe_json_error(&e);
        assert!(!d.contains("987654"), "{d}");
        let e = serde_json::from_str::<T>(r#"{"n": 1}"#).unwrap_err();
        assert_eq!(
            describe_json_error(&e),
            "Missing (or invalid type) parameter PIN"
        );
        let e = serde_json::from_str::<T>("{").unwrap_err();
        assert_eq!(describe_json_error(&e), "Malformed JSON request body");
    }
}
