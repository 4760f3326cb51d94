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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use clap::Args;
use rand::RngCore;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::child::ServeChild;
use super::load::{self, Http, Limits, Run};
use crate::auth::password::{self, HashParams};
use crate::auth::{otp, token};
use crate::clock::SystemClock;
use crate::config::HashArgs;
use crate::crypto::{self, HashAlg};
use crate::qscd::pkcs11::{Pkcs11Config, Pkcs11Qscd};
use crate::qscd::{Qscd, SignMechanism};
use crate::secret::Secret;
use crate::service::enrol::{self, EnrolRequest};
use crate::store::{Store, repo};

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

#[derive(Args, Clone, Debug)]
pub struct SignArgs {
    /// Key types, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rsa-2048,rsa-3072,ec-p256,ec-p384"
    )]
    pub keys: Vec<String>,
    /// Highest concurrency (threads / connections); every scenario runs with 1 and with N.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Time limit of each scenario, milliseconds.
    #[arg(long, default_value_t = 1200)]
    pub duration_ms: u64,
    /// Count limit of each scenario: most signatures prepared for it.
    #[arg(long, default_value_t = 100_000)]
    pub max_signatures: usize,
    /// Full authorize → signHash flows per key and concurrency (count limit).
    #[arg(long, default_value_t = 10)]
    pub flows: usize,
    /// Untimed calls per worker before each scenario's clock starts.
    #[arg(long, default_value_t = 3)]
    pub warm_up: usize,
    /// Tiny run for CI (RSA-2048 and P-256, 150 ms per scenario, few signatures): checks that
    /// everything works, not how fast.
    #[arg(long)]
    pub smoke: bool,
    /// PKCS#11 module (SoftHSM2: the benchmark creates its own token).
    #[arg(
        long,
        env = "QUILL_PKCS11_MODULE",
        default_value = "/usr/lib/softhsm/libsofthsm2.so"
    )]
    pub pkcs11_module: PathBuf,
    #[command(flatten)]
    pub hash: HashArgs,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Run the server on PostgreSQL instead of SQLite: the URL of a server whose role may
    /// create databases (`postgres://user@127.0.0.1:5432/postgres`). The benchmark creates a
    /// database of its own there and drops it at the end.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
}

impl SignArgs {
    /// The settings after `--smoke`.
    fn effective(mut self) -> SignArgs {
        if self.smoke {
            self.keys = vec!["rsa-2048".into(), "ec-p256".into()];
            self.duration_ms = self.duration_ms.min(150);
            self.max_signatures = self.max_signatures.min(1000);
            self.flows = self.flows.min(2);
            self.warm_up = self.warm_up.min(1);
        }
        self
    }

    fn levels(&self) -> Vec<usize> {
        let mut levels = vec![1, self.threads.max(1)];
        levels.dedup();
        levels
    }
}

/// How one key type signs in this benchmark.
#[derive(Clone, Debug)]
struct KeyKind {
    name: String,
    hash: HashAlg,
    sign_algo: &'static str,
    mechanism: SignMechanism,
}

fn key_kind(name: &str) -> anyhow::Result<KeyKind> {
    let (hash, sign_algo, mechanism) = match name {
        "rsa-2048" | "rsa-3072" => (
            HashAlg::Sha256,
            "1.2.840.113549.1.1.11",
            SignMechanism::RsaPkcs1,
        ),
        "ec-p256" => (HashAlg::Sha256, "1.2.840.10045.4.3.2", SignMechanism::Ecdsa),
        "ec-p384" => (HashAlg::Sha384, "1.2.840.10045.4.3.3", SignMechanism::Ecdsa),
        other => anyhow::bail!("unknown key {other:?}: rsa-2048, rsa-3072, ec-p256 or ec-p384"),
    };
    Ok(KeyKind {
        name: name.to_string(),
        hash,
        sign_algo,
        mechanism,
    })
}

/// What the token signs for one digest (as `service::signing` builds it).
fn token_input(kind: &KeyKind, digest: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(match kind.mechanism {
        SignMechanism::RsaPkcs1 => crypto::digest_info::digest_info(kind.hash, digest)?,
        _ => digest.to_vec(),
    })
}

fn random_digest(hash: HashAlg) -> Vec<u8> {
    let mut d = vec![0u8; hash.digest_len()];
    rand::rng().fill_bytes(&mut d);
    d
}

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

/// The credentials of one key type and the TOTP steps each has used. A code is accepted once
/// per credential and step, within one step either side of now, and only if its step is later
/// than every step accepted before; so each credential yields up to three authorizations at
/// once (and one more every 30 s), and is used by one worker only, in order.
#[derive(Default)]
struct Creds {
    ids: Vec<String>,
    key_ids: Vec<Vec<u8>>,
    last_step: Vec<Option<i64>>,
    owner: Vec<Option<usize>>,
}

impl Creds {
    fn next_code(&mut self, secret: &[u8], worker: usize) -> anyhow::Result<(String, String)> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let step = now / 30;
        // The previous step only while it cannot expire before the request arrives.
        let lowest = if now % 30 < 25 { step - 1 } else { step };
        let slots = self
            .ids
            .iter()
            .zip(self.last_step.iter_mut())
            .zip(self.owner.iter_mut());
        for ((id, last), owner) in slots {
            if owner.is_some_and(|o| o != worker) {
                continue;
            }
            let candidate = last.map_or(lowest, |l| (l + 1).max(lowest));
            if candidate <= step + 1 {
                *last = Some(candidate);
                *owner = Some(worker);
                let code = otp::generate(secret, candidate * 30).map_err(anyhow::Error::msg)?;
                return Ok((id.clone(), code));
            }
        }
        anyhow::bail!(
            "no unused TOTP step left on the {} credentials",
            self.ids.len()
        )
    }
}

/// The signer's secrets (one user; every credential shares PIN and TOTP secret).
struct Signer {
    password: String,
    pin: String,
    totp: zeroize::Zeroizing<Vec<u8>>,
}

/// How the enrolled credentials take their one-time password.
#[derive(Clone, Copy)]
enum Otp {
    /// The signer's TOTP secret.
    Totp,
    /// A code per `credentials/getChallenge`, delivered to the server's outbox.
    Online,
}

/// Enrol `n` credentials of `key`, one after the other: SoftHSM2 fails a key generation that
/// meets other work on the token in another thread now and then (CKR_GENERAL_ERROR).
#[allow(clippy::too_many_arguments)]
fn enrol_credentials(
    store: &Store,
    qscd: &Arc<dyn Qscd>,
    hash: HashParams,
    signer: &Signer,
    key: &str,
    n: usize,
    otp_kind: Otp,
    creds: &mut Creds,
) -> anyhow::Result<()> {
    for _ in 0..n {
        let (totp_secret, online_otp) = match otp_kind {
            Otp::Totp => (
                Some(Secret::new(
                    otp::to_base32(&signer.totp).expose().to_string(),
                )),
                None,
            ),
            Otp::Online => (None, Some(PREP_OTP.to_string())),
        };
        let outcome = enrol::enrol(
            store,
            qscd,
            &SystemClock,
            hash,
            EnrolRequest {
                user: USER.into(),
                password: Secret::new(signer.password.clone()),
                pin: Secret::new(signer.pin.clone()),
                key: key.into(),
                totp_secret,
                online_otp,
                common_name: Some("Bench Signer".into()),
                multisign: i32::try_from(PER_SAD)?,
                cert_days: enrol::CERT_DAYS,
                description: None,
            },
        )?;
        let uid = store
            .with(|c| repo::users::by_name(c, USER))?
            .map(|u| u.id)
            .ok_or_else(|| anyhow::anyhow!("no user after enrolment"))?;
        let row = store
            .with(|c| repo::credentials::owned(c, &uid, &outcome.credential_id))?
            .ok_or_else(|| anyhow::anyhow!("no credential after enrolment"))?;
        creds.ids.push(outcome.credential_id);
        creds.key_ids.push(row.key_id);
        creds.last_step.push(None);
        creds.owner.push(None);
    }
    Ok(())
}

fn start_server(
    dir: &Path,
    args: &SignArgs,
    db_url: &str,
    token_pin: &str,
) -> anyhow::Result<ServeChild> {
    let empty_config = dir.join("quill.toml");
    std::fs::write(&empty_config, "")?;
    let config = empty_config.to_string_lossy().into_owned();
    // SQLite and SoftHSM2 are in-process: the configuration for that setup (and refused with
    // PostgreSQL).
    let on_worker = crate::store::sqlite_path(db_url).is_ok();
    ServeChild::start(&["--config", &config], |cmd| {
        if on_worker {
            cmd.arg("--sign-on-worker");
        }
        cmd.args(["--database-url", db_url])
            .arg("--pkcs11-module")
            .arg(&args.pkcs11_module)
            .args(["--token-label", TOKEN_LABEL, "--pkcs11-sessions", "8"])
            .args(["--sad-ttl", "3600", "--max-auth-failures", "5"])
            .arg("--argon2-memory-kib")
            .arg(args.hash.argon2_memory_kib.to_string())
            .arg("--argon2-iterations")
            .arg(args.hash.argon2_iterations.to_string())
            .arg("--argon2-parallel")
            .arg(args.hash.argon2_parallel.to_string())
            .arg("--otp-sender")
            .arg(format!("outbox:{}", dir.join(OUTBOX).display()))
            .env("QUILL_TOKEN_PIN", token_pin)
            .env("QUILL_LOG_FORMAT", "text")
            .env_remove("QUILL_TLS_CERT")
            .env_remove("QUILL_TLS_KEY")
    })
}

/// One row of the report.
#[derive(Clone, Debug, serde::Serialize)]
struct Row {
    scenario: &'static str,
    key: String,
    concurrency: usize,
    rate_per_s: f64,
    raw_rate_per_s: f64,
    ratio: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// p99 of the raw token calls this row is compared with (not in the JSON report).
    #[serde(skip)]
    raw_p99_ms: f64,
}

fn row(scenario: &'static str, key: &str, c: usize, run: &Run, raw: &Run) -> Row {
    let rate = run.rate();
    let raw_rate = raw.rate();
    Row {
        scenario,
        key: key.to_string(),
        concurrency: c,
        rate_per_s: rate,
        raw_rate_per_s: raw_rate,
        ratio: if raw_rate > 0.0 { rate / raw_rate } else { 0.0 },
        p50_ms: run.quantile_ms(0.50),
        p99_ms: run.quantile_ms(0.99),
        raw_p99_ms: raw.quantile_ms(0.99),
    }
}

/// The server's own count and total time of token sign calls (`quill_hsm_sign_seconds`), read
/// from its `/metrics` on a connection of its own.
fn token_time(addr: SocketAddr) -> anyhow::Result<(u64, f64)> {
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    let (status, body) = Http::connect(addr)?.send(&request)?;
    anyhow::ensure!(status == 200, "GET /metrics answered {status}");
    let text = String::from_utf8(body)?;
    let value = |name: &str| -> anyhow::Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in /metrics"))
    };
    let count = value("quill_hsm_sign_seconds_count")?;
    Ok((count as u64, value("quill_hsm_sign_seconds_sum")?))
}

/// Where a signHash scenario's time went, per call: the mean call as the client saw it, the
/// token's part inside the server (`quill_hsm_sign_seconds`), and the raw token time for the
/// same signatures at the same concurrency. The rest is Quill's own work (HTTP, JSON,
/// database), the client, and waiting for a core.
#[derive(Clone, Debug, serde::Serialize)]
struct Breakdown {
    scenario: &'static str,
    key: String,
    concurrency: usize,
    /// signHash calls the server counted (the timed ones: warm-up calls come before).
    calls: u64,
    mean_call_ms: f64,
    server_token_ms: f64,
    raw_token_ms: f64,
}

fn breakdown(row: &Row, run: &Run, per_call: usize, token: ((u64, f64), (u64, f64))) -> Breakdown {
    let ((count0, sum0), (count1, sum1)) = token;
    let calls = count1.saturating_sub(count0);
    Breakdown {
        scenario: row.scenario,
        key: row.key.clone(),
        concurrency: row.concurrency,
        calls,
        mean_call_ms: run.mean_ms(),
        server_token_ms: (sum1 - sum0) * 1000.0 / calls.max(1) as f64,
        raw_token_ms: per_call as f64 * row.concurrency as f64 * 1000.0
            / row.raw_rate_per_s.max(1e-9),
    }
}

/// The HTTP side of the benchmark: the server's address, a bearer token, the signer.
struct Client<'a> {
    addr: SocketAddr,
    bearer: String,
    signer: &'a Signer,
    /// The server's OTP outbox file.
    outbox: PathBuf,
}

impl Client<'_> {
    /// A fresh online OTP for `cred`: `credentials/getChallenge`, then the newest code the
    /// server wrote to its outbox for that credential (a new challenge replaces the last).
    fn challenge(&self, http: &mut Http, cred: &str) -> anyhow::Result<String> {
        let request = load::post_request(
            self.addr,
            "/csc/v2/credentials/getChallenge",
            Some(&self.bearer),
            &json!({ "credentialID": cred, "authObjectID": "OTP" }).to_string(),
        );
        let (status, body) = http.send(&request)?;
        anyhow::ensure!(
            status == 204,
            "credentials/getChallenge: {status} {}",
            String::from_utf8_lossy(&body)
        );
        let outbox = std::fs::read_to_string(&self.outbox)
            .with_context(|| format!("cannot read {}", self.outbox.display()))?;
        outbox
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|m| m.get("credential_id").and_then(Value::as_str) == Some(cred))
            .and_then(|m| m.get("code").and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| anyhow::anyhow!("no OTP for {cred} in the outbox"))
    }

    fn authorize(
        &self,
        http: &mut Http,
        kind: &KeyKind,
        cred: &str,
        code: &str,
        hashes: &[String],
    ) -> anyhow::Result<String> {
        let answer = http.post_json(
            self.addr,
            "/csc/v2/credentials/authorize",
            Some(&self.bearer),
            &json!({
                "credentialID": cred,
                "numSignatures": hashes.len(),
                "hashes": hashes,
                "hashAlgorithmOID": kind.hash.oid(),
                "authData": [
                    {"id": "PIN", "value": self.signer.pin},
                    {"id": "OTP", "value": code},
                ],
            }),
        )?;
        Ok(answer
            .get("SAD")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow::anyhow!("credentials/authorize without SAD"))?
            .to_string())
    }

    fn sign_hash_request(
        &self,
        kind: &KeyKind,
        cred: &str,
        sad: &str,
        hashes: &[String],
    ) -> Vec<u8> {
        let body = json!({
            "credentialID": cred,
            "SAD": sad,
            "hashes": hashes,
            "hashAlgorithmOID": kind.hash.oid(),
            "signAlgo": kind.sign_algo,
        });
        load::post_request(
            self.addr,
            "/csc/v2/signatures/signHash",
            Some(&self.bearer),
            &body.to_string(),
        )
    }
}

/// A signHash answer, counting signatures without keeping them.
#[derive(serde::Deserialize)]
struct Signed {
    signatures: Vec<serde::de::IgnoredAny>,
}

fn expect_signed(status: u16, body: &[u8], n: usize) -> anyhow::Result<u64> {
    anyhow::ensure!(
        status == 200,
        "signHash: {status} {}",
        String::from_utf8_lossy(body)
    );
    let signed: Signed = serde_json::from_slice(body)?;
    anyhow::ensure!(
        signed.signatures.len() == n,
        "signHash returned {} signatures for {n} hashes",
        signed.signatures.len()
    );
    Ok(u64::try_from(n)?)
}

/// Authorize enough SADs for `signatures` digests and build the signHash calls that spend them,
/// `per_call` digests each.
fn prepare_calls(
    client: &Client<'_>,
    kind: &KeyKind,
    cred: &str,
    signatures: usize,
    per_call: usize,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let sads = signatures.div_ceil(PER_SAD).max(1);
    // A fresh connection: the server closes idle keep-alive connections after a few seconds.
    let mut http = Http::connect(client.addr)?;
    let mut calls = Vec::with_capacity(sads * PER_SAD / per_call);
    for _ in 0..sads {
        let hashes: Vec<String> = (0..PER_SAD)
            .map(|_| crypto::b64::encode(&random_digest(kind.hash)))
            .collect();
        let code = client.challenge(&mut http, cred)?;
        let sad = client.authorize(&mut http, kind, cred, &code, &hashes)?;
        for chunk in hashes.chunks(per_call) {
            calls.push(client.sign_hash_request(kind, cred, &sad, chunk));
        }
    }
    Ok(calls)
}

/// Raw sign rate of one key through `Pkcs11Qscd`, one digest per call.
fn measure_raw(
    qscd: &Arc<dyn Qscd>,
    kind: &KeyKind,
    key_id: &[u8],
    threads: usize,
    limits: Limits,
) -> anyhow::Result<Run> {
    let inputs = (0..64)
        .map(|_| token_input(kind, &random_digest(kind.hash)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    load::run(
        threads,
        limits,
        |_| Ok(()),
        |_, i| {
            let input = inputs
                .get(i % inputs.len())
                .ok_or_else(|| anyhow::anyhow!("no input"))?;
            let out = qscd.sign(key_id, kind.mechanism, &[input.as_slice()])?;
            anyhow::ensure!(
                out.len() == 1,
                "the token returned {} signatures",
                out.len()
            );
            Ok(1)
        },
    )
}

/// Median time of a few argon2id PIN verifications with the configured cost and the token's
/// pepper (fetched once, as the server does at start-up), ms.
fn argon2_verify_ms(args: &SignArgs, qscd: &dyn Qscd) -> anyhow::Result<f64> {
    let pin = Secret::new("12345678");
    let pepper = password::Pepper::from_token(qscd)?;
    let phc = password::hash(&pin, args.hash.params(), &pepper).map_err(anyhow::Error::msg)?;
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let ok = password::verify(&pin, &phc, &pepper);
            (ok, t.elapsed().as_secs_f64() * 1000.0)
        })
        .map(|(ok, ms)| {
            if ok {
                Ok(ms)
            } else {
                Err(anyhow::anyhow!("argon2 verify failed"))
            }
        })
        .collect::<anyhow::Result<_>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times.get(times.len() / 2).copied().unwrap_or_default())
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

fn print_table(rows: &[Row]) {
    eprintln!(
        "\n{:<15} {:<9} {:>4} {:>10} {:>10} {:>7} {:>8} {:>8} {:>9}",
        "scenario", "key", "conc", "rate/s", "raw/s", "ratio", "p50 ms", "p99 ms", "+p99 ms"
    );
    for r in rows {
        let added = if r.scenario == "sign_hash_1" {
            format!("{:.2}", r.p99_ms - r.raw_p99_ms)
        } else {
            "-".into()
        };
        eprintln!(
            "{:<15} {:<9} {:>4} {:>10.1} {:>10.1} {:>6.1}% {:>8.2} {:>8.2} {:>9}",
            r.scenario,
            r.key,
            r.concurrency,
            r.rate_per_s,
            r.raw_rate_per_s,
            r.ratio * 100.0,
            r.p50_ms,
            r.p99_ms,
            added
        );
    }
    eprintln!("rates: signatures/s (authorize_sign: flows/s); latencies per call (per flow)");
}

/// The targets, each judged on this run's figures.
fn print_targets(
    rows: &[Row],
    floor: &[Value],
    breakdowns: &[Breakdown],
    rss: f64,
    cold_start_ms: f64,
) {
    let mut verdicts = Vec::new();
    // The best ratio a 1-hash call could reach with the HTTP floor of this run, and with that
    // floor and the token as slow as it was inside the server (no other work at all).
    let ceiling = |r: &Row| {
        let floor_ms = floor
            .iter()
            .find(|f| f["concurrency"].as_u64() == Some(r.concurrency as u64))
            .and_then(|f| f["p50_ms"].as_f64())
            .unwrap_or(0.0);
        let sign_ms = r.concurrency as f64 * 1000.0 / r.raw_rate_per_s.max(1e-9);
        let token_ms = breakdowns
            .iter()
            .find(|b| b.scenario == r.scenario && b.key == r.key && b.concurrency == r.concurrency)
            .map_or(sign_ms, |b| b.server_token_ms);
        format!(
            "{:.1}% (HTTP floor alone allows {:.0}%; with the token's time in the server, {:.0}%)",
            r.ratio * 100.0,
            100.0 * sign_ms / (sign_ms + floor_ms),
            100.0 * sign_ms / (token_ms + floor_ms)
        )
    };
    for r in rows {
        let label = format!("{} {} ×{}", r.scenario, r.key, r.concurrency);
        match (r.scenario, r.key.as_str()) {
            ("sign_hash_1", "rsa-2048") => {
                verdicts.push((format!("{label}: ratio ≥ 90%"), r.ratio >= 0.9, ceiling(r)))
            }
            ("sign_hash_1", "ec-p256") => {
                verdicts.push((format!("{label}: ratio ≥ 60%"), r.ratio >= 0.6, ceiling(r)))
            }
            ("sign_hash_100", _) => verdicts.push((
                format!("{label}: ratio ≥ 90%"),
                r.ratio >= 0.9,
                format!("{:.1}%", r.ratio * 100.0),
            )),
            _ => {}
        }
        if r.scenario == "sign_hash_1" {
            let added = r.p99_ms - r.raw_p99_ms;
            verdicts.push((
                format!("{label}: p99 added latency ≤ 2 ms"),
                added <= 2.0,
                format!("{added:.2} ms"),
            ));
        }
    }
    verdicts.push((
        "server peak RSS ≤ 64 MiB".into(),
        rss <= 64.0,
        format!("{rss:.1} MiB"),
    ));
    verdicts.push((
        "cold start ≤ 1 s".into(),
        cold_start_ms <= 1000.0,
        format!("{cold_start_ms:.0} ms"),
    ));
    let met = verdicts.iter().filter(|v| v.1).count();
    eprintln!("\ntargets ({met} of {} met):", verdicts.len());
    for (what, ok, value) in &verdicts {
        eprintln!(
            "  {} {what}: {value}",
            if *ok { "met   " } else { "MISSED" }
        );
    }
}
