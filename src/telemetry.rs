//! Per-request observability, as one actix middleware: a request ID (the client's `X-Request-Id`
//! when it is a short token, else a random one) returned in the `X-Request-Id` response header
//! and carried as a field of the `request` tracing span around everything the request logs
//! (blocking work keeps the span, see `blocking::run`); one log line per answered request; and
//! the HTTP metrics (`metrics::Metrics`), labelled with the matched route pattern.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use crate::metrics::{Metrics, UNMATCHED};
use crate::state::AppState;

/// The request ID header, read and written.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request ID honoured.
const MAX_ID_LEN: usize = 64;

/// Routes probed by orchestrators every few seconds: logged at debug level only.
const QUIET: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// A client's request ID is honoured when it is 1 to 64 characters of `[A-Za-z0-9._-]`, so it
/// cannot forge log fields or carry anything large.
pub fn is_sane_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A fresh random request ID (128 bits, hex).
pub fn generate_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The middleware (`actix_web::middleware::from_fn(telemetry::observe)`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_id(v))
        .map_or_else(generate_id, str::to_owned);
    let endpoint = req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned());
    let metrics: Option<Metrics> = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = req.method().clone();
    let path: String = req.path().chars().take(200).collect();
    let span = tracing::info_span!("request", request_id = %id, %method, %endpoint);
    async move {
        let _in_flight = metrics.as_ref().map(Metrics::in_flight);
        tracing::debug!(%path, "request started");
        let result = next.call(req).await;
        let status = match &result {
            Ok(res) => res.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        let elapsed = started.elapsed();
        if let Some(m) = &metrics {
            m.observe_request(&endpoint, status, elapsed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if QUIET.contains(&endpoint.as_str()) {
            tracing::debug!(%path, status, us, "request finished");
        } else {
            tracing::info!(%path, status, us, "request finished");
        }
        result.map(|mut res| {
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(REQUEST_ID, value);
            }
            res
        })
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(is_sane_id("abc123"));
        assert!(is_sane_id("0f8e-4a_b.c"));
        assert!(is_sane_id(&"a".repeat(64)));
        assert!(!is_sane_id(""));
        assert!(!is_sane_id(&"a".repeat(65)));
        assert!(!is_sane_id("a b"));
        assert!(!is_sane_id("a\"b"));
        assert!(!is_sane_id("é"));
        let g = generate_id();
        assert_eq!(g.len(), 32);
        assert!(is_sane_id(&g));
        assert_ne!(g, generate_id());
    }
}
