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
mod raw;
mod report;
mod setup;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use secrecy::SecretString;
use serde_json::{Value, json};

pub use args::SignArgs;
use args::{key_kind, random_digest};
use client::{Client, expect_signed, prepare_calls, token_time};
use raw::{argon2_verify_ms, measure_raw};
use report::{breakdown, print_table, print_targets, row};
use setup::{Creds, Otp, Signer, enrol_credentials, start_server};

use super::load::{self, Http, Limits, Run};
use crate::auth::password::HashParams;
use crate::auth::{otp, token};
use crate::crypto;
use crate::qscd::Qscd;
use crate::qscd::pkcs11::{Pkcs11Config, Pkcs11Qscd};
use crate::store::Store;

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

fn inside(args: &SignArgs, dir: &Path, db_url: &str) -> anyhow::Result<()> {
    let levels = args.levels();
    let duration = Duration::from_millis(args.duration_ms);
    let kinds = args
        .keys
        .iter()
        .map(|k| key_kind(k))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // 1. Token, database, signer.
    let token_pin = token::random_id(12);
    Pkcs11Qscd::init_token(
        &args.pkcs11_module,
        TOKEN_LABEL,
        &SecretString::from(token::random_id(12)),
        &SecretString::from(token_pin.clone()),
    )?;
    let qscd: Arc<dyn Qscd> = Arc::new(Pkcs11Qscd::open(&Pkcs11Config {
        module: args.pkcs11_module.clone(),
        token_label: TOKEN_LABEL.into(),
        pin: SecretString::from(token_pin.clone()),
        max_sessions: 8,
    })?);
    let store = Store::open(db_url, 2)?;
    let database = if crate::store::sqlite_path(db_url).is_ok() {
        "sqlite"
    } else {
        "postgres"
    };
    let signer = Signer {
        password: format!("bench-{}", token::random_id(8)),
        pin: "24681357".into(),
        totp: otp::generate_secret(),
    };
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "quill bench sign: {build} build, {database}, keys {}, concurrency {levels:?}, \
         {} ms per scenario, at most {} signatures per scenario",
        args.keys.join(","),
        args.duration_ms,
        args.max_signatures
    );

    // 2. One credential per key (it prepares every SAD), 3. the raw ceiling on its key.
    let mut creds: BTreeMap<String, Creds> = BTreeMap::new();
    let mut raw: BTreeMap<(String, usize), Run> = BTreeMap::new();
    // The standalone raw figure sizes the prepared inputs and fills the `raw` rows; each ratio
    // is taken against the raw slices interleaved with its own scenario, so a quarter will do.
    let raw_limits = Limits {
        duration: duration / 4,
        max_calls: args.max_signatures,
        warm_up: args.warm_up,
    };
    let enrol = |hash, key: &str, n, otp_kind, c: &mut Creds| {
        enrol_credentials(&store, &qscd, hash, &signer, key, n, otp_kind, c)
    };
    for kind in &kinds {
        let mut c = Creds::default();
        let t = Instant::now();
        enrol(PREP_HASH, &kind.name, 1, Otp::Online, &mut c)?;
        eprintln!(
            "enrolled one {} credential in {:.0} ms",
            kind.name,
            t.elapsed().as_secs_f64() * 1000.0
        );
        let key_id = c
            .key_ids
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no key"))?;
        for &n in &levels {
            let r = measure_raw(&qscd, kind, &key_id, n, raw_limits)?;
            eprintln!("raw {} ×{n}: {:.0} signatures/s", kind.name, r.rate());
            raw.insert((kind.name.clone(), n), r);
        }
        creds.insert(kind.name.clone(), c);
    }
    let raw_rate = |key: &str, n: usize| {
        raw.get(&(key.to_string(), n))
            .map(Run::rate)
            .unwrap_or_default()
    };
    // 4. argon2 alone.
    let argon2_ms = argon2_verify_ms(args, qscd.as_ref())?;

    // Inputs for each scenario: what the raw rate could sign in its time, and some more.
    let signatures_for = |key: &str, n: usize, per_call: usize| {
        let timed = (raw_rate(key, n) * duration.as_secs_f64() * MARGIN).ceil() as usize;
        (timed + n * args.warm_up * per_call)
            .max(n * per_call * 2)
            .min(args.max_signatures)
    };
    let mut flow_creds: BTreeMap<String, Creds> = BTreeMap::new();
    // Enough TOTP credentials for every flow (each gives at least two TOTP steps at once).
    for kind in &kinds {
        let flows = if FLOW_KEYS.contains(&kind.name.as_str()) {
            levels
                .iter()
                .map(|n| args.flows + n * args.warm_up.min(1))
                .sum()
        } else {
            0
        };
        let t = Instant::now();
        let mut f = Creds::default();
        let flow_creds_n = if flows > 0 {
            flows.div_ceil(2) + args.threads
        } else {
            0
        };
        if flow_creds_n == 0 {
            continue;
        }
        enrol(
            args.hash.params(),
            &kind.name,
            flow_creds_n,
            Otp::Totp,
            &mut f,
        )?;
        flow_creds.insert(kind.name.clone(), f);
        eprintln!(
            "enrolled {flow_creds_n} {} TOTP credentials for the flows in {:.1} s",
            kind.name,
            t.elapsed().as_secs_f64()
        );
    }

    // 5. The real server.
    let server = start_server(dir, args, db_url, &token_pin)?;
    eprintln!(
        "quill serve ready on {} after {:.0} ms",
        server.addr,
        server.cold_start.as_secs_f64() * 1000.0
    );
    let mut http = Http::connect(server.addr)?;
    let login = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{}", signer.password))
    );
    let answer = http.post_json(server.addr, "/csc/v2/auth/login", Some(&login), &json!({}))?;
    let client = Client {
        addr: server.addr,
        bearer: format!(
            "Bearer {}",
            answer
                .get("access_token")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow::anyhow!("auth/login without access_token"))?
        ),
        signer: &signer,
        outbox: dir.join(OUTBOX),
    };

    // The floor any HTTP call pays here: `GET /healthz` (no database, no token) at each
    // concurrency, on the same connections and client. A signHash can be no faster than raw
    // sign + this, which bounds the ratio a 1-hash call can reach on this machine.
    let mut floor = Vec::new();
    let healthz = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).into_bytes();
    for &n in &levels {
        let run = load::run(
            n,
            Limits {
                duration: (duration / 4).min(Duration::from_secs(1)),
                max_calls: 1_000_000,
                warm_up: args.warm_up,
            },
            |_| Http::connect(server.addr),
            |h, _| {
                let (status, _) = h.send(&healthz)?;
                anyhow::ensure!(status == 200, "GET /healthz answered {status}");
                Ok(1)
            },
        )?;
        eprintln!(
            "HTTP floor ×{n}: GET /healthz p50 {:.3} ms, p99 {:.3} ms",
            run.quantile_ms(0.5),
            run.quantile_ms(0.99)
        );
        floor.push(json!({
            "concurrency": n,
            "rate_per_s": run.rate(),
            "p50_ms": run.quantile_ms(0.5),
            "p99_ms": run.quantile_ms(0.99),
        }));
    }

    let mut rows = Vec::new();
    for kind in &kinds {
        for &n in &levels {
            let r = raw
                .get(&(kind.name.clone(), n))
                .ok_or_else(|| anyhow::anyhow!("no raw figure"))?;
            rows.push(row("raw", &kind.name, n, r, r));
        }
    }
    let mut prepare_seconds = 0.0;
    let mut breakdowns = Vec::new();
    for kind in &kinds {
        let c = creds
            .get(&kind.name)
            .ok_or_else(|| anyhow::anyhow!("no credentials"))?;
        let (cred, key_id) = c
            .ids
            .first()
            .zip(c.key_ids.first())
            .ok_or_else(|| anyhow::anyhow!("no credential"))?;
        for (scenario, per_call) in [("sign_hash_1", 1), ("sign_hash_100", 100)] {
            for &n in &levels {
                let t = Instant::now();
                let signatures = signatures_for(&kind.name, n, per_call);
                let calls = prepare_calls(&client, kind, cred, signatures, per_call)?;
                prepare_seconds += t.elapsed().as_secs_f64();
                // Server and raw token in alternating slices of the same time budget, so that
                // the ratio compares like with like on a machine whose speed drifts (shared
                // VM): each row's raw rate is the one measured between its own slices. The
                // order is raw-server, server-raw, raw-server, … (ABBA): a steady drift over
                // the scenario then weighs on both sides alike instead of favouring the one
                // that always goes first.
                let (mut served, mut raw_paired) = (Run::default(), Run::default());
                // The next prepared calls (from `served.calls` on) within `limits`; false when
                // none are left.
                let serve = |served: &mut Run, limits: Limits| -> anyhow::Result<bool> {
                    let offset = served.calls;
                    let left = calls.len().saturating_sub(offset);
                    if left == 0 {
                        return Ok(false);
                    }
                    served.absorb(load::run(
                        n,
                        Limits {
                            max_calls: left.min(limits.max_calls),
                            ..limits
                        },
                        |_| Http::connect(server.addr),
                        |h, i| {
                            let request = calls
                                .get(offset + i)
                                .ok_or_else(|| anyhow::anyhow!("no prepared call {i}"))?;
                            let (status, body) = h.send(request)?;
                            expect_signed(status, &body, per_call)
                        },
                    )?);
                    Ok(true)
                };
                // The server's warm-up calls come before its token counters are read, so that
                // its per-call token time and the client's mean cover the same calls.
                serve(
                    &mut served,
                    Limits {
                        duration: Duration::ZERO,
                        max_calls: n * args.warm_up,
                        warm_up: args.warm_up,
                    },
                )?;
                let token_before = token_time(server.addr)?;
                for slice in 0..SLICES {
                    let slice_limits = |max_calls, warm_up| Limits {
                        duration: duration / SLICES,
                        max_calls,
                        warm_up,
                    };
                    let raw_slice = |raw_paired: &mut Run| -> anyhow::Result<()> {
                        let warm_up = if slice == 0 { args.warm_up } else { 0 };
                        raw_paired.absorb(measure_raw(
                            &qscd,
                            kind,
                            key_id,
                            n,
                            slice_limits(args.max_signatures, warm_up),
                        )?);
                        Ok(())
                    };
                    let raw_first = slice % 2 == 0;
                    if raw_first {
                        raw_slice(&mut raw_paired)?;
                    }
                    if !serve(&mut served, slice_limits(usize::MAX, 0))? {
                        break;
                    }
                    if !raw_first {
                        raw_slice(&mut raw_paired)?;
                    }
                }
                let token_after = token_time(server.addr)?;
                let row = row(scenario, &kind.name, n, &served, &raw_paired);
                let parts = breakdown(&row, &served, per_call, (token_before, token_after));
                eprintln!(
                    "{scenario} {} ×{n}: {:.0} signatures/s ({:.0}% of raw {:.0}/s), p99 {:.2} ms; \
                     mean call {:.3} ms, of which the token {:.3} ms in the server (raw {:.3} ms)",
                    kind.name,
                    row.rate_per_s,
                    row.ratio * 100.0,
                    row.raw_rate_per_s,
                    row.p99_ms,
                    parts.mean_call_ms,
                    parts.server_token_ms,
                    parts.raw_token_ms,
                );
                rows.push(row);
                breakdowns.push(parts);
            }
        }
    }
    let rss_sign_hash = server.peak_rss_mib()?;

    // The full flow: authorize (argon2 PIN + TOTP) → signHash, one hash.
    let authorize_times = Mutex::new(Vec::new());
    for kind in &kinds {
        let Some(f) = flow_creds.get_mut(&kind.name) else {
            continue;
        };
        if f.ids.is_empty() {
            continue;
        }
        let f = Mutex::new(f);
        for &n in &levels {
            let limits = Limits {
                duration,
                max_calls: args.flows + n * args.warm_up.min(1),
                warm_up: args.warm_up.min(1),
            };
            let run = load::run(
                n,
                limits,
                |w| Ok((w, Http::connect(server.addr)?)),
                |(w, h), _| {
                    let (cred, code) = f
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .next_code(&signer.totp, *w)?;
                    let hashes = [crypto::b64::encode(&random_digest(kind.hash))];
                    let t = Instant::now();
                    let sad = client.authorize(h, kind, &cred, &code, &hashes)?;
                    if let Ok(mut v) = authorize_times.lock() {
                        v.push(t.elapsed());
                    }
                    let (status, body) =
                        h.send(&client.sign_hash_request(kind, &cred, &sad, &hashes))?;
                    expect_signed(status, &body, 1)
                },
            )?;
            let standalone = raw
                .get(&(kind.name.clone(), n))
                .ok_or_else(|| anyhow::anyhow!("no raw figure"))?;
            let row = row("authorize_sign", &kind.name, n, &run, standalone);
            eprintln!(
                "authorize_sign {} ×{n}: {:.1} flows/s, p50 {:.1} ms",
                kind.name, row.rate_per_s, row.p50_ms
            );
            rows.push(row);
        }
    }
    let rss = server.peak_rss_mib()?;
    let cold_start_ms = server.cold_start.as_secs_f64() * 1000.0;
    drop(server);

    let mut authorize_times = authorize_times
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    authorize_times.sort_unstable();
    let authorize_p50_ms = authorize_times
        .get(authorize_times.len() / 2)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default();

    let report = json!({
        "database": database,
        "results": rows,
        "server_peak_rss_mib": rss,
        "cold_start_ms": cold_start_ms,
        "http_floor": floor,
        "server_breakdown": breakdowns,
    });
    print_table(&rows);
    eprintln!(
        "argon2id PIN verification alone (m={} KiB, t={}): {argon2_ms:.1} ms; \
         credentials/authorize p50 (includes it): {authorize_p50_ms:.1} ms; \
         SADs authorized in {prepare_seconds:.1} s",
        args.hash.argon2_memory_kib, args.hash.argon2_iterations
    );
    eprintln!(
        "server peak RSS {rss:.1} MiB ({rss_sign_hash:.1} MiB before the parallel authorize \
         flows); cold start {cold_start_ms:.0} ms"
    );
    print_targets(&rows, &floor, &breakdowns, rss, cold_start_ms);
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
