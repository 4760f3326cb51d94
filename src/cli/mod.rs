//! The command line: one binary, one clap subcommand per file. Machine-readable output goes to
//! stdout as one JSON object; human messages and logs go to stderr; any failure exits ≠ 0.
//! Settings come from flags, `QUILL_*` variables and the config file (`config_file`), in that
//! order of precedence, then built-in defaults.

pub mod admin;
pub mod audit;
pub mod bench;
pub mod client;
pub mod config_file;
pub mod credential;
pub mod demo;
pub mod enroll;
pub mod healthcheck;
pub mod otp;
pub mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "quill", version, about = "CSC API v2 remote signature server")]
struct Cli {
    /// Config file (TOML; keys are the long flag names). Default: ./quill.toml if it exists.
    /// Precedence: flag > QUILL_* environment variable > config file > default.
    #[arg(long, env = "QUILL_CONFIG", global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
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
    /// Operate on credentials: unblock, disable / enable, list expiring certificates, renew.
    #[command(subcommand)]
    Credential(credential::CredentialCommand),
    /// Operate on users (unblock after a login lockout).
    #[command(subcommand)]
    User(credential::UserCommand),
    /// Check or export the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Probe a running server's readiness (exit 0 when ready): for container health checks.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Print the current TOTP code for a base32 secret (demo and conformance helper).
    Otp(otp::OtpArgs),
    /// OAuth 2.0 clients (relying parties, wallets) of the authorization server.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Administration for test deployments (scale-test seeding).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Benchmarks against a real `quill serve` on 127.0.0.1 (plain `quill bench`: `bench sign`).
    Bench(bench::BenchArgs),
}

/// Log to stderr, filtered by `QUILL_LOG` (`LEVEL` and `TARGET=LEVEL`, comma-separated, e.g.
/// `info,quill::store=debug`; default `info,actix_server=warn,actix_http::h1::dispatcher=off`:
/// the dispatcher logs every malformed request a client sends (answered 400 or 431 before
/// Quill sees it) as an ERROR, which anyone could fill the log and its alerts with). Text logs
/// are coloured only on
/// a terminal, and not when `NO_COLOR` is set: a file, a pipe, journald or `docker logs` get
/// plain lines.
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing::Level;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("QUILL_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_default(Level::INFO)
                .with_target("actix_server", Level::WARN)
                .with_target(
                    "actix_http::h1::dispatcher",
                    tracing_subscriber::filter::LevelFilter::OFF,
                )
        });
    let registry = tracing_subscriber::registry().with(filter);
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => registry.with(fmt).init(),
        LogFormat::Json => registry.with(fmt.json()).init(),
    }
}

/// Parse the command line over the config file's values (clap exits itself on usage errors
/// and `--help`).
fn parse() -> anyhow::Result<(Cli, Option<config_file::ConfigFile>)> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cmd = Cli::command();
    let file = config_file::locate(&args)
        .map(|path| config_file::load(&path))
        .transpose()?;
    if let Some(file) = &file {
        cmd = config_file::apply(cmd, file)?;
    }
    let matches = cmd.get_matches_from(args);
    Ok((Cli::from_arg_matches(&matches)?, file))
}

pub fn main() -> ExitCode {
    let (cli, file) = match parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(cli.log_format);
    if let Some(file) = &file {
        tracing::info!(path = %file.path.display(), "settings read from the config file");
        let exposed = file.exposed_secrets(&Cli::command());
        if !exposed.is_empty() {
            tracing::warn!(
                path = %file.path.display(),
                keys = %exposed.join(", "),
                "the config file holds secrets and users other than its owner may read it: chmod 600 it"
            );
        }
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Enroll(args) => enroll::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Otp(args) => otp::run(args),
        Command::Healthcheck(args) => healthcheck::run(args),
        Command::Credential(cmd) => credential::run_credential(cmd),
        Command::User(cmd) => credential::run_user(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Admin(cmd) => admin::run(cmd),
        Command::Client(cmd) => client::run(cmd),
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
