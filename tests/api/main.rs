//! Quill's integration tests: ONE test binary. Every test starts the real `quill` binary
//! (`quill enroll`, `quill serve` on port 0) against a fresh SoftHSM2 token in a temporary
//! directory and a fresh SQLite file, talks CSC v2 over HTTP, and verifies signatures with
//! RustCrypto against the returned certificate.

// Test code may panic: a failed expectation is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod helpers;
mod schemas;

mod async_mode;
mod audit;
mod bench;
mod cli;
mod conformance;
mod errors;
mod extend;
mod info_login;
mod lockout;
mod multi_instance;
mod multi_token;
mod oauth;
mod oauth_browser;
mod online_otp;
mod openssl_readme;
mod ops;
mod own_ca;
mod paging;
mod pg;
mod pyhanko;
mod scale;
mod schema_checks;
mod secrets;
mod sign_doc;
mod sign_flow;
mod token_faults;
