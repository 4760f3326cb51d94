//! `quill serve`: open the store and the token, then serve the CSC API until SIGTERM/SIGINT
//! (in-flight requests are finished, and asynchronous signing calls, up to 30 s). Prints `{"listening":"ADDR","url":"http[s]://ADDR"}` on
//! stdout once bound.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::ServeArgs;
use crate::qscd::Qscd;
use crate::startup::Application;
use crate::state::AppState;
use crate::store::Store;

/// Open everything `serve` needs.
pub fn state(args: &ServeArgs) -> anyhow::Result<AppState> {
    let settings = args.service_settings()?;
    crate::auth::password::set_parallelism(args.hash.argon2_parallel);
    let store = Store::open(&args.store.database_url, 16)?;
    let qscd: Arc<dyn Qscd> = args.token.open()?;
    // The development CA and the time-stamping unit (RFC 3161) live in the token: made once.
    crate::service::tsa::ensure_objects(&store, &qscd, crate::clock::Clock::now(&SystemClock))?;
    let pepper = crate::auth::password::Pepper::from_token(qscd.as_ref())?;
    Ok(AppState {
        settings: Arc::new(settings),
        store,
        qscd,
        pepper,
        clock: Arc::new(SystemClock),
        otp_sender: crate::notify::from_spec(&args.otp_sender)?,
        metrics: crate::metrics::Metrics::new()?,
        sign_costs: Default::default(),
        jobs: Default::default(),
    })
}

/// Serve with an already opened state on an already bound listener (shared with `demo`).
pub fn serve(state: AppState, listener: TcpListener, args: &ServeArgs) -> anyhow::Result<()> {
    serve_with(state, listener, args.tls.server_config()?)
}

fn serve_with(
    state: AppState,
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        if let Some(every) = state.settings.purge_every {
            actix_web::rt::spawn(crate::service::purge::every(state.clone(), every));
        }
        let jobs = state.jobs.clone();
        let app = Application::build(state, listener, tls)?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}",
            serde_json::json!({ "listening": app.address.to_string(), "url": app.url() })
        )?;
        out.flush()?;
        drop(out);
        tracing::info!(url = %app.url(), "Quill is serving the CSC API v2");
        app.server.await?;
        // Asynchronous calls accepted before the stop have spent their SADs: finish them too.
        let running = jobs.count();
        if running > 0 {
            tracing::info!(running, "waiting for asynchronous signing calls to finish");
            if !jobs.drained(std::time::Duration::from_secs(30)).await {
                tracing::warn!(
                    left = jobs.count(),
                    "stopping with asynchronous calls unfinished"
                );
            }
        }
        Ok(())
    })
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Check the TLS files and the address before opening the token, so a bad path or a port
    // in use fails fast and cleanly.
    let tls = args.tls.server_config()?;
    let listener = crate::startup::bind(args.listen)?;
    let state = state(&args)?;
    serve_with(state, listener, tls)
}
