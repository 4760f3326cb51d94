//! `csc-conformance`: run the CSC v2 conformance suite against a server and print a table
//! (optionally JUnit XML). Exit code 0: no check failed; 1: a check failed; 2: usage or
//! connection error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Parser, ValueEnum};
use csc_conformance::{Config, OtpSource, TotpScope, TotpState};

/// `--totp-scope`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scope {
    /// A code (time step) is presented once per secret, whichever credential it is for
    Secret,
    /// Once per credential (faster; only for servers that count replays per credential)
    Credential,
}

#[derive(Debug, Parser)]
#[command(
    name = "csc-conformance",
    version,
    about = "Black-box conformance checks for Cloud Signature Consortium API v2 servers",
    group(ArgGroup::new("otp").required(true).args(["totp_secret", "otp_command"]))
)]
struct Args {
    /// Service base URL; methods are called at <URL>/csc/v2/<method>
    #[arg(long, env = "CSC_BASE_URL")]
    base_url: String,
    /// User name for auth/login (HTTP Basic)
    #[arg(long, env = "CSC_USER")]
    user: String,
    /// Password for auth/login
    #[arg(long, env = "CSC_PASSWORD", hide_env_values = true)]
    password: String,
    /// Signing PIN of the credentials under test
    #[arg(long, env = "CSC_PIN", hide_env_values = true)]
    pin: String,
    /// TOTP secret (base32) of the credentials: the suite computes the codes
    #[arg(long, env = "CSC_TOTP_SECRET", hide_env_values = true)]
    totp_secret: Option<String>,
    /// Shell command printing the current OTP (CSC_CREDENTIAL_ID is set for it); for online
    /// OTP credentials the suite requests the challenge first
    #[arg(long)]
    otp_command: Option<String>,
    /// Whether a TOTP step may be presented once per secret (safe with every server) or once
    /// per credential (faster with several credentials; for servers that count per credential)
    #[arg(long, env = "CSC_TOTP_SCOPE", value_enum, default_value = "secret")]
    totp_scope: Scope,
    /// File recording the TOTP steps presented (no secrets), so a later or concurrent run
    /// never presents them again [default: $XDG_STATE_HOME/csc-conformance/totp-steps.json,
    /// else <temp dir>/csc-conformance-$USER/totp-steps.json]
    #[arg(long, env = "CSC_TOTP_STATE", value_name = "FILE")]
    totp_state: Option<PathBuf>,
    /// Credential to test (repeatable); default: every credential credentials/list returns
    #[arg(long = "credential", value_name = "ID")]
    credentials: Vec<String>,
    /// Also write the results as JUnit XML to this file
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Longest wait for a SAD to expire; the expiry check is skipped for longer-lived SADs
    #[arg(long, default_value_t = 30, value_name = "N")]
    max_wait_secs: u64,
    /// Timeout of one HTTP request, seconds
    #[arg(long, default_value_t = 60, value_name = "N")]
    timeout_secs: u64,
    /// Listen here (e.g. 127.0.0.1:8099) for the response_uri callback of an asynchronous
    /// signHash; without it that check is skipped
    #[arg(long, env = "CSC_CALLBACK_LISTEN", value_name = "ADDR:PORT")]
    callback_listen: Option<SocketAddr>,
    /// The response_uri the server is given [default: http://<listen address>/csc-callback];
    /// for a server that reaches the suite through NAT or a proxy
    #[arg(
        long,
        env = "CSC_CALLBACK_URL",
        value_name = "URL",
        requires = "callback_listen"
    )]
    callback_url: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let otp = match (args.totp_secret, args.otp_command) {
        (Some(secret), _) => OtpSource::TotpSecret(secret),
        (None, Some(cmd)) => OtpSource::Command(cmd),
        (None, None) => {
            eprintln!("csc-conformance: give --totp-secret or --otp-command");
            return ExitCode::from(2);
        }
    };
    let mut config = Config::new(args.base_url, args.user, args.password, args.pin, otp);
    config.credentials = args.credentials;
    config.totp_scope = match args.totp_scope {
        Scope::Secret => TotpScope::Secret,
        Scope::Credential => TotpScope::Credential,
    };
    config.totp_state = args.totp_state.map_or(TotpState::Default, TotpState::File);
    config.max_wait = Duration::from_secs(args.max_wait_secs);
    config.http_timeout = Duration::from_secs(args.timeout_secs.max(1));
    config.callback_listen = args.callback_listen;
    config.callback_url = args.callback_url;

    let report = match csc_conformance::run(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("csc-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.table());
    if let Some(path) = args.junit
        && let Err(e) = std::fs::write(&path, report.junit())
    {
        eprintln!("csc-conformance: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(1))
}
