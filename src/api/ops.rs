//! Operations endpoints, outside the CSC API (not under `/csc/`, not in openapi.yaml):
//! `GET /healthz` (the process answers), `GET /readyz` (the database and the token answer, else
//! 503 `temporarily_unavailable` naming which) and `GET /metrics` (Prometheus text format).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::blocking;
use crate::error::CscError;
use crate::state::AppState;

/// Longest a readiness probe waits for the database or the token.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Run one blocking check with a deadline; `Err(cause)` when it fails or takes too long.
async fn probe<E: std::fmt::Display + Send + 'static>(
    timeout: Duration,
    check: impl FnOnce() -> Result<(), E> + Send + 'static,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, blocking::run(move || Ok(check()))).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, CscError> {
    readiness(&state, PROBE_TIMEOUT).await
}

/// Ask the database (`Store::ping`) and the token (`Qscd::check`) at once, each within
/// `timeout`, on blocking threads.
async fn readiness(state: &AppState, timeout: Duration) -> Result<HttpResponse, CscError> {
    let store = state.store.clone();
    let qscd = state.qscd.clone();
    let (db, token) = tokio::join!(
        probe(timeout, move || store.ping()),
        probe(timeout, move || qscd.check())
    );
    if let Err(cause) = &db {
        tracing::warn!(%cause, "readiness: database unavailable");
    }
    if let Err(cause) = &token {
        tracing::warn!(%cause, "readiness: token unavailable");
    }
    match (db.is_ok(), token.is_ok()) {
        (true, true) => Ok(HttpResponse::Ok().json(json!({
            "status": "ready",
            "database": "ok",
            "token": "ok",
        }))),
        (false, true) => Err(CscError::NotReady("database")),
        (true, false) => Err(CscError::NotReady("token")),
        (false, false) => Err(CscError::NotReady("database and token")),
    }
}

pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, CscError> {
    let text = state
        .metrics
        .render(state.store.pool_state())
        .map_err(|e| CscError::Internal(format!("metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}

pub async fn get_only() -> Result<HttpResponse, CscError> {
    Err(CscError::GetOnly)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::{App, test};

    use super::*;
    use crate::qscd::{KeySpec, Qscd, QscdError, SignMechanism};

    /// A token that answers `check` when `up`, and nothing else.
    struct FakeToken {
        up: bool,
    }

    fn down<T>() -> Result<T, QscdError> {
        Err(QscdError::Device("fake token".into()))
    }

    impl Qscd for FakeToken {
        fn generate_key_pair(&self, _: KeySpec, _: &[u8], _: &str) -> Result<Vec<u8>, QscdError> {
            down()
        }
        fn public_key(&self, _: &[u8]) -> Result<Vec<u8>, QscdError> {
            down()
        }
        fn sign(&self, _: &[u8], _: SignMechanism, _: &[&[u8]]) -> Result<Vec<Vec<u8>>, QscdError> {
            down()
        }
        fn destroy_key_pair(&self, _: &[u8]) -> Result<(), QscdError> {
            down()
        }
        fn seal(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, QscdError> {
            down()
        }
        fn unseal(&self, _: &[u8], _: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, QscdError> {
            down()
        }
        fn derive_secret(&self, _: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, QscdError> {
            down()
        }
        fn put_certificate(&self, _: &[u8], _: &str, _: &[u8]) -> Result<(), QscdError> {
            down()
        }
        fn find_certificate(&self, _: &str) -> Result<Option<Vec<u8>>, QscdError> {
            down()
        }
        fn has_key(&self, _: &[u8]) -> Result<bool, QscdError> {
            down()
        }
        fn key_ids_labelled(&self, _: &str) -> Result<Vec<Vec<u8>>, QscdError> {
            down()
        }
        fn check(&self) -> Result<(), QscdError> {
            if self.up { Ok(()) } else { down() }
        }
    }

    fn state(store: crate::store::Store, token_up: bool, dir: &std::path::Path) -> AppState {
        let outbox = format!("outbox:{}", dir.join("o.jsonl").display());
        AppState {
            settings: Arc::new(crate::config::ServiceSettings {
                access_token_ttl: 3600,
                sad_ttl: 300,
                service_name: "t".into(),
                region: "EU".into(),
                hash: crate::auth::password::HashParams {
                    memory_kib: 8,
                    iterations: 1,
                },
                max_auth_failures: 5,
                login_lock_secs: Some(900),
                sign_on_worker: false,
                purge_every: None,
                keep_expired: 3600,
                body_timeout: std::time::Duration::from_secs(30),
                public_url: None,
                logo: None,
                async_callback_origins: Vec::new(),
            }),
            store,
            qscd: Arc::new(FakeToken { up: token_up }),
            pepper: crate::auth::password::Pepper::from_bytes(vec![1u8; 32]),
            clock: Arc::new(crate::clock::SystemClock),
            otp_sender: crate::notify::from_spec(&outbox).unwrap(),
            metrics: crate::metrics::Metrics::new().unwrap(),
            sign_costs: Default::default(),
            jobs: Default::default(),
        }
    }

    async fn get_readyz(state: AppState) -> (u16, serde_json::Value) {
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(state))
                .configure(crate::api::configure),
        )
        .await;
        let req = test::TestRequest::get().uri("/readyz").to_request();
        let res = test::call_service(&app, req).await;
        let status = res.status().as_u16();
        (status, test::read_body_json(res).await)
    }

    #[actix_web::test]
    async fn readyz_names_the_part_that_is_down() {
        let (dir, store) = crate::store::tests::temp_store();
        let (status, body) = get_readyz(state(store.clone(), true, dir.path())).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ready");

        let (status, body) = get_readyz(state(store.clone(), false, dir.path())).await;
        assert_eq!(status, 503);
        assert_eq!(body["error"], "temporarily_unavailable");
        assert_eq!(body["error_description"], "Not ready: token unavailable");

        // A database that does not answer: every pooled connection is held elsewhere.
        let held: Vec<_> = (0..4).map(|_| store.conn().unwrap()).collect();
        let st = state(store.clone(), true, dir.path());
        let err = readiness(&st, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, CscError::NotReady("database")), "{err:?}");
        let st = state(store.clone(), false, dir.path());
        let err = readiness(&st, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CscError::NotReady("database and token")),
            "{err:?}"
        );
        drop(held);
        let st = state(store, true, dir.path());
        assert!(readiness(&st, Duration::from_secs(5)).await.is_ok());
    }
}
