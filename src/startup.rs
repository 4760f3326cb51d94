//! Build the HTTP application: bind (port 0 allowed), wire state and routes, add request logging.
//! `quill serve`, `quill demo` and the integration tests all start Quill through here.

use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpServer, web};

use crate::api;
use crate::state::AppState;

/// A bound, not yet running, server.
pub struct Application {
    pub server: Server,
    pub address: SocketAddr,
}

impl Application {
    /// Bind `listen` and prepare the server. Must be called inside an actix system.
    pub fn build(state: AppState, listen: SocketAddr) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(listen)?;
        let address = listener.local_addr()?;
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(api::extract::MAX_BODY))
                .wrap_fn(|req, srv| {
                    let started = Instant::now();
                    let method = req.method().clone();
                    let path = req.path().chars().take(200).collect::<String>();
                    let fut = srv.call(req);
                    async move {
                        let res = fut.await;
                        let status = res.as_ref().map(|r| r.status().as_u16()).unwrap_or(500);
                        tracing::info!(
                            %method,
                            %path,
                            status,
                            us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                            "request"
                        );
                        res
                    }
                })
                .configure(api::configure)
        })
        .listen(listener)?
        .shutdown_timeout(30)
        .run();
        Ok(Application { server, address })
    }
}
