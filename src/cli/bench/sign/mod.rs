//! `quill bench sign` (also plain `quill bench`): how close `signatures/signHash` comes to the
//! token's own signing rate, measured against it in one run (issue 8).
//!
//! 1. A private SoftHSM2 token and SQLite database in a temporary directory (the command
//!    re-executes itself with `SOFTHSM2_CONF` pointing there, and removes it at the end); with
//!    `--postgres URL`, a PostgreSQL database of its own on that server instead of SQLite
//!    (created before, dropped after).
//! 2. One user, enrolled in-process exactly as `quill enroll` does (`service::enrol`: key pair
//!    in the token, certificate, argon2 PIN): per key type one online-OTP credential (its code
//!    goes to the server's outbox file) that serves the raw rows and every prepared SAD, and
//!    for the authorize → signHash flows TOTP credentials.
//! 3. **raw**: `Pkcs11Qscd::sign`, one digest per call, from 1 and N threads — the ceiling.
//! 4. The argon2id cost of one PIN verification, alone.
//! 5. A real `quill serve` child on 127.0.0.1:0 (spawn → `{"listening"}` is the cold start).
//!    For each key and concurrency: SADs authorized beforehand over HTTP (`getChallenge`, then
//!    PIN + the code from the outbox, 1000 digests each, all on the raw rows' key),
//!    then `signHash` with 1 and with 100 hashes per call over keep-alive connections
//!    (**sign_hash_1**, **sign_hash_100**), and the full flow authorize → signHash of one hash
//!    (**authorize_sign**, RSA-2048 and P-256).
//! 6. A table with the targets on stderr; the JSON report on stdout and to `--json FILE`.
//!
//! Rates are signatures (flows for authorize_sign) per second; latencies are per HTTP call
//! (per flow). Every loop stops at `--duration-ms` or when its prepared inputs (bounded by
//! `--max-signatures`) run out, whichever comes first.

mod args;
mod client;
mod measure;
mod prepare;
mod raw;
mod report;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

pub use args::SignArgs;
use args::key_kind;
use prepare::Bench;
use raw::argon2_verify_ms;
use report::Report;
use setup::start_server;

use crate::auth::password::HashParams;
use crate::auth::token;

/// Set (with SOFTHSM2_CONF) when the command has re-executed itself inside its directory.
const DIR_ENV: &str = "QUILL_BENCH_DIR";
/// With `--postgres`: the URL of the database made for this run, for the re-executed child.
const DB_ENV: &str = "QUILL_BENCH_DATABASE_URL";
const TOKEN_LABEL: &str = "quill-bench";
const USER: &str = "bench";
/// Digests per SAD (the credential's multisign; enrolment allows at most 1000).
const PER_SAD: usize = 1000;
/// Flows are measured for these keys only (argon2 dominates; enrolling is the cost).
const FLOW_KEYS: [&str; 2] = ["rsa-2048", "ec-p256"];
/// PIN hash cost of the credential that prepares SADs: preparing them is not measured, and at
/// the configured cost it was a fifth of the run. The credentials of the authorize → signHash
/// flows keep the configured cost (the flows measure it).
const PREP_HASH: HashParams = HashParams {
    memory_kib: 8,
    iterations: 1,
};
/// The server's OTP outbox (in the bench directory), where SAD preparation reads its codes.
const OUTBOX: &str = "otp-outbox.jsonl";
/// Online OTP destination of the SAD-preparing credentials: a new code per authorization, so
/// one credential serves every SAD (TOTP accepts each 30-second step once per credential, which
/// took a hundred credentials, and their key pairs, for a P-256 run).
const PREP_OTP: &str = "email:bench@example.org";
/// Alternating server / raw slices per scenario.
const SLICES: u32 = 4;
/// More inputs than the raw rate says a scenario can use in its time.
const MARGIN: f64 = 1.3;

pub fn run(args: SignArgs) -> anyhow::Result<()> {
    let args = args.effective();
    for k in &args.keys {
        key_kind(k)?;
    }
    anyhow::ensure!(
        (1..=64).contains(&args.threads),
        "--threads must be 1 to 64"
    );
    anyhow::ensure!(
        (1..=600_000).contains(&args.duration_ms),
        "--duration-ms must be 1 to 600000"
    );
    anyhow::ensure!(
        (100..=10_000_000).contains(&args.max_signatures),
        "--max-signatures must be 100 to 10000000"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&args.flows),
        "--flows must be 1 to 10000"
    );
    match std::env::var_os(DIR_ENV) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            anyhow::ensure!(
                std::env::var_os("SOFTHSM2_CONF").as_deref()
                    == Some(dir.join("softhsm2.conf").as_os_str()),
                "{DIR_ENV} is set without its SOFTHSM2_CONF"
            );
            let db_url = match (&args.postgres, std::env::var(DB_ENV)) {
                (Some(_), Ok(url)) => url,
                (None, Err(_)) => format!("sqlite://{}", dir.join("quill.db").display()),
                _ => anyhow::bail!("{DB_ENV} goes with --postgres, and only with it"),
            };
            inside(&args, &dir, &db_url)
        }
        None => outside(&args),
    }
}

/// Make the directory (and with `--postgres` the database), run the benchmark in a child of
/// ourselves that uses it, remove them.
fn outside(args: &SignArgs) -> anyhow::Result<()> {
    let database = args
        .postgres
        .as_deref()
        .map(|url| crate::store::scratch::ScratchDatabase::create(url, "quill_bench"))
        .transpose()?;
    let dir = std::env::temp_dir().join(format!("quill-bench-{}", token::random_id(8)));
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            tokens.display()
        ),
    )?;
    let mut child = Command::new(std::env::current_exe()?);
    child
        .args(std::env::args_os().skip(1))
        .env(DIR_ENV, &dir)
        .env("SOFTHSM2_CONF", &conf)
        .env_remove(DB_ENV);
    if let Some(db) = &database {
        child.env(DB_ENV, db.url());
    }
    let status = child.status();
    drop(database);
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.context("cannot re-execute quill bench")?;
    anyhow::ensure!(status.success(), "the benchmark failed ({status})");
    Ok(())
}

/// The benchmark itself, in the directory `outside` made: steps 1 to 6 of the module doc.
fn inside(args: &SignArgs, dir: &Path, db_url: &str) -> anyhow::Result<()> {
    let mut bench = Bench::setup(args, db_url)?;
    bench.enrol_and_measure_raw()?;
    // 4. argon2 alone.
    let argon2_ms = argon2_verify_ms(args, bench.qscd.as_ref())?;
    let mut flow_creds = bench.enrol_flow_credentials()?;

    // 5. The real server.
    let server = start_server(dir, args, db_url, &bench.token_pin)?;
    eprintln!(
        "quill serve ready on {} after {:.0} ms",
        server.addr,
        server.cold_start.as_secs_f64() * 1000.0
    );
    // The login connection stays open (idle) until the end of the run.
    let (client, _login) = bench.login(&server, dir)?;
    let floor = bench.http_floor(server.addr)?;
    let mut rows = bench.raw_rows()?;
    let signed = bench.sign_hash_scenarios(&client)?;
    rows.extend(signed.rows);
    let rss_sign_hash = server.peak_rss_mib()?;
    let (flow_rows, authorize_p50_ms) = bench.authorize_flows(&client, &mut flow_creds)?;
    rows.extend(flow_rows);
    let rss = server.peak_rss_mib()?;
    let cold_start_ms = server.cold_start.as_secs_f64() * 1000.0;
    drop(server);

    Report {
        database: bench.database,
        rows,
        floor,
        breakdowns: signed.breakdowns,
        rss,
        rss_sign_hash,
        cold_start_ms,
        argon2_ms,
        authorize_p50_ms,
        prepare_seconds: signed.prepare_seconds,
    }
    .finish(args)
}
