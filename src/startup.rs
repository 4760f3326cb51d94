//! Build the HTTP application: bind (port 0 allowed; errors name the address), plain HTTP or HTTPS (rustls), wire state
//! and routes, add the request middleware (request ID, logging, metrics: `telemetry`).
//! `quill serve`, `quill demo` and the integration tests all start Quill through here.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::api;
use crate::state::AppState;
use crate::telemetry;

/// A bound, not yet running, server.
pub struct Application {
    pub server: Server,
    pub address: SocketAddr,
    /// `"https"` with TLS, else `"http"`.
    pub scheme: &'static str,
}

/// Bind `listen` (port 0: any free port); a failure names the address.
pub fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))
}

impl Application {
    /// Prepare the server on a bound `listener` (see [`bind`]), serving HTTPS when `tls` is
    /// given. Must be called inside an actix system.
    pub fn build(
        state: AppState,
        listener: TcpListener,
        tls: Option<rustls::ServerConfig>,
    ) -> anyhow::Result<Application> {
        let address = listener.local_addr()?;
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(api::extract::MAX_BODY))
                .wrap(from_fn(api::deadline::body_deadline))
                .wrap(from_fn(telemetry::observe))
                .configure(api::configure)
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        };
        let server = server.shutdown_timeout(30).run();
        Ok(Application {
            server,
            address,
            scheme,
        })
    }

    /// Where clients reach the server, e.g. `https://127.0.0.1:8443`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }
}
