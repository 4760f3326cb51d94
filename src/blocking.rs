//! The one helper that moves blocking work (diesel queries, PKCS#11 calls, argon2) off the async
//! executor while keeping the caller's tracing span.

use crate::error::CscError;

/// Run `f` on tokio's blocking pool inside the current span.
pub async fn run<F, T>(f: F) -> Result<T, CscError>
where
    F: FnOnce() -> Result<T, CscError> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| CscError::Internal(format!("blocking task failed: {e}")))?
}
