//! Asynchronous signing (`operationMode: "A"` on signHash and signDoc, answered by
//! `signatures/signPolling`, CSC v2 §11.9–§11.11). The call is checked as far as its own fields
//! go and answered at once with a `responseID`; the signing call itself (the caller's token,
//! the credential, the SAD and its spend, the signatures) then runs as it would have
//! synchronously, and its answer, a success or the CSC error it met, is kept for its
//! `validity_period` (a row per call, the responseID stored as its SHA-256, bound to the user),
//! sealed under a key derived from the responseID ([`seal`]).
//! With a `response_uri` among `--async-callback-origins`, Quill posts `{"responseID"}` there
//! when the answer is ready; the answer itself is only ever given to signPolling. Calls run on
//! the server's main runtime, not an HTTP worker's, and a stopping server waits for them
//! ([`Running::drained`]) as it does for requests in flight.

mod seal;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::ResponseError;
use tracing::Instrument;

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
/// Asynchronous calls a user's service tokens may hold at once, expired ones included until the
/// purge deletes them (each holds its answer, signed documents too).
pub const MAX_HELD_PER_USER: i64 = 100;
/// The same for one OAuth credential token (an allowance of its own).
pub const MAX_HELD_PER_CREDENTIAL_TOKEN: i64 = 10;
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
        // A whole number, however written (1000 or 1000.0).
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| {
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

/// Who made an asynchronous call: its user, and the OAuth credential token it was made with
/// (only that token, or the user's service tokens, may poll it).
#[derive(Debug, Clone)]
pub struct JobCaller {
    pub user: UserId,
    pub credential_token: Option<Secret>,
}

/// The asynchronous calls running in this process.
#[derive(Debug, Default)]
pub struct Running {
    count: AtomicUsize,
    done: tokio::sync::Notify,
}

impl Running {
    fn start(self: &std::sync::Arc<Self>) -> RunningGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        RunningGuard(self.clone())
    }

    /// How many are running.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Wait until none is running, or `limit` has passed: whether none is.
    pub async fn drained(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.done.notified();
                if self.count() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

struct RunningGuard(std::sync::Arc<Running>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.done.notify_waiters();
    }
}

/// Accept an asynchronous call: record it, run `work` (the call as it would have run
/// synchronously, giving its JSON answer) in the background, and return the `responseID`.
pub async fn accept<W>(
    st: &AppState,
    caller: &JobCaller,
    params: AsyncParams,
    work: W,
) -> Result<Secret, CscError>
where
    W: Future<Output = Result<serde_json::Value, CscError>> + Send + 'static,
{
    let id = token::generate();
    let id_hash = token::hash(id.expose());
    let now = st.clock.now();
    // `now` is in whole seconds: one more keeps the answer at least validity_period.
    let keep = params.validity_secs + 1;
    let credential_token_hash = caller
        .credential_token
        .as_ref()
        .map(|t| token::hash(t.expose()));
    let max_held = match credential_token_hash {
        Some(_) => MAX_HELD_PER_CREDENTIAL_TOKEN,
        None => MAX_HELD_PER_USER,
    };
    let row = JobRow {
        id_hash: id_hash.clone(),
        user_id: caller.user.0.clone(),
        credential_token_hash,
        status: None,
        result: None,
        expires_at: now + keep,
        created_at: now,
        sealed_result: None,
    };
    let store = st.store.clone();
    let inserted = blocking::run(move || {
        Ok(store.with(|c| repo::sign_jobs::insert_within(c, &row, max_held))?)
    })
    .await?;
    if !inserted {
        return Err(CscError::invalid(format!(
            "Too many asynchronous requests: at most {max_held} held at once (until they \
             expire and are purged)"
        )));
    }
    let st = st.clone();
    let response_id = id.clone();
    let running = st.jobs.start();
    let job = async move {
        let _running = running;
        let (status, answer) = match work.await {
            Ok(v) => (200, v),
            Err(e) => {
                if let CscError::Internal(cause) = &e {
                    tracing::error!(cause = %cause, "asynchronous signing failed");
                }
                // The call's own token, judged when the call ran: not the poller's.
                let e = match e {
                    CscError::InvalidToken => CscError::invalid(
                        "The access token of the call was no longer valid when it ran",
                    ),
                    e => e,
                };
                let body = serde_json::json!({
                    "error": e.code(),
                    "error_description": e.to_string(),
                });
                (i32::from(e.status_code().as_u16()), body)
            }
        };
        let store = st.store.clone();
        let expires_at = st.clock.now() + keep;
        let sealed_for = response_id.clone();
        let stored = blocking::run(move || {
            let bound = seal::Bound {
                id_hash: &id_hash,
                status,
            };
            let sealed = seal::seal(sealed_for.expose(), &bound, answer.to_string().as_bytes())?;
            Ok(
                store
                    .with(|c| repo::sign_jobs::finish(c, &id_hash, status, &sealed, expires_at))?,
            )
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
    }
    .instrument(tracing::Span::current());
    // On the server's main runtime: an HTTP worker's would drop the call when the worker stops.
    actix_web::rt::System::current().arbiter().spawn(job);
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

/// `signatures/signPolling`: the answer of the caller's call `request_id` (its status and
/// JSON), or 202 `accepted_request` while it runs; an unknown, expired or another user's ID is
/// refused, and a credential token polls only the calls it made.
pub async fn poll(
    st: &AppState,
    caller: &JobCaller,
    request_id: &str,
) -> Result<(u16, String), CscError> {
    let unknown = || CscError::invalid("Invalid parameter requestID");
    if request_id.is_empty() || request_id.len() > 512 {
        return Err(unknown());
    }
    let (store, id_hash, user_id, now) = (
        st.store.clone(),
        token::hash(request_id),
        caller.user.0.clone(),
        st.clock.now(),
    );
    let credential_token = caller
        .credential_token
        .as_ref()
        .map(|t| token::hash(t.expose()));
    let row = blocking::run(move || {
        Ok(store.with(|c| {
            repo::sign_jobs::find(c, &id_hash, &user_id, credential_token.as_deref(), now)
        })?)
    })
    .await?
    .ok_or_else(unknown)?;
    let Some(status) = row.status else {
        return Err(CscError::AcceptedRequest);
    };
    let answer = match (row.sealed_result, row.result) {
        (Some(sealed), _) => {
            let bound = seal::Bound {
                id_hash: &row.id_hash,
                status,
            };
            let clear = seal::open(request_id, &bound, &sealed)?;
            String::from_utf8(clear).map_err(|e| CscError::Internal(e.to_string()))?
        }
        // Written in clear by a version before sealing.
        (None, Some(result)) => result,
        (None, None) => return Err(CscError::AcceptedRequest),
    };
    Ok((u16::try_from(status).unwrap_or(500), answer))
}
