//! The command line: one binary, one clap subcommand per file. Machine-readable output goes to
//! stdout as one JSON object; human messages and logs go to stderr; any failure exits ≠ 0.

pub mod admin;
pub mod audit;
pub mod bench;
pub mod credential;
pub mod demo;
pub mod enroll;
pub mod otp;
pub mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "quill", version, about = "CSC API v2 remote signature server")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, env = "QUILL_LOG_FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(crate::config::ServeArgs),
    /// Enrol an identity-proofed user: key pair in the token, certificate, PIN and TOTP.
    Enroll(enroll::EnrollArgs),
    /// Start a self-contained demo under ./var (SQLite, SoftHSM2 token, CA, demo user).
    Demo(demo::DemoArgs),
    /// Operate on credentials (unblock after a lockout).
    #[command(subcommand)]
    Credential(credential::CredentialCommand),
    /// Operate on users (unblock after a login lockout).
    #[command(subcommand)]
    User(credential::UserCommand),
    /// Check or export the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Print the current TOTP code for a base32 secret (demo and conformance helper).
    Otp(otp::OtpArgs),
    /// Administration for test deployments (scale-test seeding).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Benchmarks against a real `quill serve` on 127.0.0.1.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("QUILL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Enroll(args) => enroll::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Otp(args) => otp::run(args),
        Command::Credential(cmd) => credential::run_credential(cmd),
        Command::User(cmd) => credential::run_user(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Admin(cmd) => admin::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
