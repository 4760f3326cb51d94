//! Prometheus metrics (text exposition format 0.0.4, served by `GET /metrics`): one registry per
//! running server, kept in `AppState`. Every label takes values from a small fixed set (the
//! matched route pattern, never the raw path; the canonical signAlgo OID; a fixed failure
//! reason), so junk requests cannot blow up the number of series.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::store::PoolState;

/// Endpoint label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Why `credentials/authorize` refused the signer's authentication data (the
/// `quill_authorize_failures_total` label). Malformed requests are not counted here; they show
/// as 4xx in `quill_http_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizeFailure {
    /// The credential is locked after too many failures.
    Locked,
    /// The PIN or the OTP was wrong (or the OTP replayed or expired). One label for both: the
    /// API does not say which factor failed, and neither may `/metrics`, which anyone who can
    /// reach it reads (a per-factor count told which PIN guess was right).
    WrongFactor,
}

impl AuthorizeFailure {
    pub fn label(self) -> &'static str {
        match self {
            AuthorizeFailure::Locked => "locked",
            AuthorizeFailure::WrongFactor => "wrong_pin_or_otp",
        }
    }
}

/// The registry and every collector Quill updates.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    in_flight: IntGauge,
    signatures: IntCounterVec,
    authorize_failures: IntCounterVec,
    hsm_sign: Histogram,
    sign_hash_calls: IntCounterVec,
    purged: IntCounterVec,
    db_pool: IntGaugeVec,
    db_pool_max: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Register `c` in `r` and hand it back.
fn registered<C>(r: &Registry, c: C) -> prometheus::Result<C>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let r = Registry::new();
        Ok(Metrics {
            http_requests: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "quill_http_requests_total",
                        "HTTP requests answered, by matched route pattern and status",
                    ),
                    &["endpoint", "status"],
                )?,
            )?,
            http_duration: registered(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "quill_http_request_duration_seconds",
                        "Time to answer an HTTP request, by matched route pattern",
                    ),
                    &["endpoint"],
                )?,
            )?,
            in_flight: registered(
                &r,
                IntGauge::new(
                    "quill_http_requests_in_flight",
                    "HTTP requests being answered now",
                )?,
            )?,
            signatures: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "quill_signatures_total",
                        "Signature values produced, by signAlgo OID",
                    ),
                    &["algorithm"],
                )?,
            )?,
            authorize_failures: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "quill_authorize_failures_total",
                        "credentials/authorize refusals of the signer's PIN/OTP, by reason",
                    ),
                    &["reason"],
                )?,
            )?,
            hsm_sign: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "quill_hsm_sign_seconds",
                        "Time of one QSCD sign call (all hashes of a signHash request)",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ]),
                )?,
            )?,
            sign_hash_calls: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "quill_sign_hash_calls_total",
                        "signHash calls by the thread that did their token work: worker \
                         (--sign-on-worker, within its budget) or pool",
                    ),
                    &["thread"],
                )?,
            )?,
            purged: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "quill_purged_rows_total",
                        "Expired rows deleted by the purge (--purge-every), by table",
                    ),
                    &["table"],
                )?,
            )?,
            db_pool: registered(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "quill_db_pool_connections",
                        "Database connections held by the pool, idle or in use",
                    ),
                    &["state"],
                )?,
            )?,
            db_pool_max: registered(
                &r,
                IntGauge::new(
                    "quill_db_pool_max_connections",
                    "Most database connections the pool opens",
                )?,
            )?,
            registry: r,
        })
    }

    /// Count one answered request.
    pub fn observe_request(&self, endpoint: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[endpoint, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
    }

    /// A guard counting one in-flight request until it is dropped (also when the request's
    /// future is cancelled).
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// `n` signature values produced with `sign_algo` (a canonical OID).
    pub fn signatures(&self, sign_algo: &str, n: usize) {
        self.signatures
            .with_label_values(&[sign_algo])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    pub fn authorize_failure(&self, reason: AuthorizeFailure) {
        self.authorize_failures
            .with_label_values(&[reason.label()])
            .inc();
    }

    /// One signHash call, done on the HTTP worker thread or in the blocking pool.
    pub fn sign_hash_call(&self, on_worker: bool) {
        let thread = if on_worker { "worker" } else { "pool" };
        self.sign_hash_calls.with_label_values(&[thread]).inc();
    }

    /// `n` expired rows of `table` deleted (a table name from `repo::purge::Purged`).
    pub fn purged(&self, table: &'static str, n: usize) {
        self.purged
            .with_label_values(&[table])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Time of one QSCD sign call.
    pub fn hsm_sign(&self, elapsed: Duration) {
        self.hsm_sign.observe(elapsed.as_secs_f64());
    }

    /// The exposition text, with the pool gauges read from `pool` now.
    pub fn render(&self, pool: PoolState) -> prometheus::Result<String> {
        let in_use = pool.connections.saturating_sub(pool.idle);
        self.db_pool
            .with_label_values(&["idle"])
            .set(i64::from(pool.idle));
        self.db_pool
            .with_label_values(&["in_use"])
            .set(i64::from(in_use));
        self.db_pool_max.set(i64::from(pool.max));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// See [`Metrics::in_flight`].
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_bounded_labels() {
        let m = Metrics::new().unwrap();
        m.observe_request("/csc/v2/info", 200, Duration::from_millis(3));
        m.signatures("1.2.840.10045.4.3.2", 3);
        m.authorize_failure(AuthorizeFailure::WrongFactor);
        m.hsm_sign(Duration::from_millis(2));
        m.purged("sads", 4);
        let guard = m.in_flight();
        let text = m
            .render(PoolState {
                connections: 3,
                idle: 2,
                max: 16,
            })
            .unwrap();
        drop(guard);
        for line in [
            "quill_http_requests_total{endpoint=\"/csc/v2/info\",status=\"200\"} 1",
            "quill_http_request_duration_seconds_count{endpoint=\"/csc/v2/info\"} 1",
            "quill_http_requests_in_flight 1",
            "quill_signatures_total{algorithm=\"1.2.840.10045.4.3.2\"} 3",
            "quill_authorize_failures_total{reason=\"wrong_pin_or_otp\"} 1",
            "quill_hsm_sign_seconds_count 1",
            "quill_purged_rows_total{table=\"sads\"} 4",
            "quill_db_pool_connections{state=\"idle\"} 2",
            "quill_db_pool_connections{state=\"in_use\"} 1",
            "quill_db_pool_max_connections 16",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        assert!(
            m.render(PoolState {
                connections: 0,
                idle: 0,
                max: 1
            })
            .unwrap()
            .contains("quill_http_requests_in_flight 0")
        );
    }
}
