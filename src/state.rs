//! What every request handler shares: settings, the store, the QSCD, the clock and the metrics.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::ServiceSettings;
use crate::metrics::Metrics;
use crate::notify::OtpSender;
use crate::qscd::Qscd;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<ServiceSettings>,
    pub store: Store,
    pub qscd: Arc<dyn Qscd>,
    /// argon2's secret input for passwords and PINs, derived in the token at start-up.
    pub pepper: crate::auth::password::Pepper,
    pub clock: SharedClock,
    pub otp_sender: Arc<dyn OtpSender>,
    pub metrics: Metrics,
    /// What a signature costs in the token, per kind of key (where `--sign-on-worker` signs).
    pub sign_costs: Arc<crate::service::signing::SignCosts>,
    /// Asynchronous signing calls still running (a stopping server waits for them).
    pub jobs: Arc<crate::service::sign_jobs::Running>,
}
