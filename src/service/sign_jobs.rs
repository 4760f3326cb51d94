//! Asynchronous signing (`operationMode: "A"` on signHash and signDoc, answered by
//! `signatures/signPolling`, CSC v2 §11.9–§11.11). The call is checked as far as its own fields
//! go and answered at once with a `responseID`; the signing call itself (the caller's token,
//! the credential, the SAD and its spend, the signatures) then runs as it would have
//! synchronously, and its answer, a success or the CSC error it met, is kept for its
//! `validity_period` (a row per call, the responseID stored as its SHA-256, bound to the user).
//! With a `response_uri` among `--async-callback-origins`, Quill posts `{"responseID"}` there
//! when the answer is ready; the answer itself is only ever given to signPolling.

use std::future::Future;
use std::time::Duration;

use actix_web::ResponseError;

use crate::auth::token;
use crate::blocking;
use crate::error::CscError;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::models::UserId;
use crate::store::repo;
use crate::store::repo::sign_jobs::JobRow;

/// `validity_period` when the call gives none, milliseconds.
pub const DEFAULT_VALIDITY_MS: i64 = 600_000;
/// The shortest and longest `validity_period` taken, milliseconds.
pub const VALIDITY_MS: std::ops::RangeInclusive<i64> = 1_000..=3_600_000;
/// Unexpired asynchronous calls one user may have at once (each holds its answer).
pub const MAX_LIVE_PER_USER: i64 = 100;
/// How long one delivery to a `response_uri` may take, and how often it is tried.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);
const CALLBACK_ATTEMPTS: u32 = 3;

/// An asynchronous call's own fields, checked.
#[derive(Debug, Clone)]
pub struct AsyncParams {
    /// `validity_period` in whole seconds (rounded up).
    pub validity_secs: i64,
    pub response_uri: Option<String>,
}

/// The fields that only an asynchronous call may carry, as the client sent them.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct AsyncFields {
    #[serde(default, rename = "operationMode")]
    pub operation_mode: Option<serde_json::Value>,
    #[serde(default)]
    pub validity_period: Option<serde_json::Value>,
    #[serde(default)]
    pub response_uri: Option<serde_json::Value>,
}

impl AsyncFields {
    /// `Some` for `operationMode: "A"`, with its fields checked; `None` for a synchronous call
    /// (`"S"` or none), which may carry neither `validity_period` nor `response_uri`.
    pub fn check(&self, st: &AppState) -> Result<Option<AsyncParams>, CscError> {
        match &self.operation_mode {
            None => {}
            Some(serde_json::Value::String(m)) if m == "S" => {}
            Some(serde_json::Value::String(m)) if m == "A" => {
                return Ok(Some(AsyncParams {
                    validity_secs: validity_secs(self.validity_period.as_ref())?,
                    response_uri: response_uri(st, self.response_uri.as_ref())?,
                }));
            }
            Some(_) => return Err(CscError::invalid("Invalid parameter operationMode")),
        }
        if self.validity_period.is_some() {
            return Err(CscError::invalid(
                "Invalid parameter validity_period: only with operationMode A",
            ));
        }
        if self.response_uri.is_some() {
            return Err(CscError::invalid(
                "Invalid parameter response_uri: only with operationMode A",
            ));
        }
        Ok(None)
    }
}

fn validity_secs(v: Option<&serde_json::Value>) -> Result<i64, CscError> {
    let ms = match v {
        None => DEFAULT_VALIDITY_MS,
        Some(v) => v.as_i64().ok_or_else(|| {
            CscError::invalid("Missing (or invalid type) integer parameter validity_period")
        })?,
    };
    if !VALIDITY_MS.contains(&ms) {
        return Err(CscError::invalid(format!(
            "Out of bounds parameter validity_period: {} to {} ms",
            VALIDITY_MS.start(),
            VALIDITY_MS.end()
        )));
    }
    Ok((ms + 999) / 1000)
}

fn response_uri(st: &AppState, v: Option<&serde_json::Value>) -> Result<Option<String>, CscError> {
    let Some(v) = v else {
        return Ok(None);
    };
    let refused = || CscError::invalid("Invalid parameter response_uri");
    let raw = v.as_str().ok_or_else(refused)?;
    let url = url::Url::parse(raw).map_err(|_| refused())?;
    let allowed = matches!(url.scheme(), "https" | "http")
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && st
            .settings
            .async_callback_origins
            .contains(&url.origin().ascii_serialization());
    if !allowed {
        return Err(CscError::invalid(
            "Invalid parameter response_uri: not an origin this server calls back \
             (--async-callback-origins)",
        ));
    }
    Ok(Some(url.to_string()))
}

/// Accept an asynchronous call of `user`: record it, run `work` (the call as it would have run
/// synchronously, giving its JSON answer) in the background, and return the `responseID`.
pub async fn accept<W>(
    st: &AppState,
    user: &UserId,
    params: AsyncParams,
    work: W,
) -> Result<Secret, CscError>
where
    W: Future<Output = Result<serde_json::Value, CscError>> + 'static,
{
    let id = token::generate();
    let id_hash = token::hash(id.expose());
    let now = st.clock.now();
    let row = JobRow {
        id_hash: id_hash.clone(),
        user_id: user.0.clone(),
        status: None,
        result: None,
        expires_at: now + params.validity_secs,
        created_at: now,
    };
    let store = st.store.clone();
    let inserted = blocking::run(move || {
        Ok(store.with(|c| repo::sign_jobs::insert_within(c, &row, now, MAX_LIVE_PER_USER))?)
    })
    .await?;
    if !inserted {
        return Err(CscError::invalid(format!(
            "Too many asynchronous requests: at most {MAX_LIVE_PER_USER} unexpired at once"
        )));
    }
    let st = st.clone();
    let response_id = id.clone();
    actix_web::rt::spawn(async move {
        let (status, answer) = match work.await {
            Ok(v) => (200, v),
            Err(e) => {
                if let CscError::Internal(cause) = &e {
                    tracing::error!(cause = %cause, "asynchronous signing failed");
                }
                let body = serde_json::json!({
                    "error": e.code(),
                    "error_description": e.to_string(),
                });
                (i32::from(e.status_code().as_u16()), body)
            }
        };
        let store = st.store.clone();
        let text = answer.to_string();
        let stored = blocking::run(move || {
            Ok(store.with(|c| repo::sign_jobs::finish(c, &id_hash, status, &text))?)
        })
        .await;
        match stored {
            Ok(_) => tracing::info!(status, "asynchronous signing call answered"),
            Err(e) => {
                tracing::warn!(error = %e, "asynchronous signing: its answer could not be stored");
                return;
            }
        }
        if let Some(uri) = params.response_uri {
            let _ = blocking::run(move || {
                call_back(&uri, &response_id);
                Ok(())
            })
            .await;
        }
    });
    Ok(id)
}

/// Tell the client at `uri` that its call has an answer (blocking; a few tries).
fn call_back(uri: &str, response_id: &Secret) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(CALLBACK_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let body = serde_json::json!({ "responseID": response_id.expose() });
    for attempt in 1..=CALLBACK_ATTEMPTS {
        match agent.post(uri).send_json(&body) {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if r.status().is_client_error() => {
                tracing::warn!(
                    status = r.status().as_u16(),
                    "response_uri refused the callback"
                );
                return;
            }
            Ok(r) => tracing::warn!(attempt, status = r.status().as_u16(), "response_uri failed"),
            Err(e) => tracing::warn!(attempt, error = %e, "response_uri unreachable"),
        }
        std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
    }
}

/// `signatures/signPolling`: the answer of `user`'s call `request_id` (its status and JSON), or
/// 202 `accepted_request` while it runs; an unknown, expired or another user's ID is refused.
pub async fn poll(
    st: &AppState,
    user: &UserId,
    request_id: &str,
) -> Result<(u16, String), CscError> {
    let unknown = || CscError::invalid("Invalid parameter requestID");
    if request_id.is_empty() || request_id.len() > 512 {
        return Err(unknown());
    }
    let (store, id_hash, user_id, now) = (
        st.store.clone(),
        token::hash(request_id),
        user.0.clone(),
        st.clock.now(),
    );
    let row = blocking::run(move || {
        Ok(store.with(|c| repo::sign_jobs::find(c, &id_hash, &user_id, now))?)
    })
    .await?
    .ok_or_else(unknown)?;
    match (row.status, row.result) {
        (Some(status), Some(result)) => Ok((u16::try_from(status).unwrap_or(500), result)),
        _ => Err(CscError::AcceptedRequest),
    }
}
