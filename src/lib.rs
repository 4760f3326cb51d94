//! Quill: a Cloud Signature Consortium API v2 remote signature server.
//!
//! Request data flows one way: `api` (thin actix handlers) → `service` (HTTP-free business
//! rules) → `store` (diesel, the only module that touches SQL) and `qscd` (cryptoki, the only
//! module that touches PKCS#11). `error` is the one place a Rust error becomes a CSC error body.

pub mod api;
pub mod auth;
pub mod blocking;
pub mod cades;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod metrics;
pub mod notify;
pub mod pki;
pub mod qscd;
pub mod secret;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
