//! A black-box conformance suite for Cloud Signature Consortium (CSC) API v2 remote signature
//! servers.
//!
//! [`run`] talks to a server over HTTP the way a relying party does — `info`, `auth/login`,
//! `credentials/list`, `credentials/info`, `credentials/authorize` with PIN and OTP,
//! `signatures/signHash` (also asynchronous, answered by `signatures/signPolling`, when the
//! server offers it), `signatures/signDoc` (CAdES: detached B-B and B-T, attached and detached
//! whole documents, several entries and hashes in one call, and a detached B-B asynchronously
//! in the asynchronous mode; when offered),
//! `credentials/extendTransaction`, `auth/revoke` — and returns a [`Report`]: one
//! named row per check with PASS, FAIL or SKIP and a detail. Every response (and every well-formed
//! request the suite sends) is checked against the JSON Schemas of the repository's `schema/`
//! directory, binary fields must be standard base64 and OIDs dotted decimal, `certInfo` must
//! describe the certificate returned with it, error answers must carry the status and code the
//! spec mandates, SCAL2 SADs must be bound to their hashes, budgets and expiry must hold, and
//! every signature must verify against
//! the credential's certificate. Methods `info` does not advertise are skipped.
//!
//! The `csc-conformance` binary is a thin command line over this library.

pub mod cades;
pub mod cades_batch;
pub mod callback;
pub mod certinfo;
pub mod checks;
pub mod client;
pub mod config;
pub mod formats;
pub mod otp;
pub mod report;
pub mod schema;
pub mod totp_state;
pub mod verify;

#[cfg(test)]
mod test_support;

pub use checks::names;
pub use config::{Config, OtpSource, TotpScope, TotpState};
pub use report::{CheckResult, Outcome, Report};

/// Why a run could not happen at all (exit code 2 in the command line tool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fatal {
    /// Bad settings (URL, TOTP secret).
    Usage(String),
    /// The server could not be reached.
    Connection(String),
    /// The suite itself is broken (e.g. an embedded schema does not compile).
    Internal(String),
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fatal::Usage(m) => write!(f, "usage error: {m}"),
            Fatal::Connection(m) => write!(f, "cannot reach the server: {m}"),
            Fatal::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Fatal {}

/// Run every check against the server described by `config`.
pub fn run(config: &Config) -> Result<Report, Fatal> {
    checks::Suite::new(config)?.run()
}
