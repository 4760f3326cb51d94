//! The ONE place a Rust error becomes a CSC error body `{"error", "error_description"}` with its
//! HTTP status (CSC API v2 §6). Lower layers keep their own error enums; the `From` impls here
//! decide what a client may learn. Causes of internal errors are logged, never returned.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::crypto::CryptoError;
use crate::pki::PkiError;
use crate::qscd::QscdError;
use crate::store::StoreError;

/// Every error a client can see.
#[derive(Debug, thiserror::Error)]
pub enum CscError {
    /// 400 `invalid_request`: missing/invalid parameter, bad SAD, unknown credential …
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `invalid_token`: missing, unknown, malformed or revoked bearer token.
    #[error("Invalid or missing access token")]
    InvalidToken,
    /// 401 `invalid_request`: malformed or missing Authorization header on `auth/login`.
    #[error("{0}")]
    BadAuthorizationHeader(String),
    /// 400 `authentication_error`: wrong user name or password on `auth/login`.
    #[error("Authentication failed")]
    AuthenticationError,
    /// 400 `invalid_authentication_data`: wrong PIN or OTP on `credentials/authorize`.
    #[error("The authentication data is invalid")]
    InvalidAuthenticationData,
    /// 403 `invalid_hash` (signDoc): a document or digest the SAD does not authorize.
    #[error("Document or documentDigest does not match authorized hash")]
    InvalidHash,
    /// 202 `accepted_request` (signPolling): the asynchronous call has not finished yet.
    #[error("The previous async request has been accepted but not yet completed")]
    AcceptedRequest,
    /// 404 `invalid_request`: no such route.
    #[error("Unknown method: {0}")]
    NotFound(String),
    /// 501 `invalid_request`: a CSC method Quill does not offer (not in `info.methods`, CSC §6.1).
    #[error("Method not implemented: {0} (see info.methods)")]
    NotImplemented(&'static str),
    /// 405 `invalid_request`: CSC methods are POST.
    #[error("Method not allowed: CSC methods are called with POST")]
    MethodNotAllowed,
    /// 405 `invalid_request`: the operations endpoints (`/healthz`, `/readyz`, `/metrics`) are
    /// read with GET (or HEAD).
    #[error("Method not allowed: use GET")]
    GetOnly,
    /// 405 `invalid_request`: `/oauth2/authorize` is opened with GET and its form posted back.
    #[error("Method not allowed: use GET or POST")]
    GetOrPost,
    /// 408 `invalid_request`: the body did not arrive within `--body-timeout`.
    #[error("Request body not received in time")]
    RequestTimeout,
    /// 413 `invalid_request`: body over the size limit.
    #[error("Request body too large")]
    PayloadTooLarge,
    /// 503 `temporarily_unavailable`: database or token unreachable.
    #[error("The service is temporarily unavailable")]
    Unavailable(String),
    /// 503 `temporarily_unavailable` with `Retry-After`: more of this work at once than
    /// Quill takes (logins beyond what argon2 can check soon); answered without queueing.
    #[error("{0}")]
    Busy(&'static str),
    /// 503 `temporarily_unavailable` from `/readyz`, naming the part that does not answer
    /// (`"database"`, `"token"`, `"database and token"`); causes are logged by the probe.
    #[error("Not ready: {0} unavailable")]
    NotReady(&'static str),
    /// 500 `server_error`: a bug or an unexpected state. The cause is logged, not returned.
    #[error("Internal server error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
}

impl CscError {
    pub fn invalid(description: impl Into<String>) -> Self {
        CscError::InvalidRequest(description.into())
    }

    /// The CSC `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            CscError::InvalidRequest(_)
            | CscError::BadAuthorizationHeader(_)
            | CscError::NotFound(_)
            | CscError::NotImplemented(_)
            | CscError::MethodNotAllowed
            | CscError::GetOnly
            | CscError::GetOrPost
            | CscError::RequestTimeout
            | CscError::PayloadTooLarge => "invalid_request",
            CscError::InvalidToken => "invalid_token",
            CscError::AuthenticationError => "authentication_error",
            CscError::InvalidAuthenticationData => "invalid_authentication_data",
            CscError::InvalidHash => "invalid_hash",
            CscError::AcceptedRequest => "accepted_request",
            CscError::Unavailable(_) | CscError::NotReady(_) | CscError::Busy(_) => {
                "temporarily_unavailable"
            }
            CscError::Internal(_) => "server_error",
        }
    }
}

impl ResponseError for CscError {
    fn status_code(&self) -> StatusCode {
        match self {
            CscError::InvalidRequest(_)
            | CscError::AuthenticationError
            | CscError::InvalidAuthenticationData => StatusCode::BAD_REQUEST,
            CscError::InvalidToken | CscError::BadAuthorizationHeader(_) => {
                StatusCode::UNAUTHORIZED
            }
            CscError::InvalidHash => StatusCode::FORBIDDEN,
            CscError::AcceptedRequest => StatusCode::ACCEPTED,
            CscError::NotFound(_) => StatusCode::NOT_FOUND,
            CscError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            CscError::MethodNotAllowed | CscError::GetOnly | CscError::GetOrPost => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            CscError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            CscError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            CscError::Unavailable(_) | CscError::NotReady(_) | CscError::Busy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            CscError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            CscError::Internal(cause) => tracing::error!(cause = %cause, "internal error"),
            CscError::Unavailable(cause) => tracing::warn!(cause = %cause, "service unavailable"),
            other => tracing::debug!(error = other.code(), "request refused"),
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, CscError::InvalidToken) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""));
        }
        if matches!(self, CscError::Busy(_)) {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        if matches!(self, CscError::MethodNotAllowed) {
            response.insert_header((header::ALLOW, "POST"));
        }
        if matches!(self, CscError::GetOnly) {
            response.insert_header((header::ALLOW, "GET, HEAD"));
        }
        if matches!(self, CscError::GetOrPost) {
            response.insert_header((header::ALLOW, "GET, POST"));
        }
        response.json(ErrorBody {
            error: self.code(),
            error_description: self.to_string(),
        })
    }
}

impl From<StoreError> for CscError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => CscError::Unavailable(cause),
            StoreError::Query(cause) => CscError::Internal(cause),
        }
    }
}

impl From<QscdError> for CscError {
    fn from(e: QscdError) -> Self {
        match e {
            QscdError::BadInput(cause) => {
                tracing::info!(cause = %cause, "token refused the input");
                CscError::invalid("The signing device refused the input for this key")
            }
            QscdError::Device(cause) | QscdError::Config(cause) => CscError::Unavailable(cause),
            QscdError::KeyNotFound => {
                CscError::Internal("credential key missing from token".into())
            }
            QscdError::Unseal => CscError::Internal("sealed secret could not be opened".into()),
        }
    }
}

impl From<CryptoError> for CscError {
    fn from(e: CryptoError) -> Self {
        CscError::InvalidRequest(
            match e {
                CryptoError::UnknownHashAlgo => "Invalid parameter hashAlgorithmOID",
                CryptoError::WeakHashAlgo => {
                    "Invalid parameter hashAlgorithmOID: SHA-1, MD5 and SHA-224 are not accepted"
                }
                CryptoError::UnknownSignAlgo => "Invalid parameter signAlgo",
                CryptoError::SignAlgoNotForKey => {
                    "Invalid parameter signAlgo: not supported by the credential's key"
                }
                CryptoError::MissingHashAlgo => {
                    "Missing (or invalid type) string parameter hashAlgorithmOID"
                }
                CryptoError::HashAlgoContradicts => {
                    "String parameter hashAlgorithmOID contradicts with signAlgo parameter"
                }
                CryptoError::InvalidSignAlgoParams(_) => "Invalid parameter signAlgoParams",
                CryptoError::InvalidBase64 => "Invalid Base64 hash string parameter",
                CryptoError::InvalidDigestLength => "Invalid digest value length",
                CryptoError::InvalidSignature => "Invalid signature value",
            }
            .to_string(),
        )
    }
}

impl From<PkiError> for CscError {
    fn from(e: PkiError) -> Self {
        CscError::Internal(format!("certificate handling failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_of(e: CscError) -> (StatusCode, serde_json::Value) {
        let response = e.error_response();
        let status = response.status();
        let bytes = to_bytes(response.into_body()).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[actix_web::test]
    async fn every_variant_maps_to_status_and_code() {
        let cases = [
            (CscError::invalid("x"), 400, "invalid_request"),
            (CscError::InvalidToken, 401, "invalid_token"),
            (
                CscError::BadAuthorizationHeader("h".into()),
                401,
                "invalid_request",
            ),
            (CscError::AuthenticationError, 400, "authentication_error"),
            (
                CscError::InvalidAuthenticationData,
                400,
                "invalid_authentication_data",
            ),
            (CscError::InvalidHash, 403, "invalid_hash"),
            (CscError::AcceptedRequest, 202, "accepted_request"),
            (CscError::NotFound("/x".into()), 404, "invalid_request"),
            (CscError::MethodNotAllowed, 405, "invalid_request"),
            (CscError::GetOnly, 405, "invalid_request"),
            (CscError::GetOrPost, 405, "invalid_request"),
            (CscError::PayloadTooLarge, 413, "invalid_request"),
            (CscError::NotReady("token"), 503, "temporarily_unavailable"),
            (
                CscError::Unavailable("db".into()),
                503,
                "temporarily_unavailable",
            ),
            (CscError::Internal("boom".into()), 500, "server_error"),
        ];
        for (err, status, code) in cases {
            let (s, body) = body_of(err).await;
            assert_eq!(s.as_u16(), status);
            assert_eq!(body["error"], code);
            assert!(body["error_description"].is_string());
        }
    }

    #[actix_web::test]
    async fn internal_cause_is_not_returned() {
        let (_, body) = body_of(CscError::Internal("secret detail".into())).await;
        assert!(!body.to_string().contains("secret detail"));
    }

    #[actix_web::test]
    async fn method_not_allowed_names_the_allowed_methods() {
        for (err, allow) in [
            (CscError::MethodNotAllowed, "POST"),
            (CscError::GetOnly, "GET, HEAD"),
            (CscError::GetOrPost, "GET, POST"),
        ] {
            let r = err.error_response();
            assert_eq!(r.headers().get(header::ALLOW).unwrap(), allow);
        }
    }

    #[actix_web::test]
    async fn invalid_token_has_www_authenticate() {
        let r = CscError::InvalidToken.error_response();
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
