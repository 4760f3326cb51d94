//! `quill bench scale`: how `credentials/list` and `credentials/info` behave with many
//! credentials (issue 6, "Scale").
//!
//! 1. Seed the database unless it already holds this seed (`service::seed`: USERS ×
//!    CREDENTIALS_PER_USER rows, one real key, the rest marked copies that cannot sign); the
//!    seed time and rate are part of the report.
//! 2. Start the real server as a child process, `quill serve --listen 127.0.0.1:0`, on that
//!    database and token; log in as the first seeded user over HTTP.
//! 3. Walk all of that user's credentials with `maxResults: 1000` (every id exactly once, or
//!    the benchmark fails), keeping a page token from the middle.
//! 4. Time each scenario sequentially, one request at a time: `--requests` requests (after a
//!    short warm-up) or `--max-seconds`, whichever ends first; p50 / p99 / mean / max.
//!
//! The report also carries the database's plan for the list and info queries and the size of
//! the data. Every request goes to the loopback address the child printed, nowhere else.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use clap::Args;
use serde_json::{Value, json};

use super::child::ServeChild;
use super::load::Http;
use crate::cli::admin::{self, SeedShape};
use crate::config::{HashArgs, StoreArgs, TokenArgs};
use crate::service::{paging, seed};
use crate::store::repo::credentials::{self as creds, Cursor};
use crate::store::{Store, repo};

/// Requests before timing starts, per scenario.
const WARM_UP: usize = 5;
/// Most pages the walk reads.
const MAX_WALK_PAGES: usize = 20_000;

#[derive(Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub token: TokenArgs,
    #[command(flatten)]
    pub hash: HashArgs,
    #[command(flatten)]
    pub shape: SeedShape,
    /// Timed requests per scenario.
    #[arg(long, default_value_t = 500)]
    pub requests: usize,
    /// Time limit per scenario (and for the walk), seconds.
    #[arg(long, default_value_t = 60)]
    pub max_seconds: u64,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Latency figures of one scenario.
#[derive(Debug, serde::Serialize)]
struct Figures {
    scenario: String,
    requests: usize,
    /// Credential IDs (list) or credentials (info) per answer, from the last answer.
    items: usize,
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
    max_ms: f64,
    per_second: f64,
}

fn start_server(args: &ScaleArgs) -> anyhow::Result<ServeChild> {
    ServeChild::start(&[], |cmd| {
        cmd.env("QUILL_DATABASE_URL", &args.store.database_url)
            .env("QUILL_PKCS11_MODULE", &args.token.pkcs11_module)
            .env("QUILL_TOKEN_LABEL", args.token.token_label.join(","))
            .env(
                "QUILL_PKCS11_SESSIONS",
                args.token.pkcs11_sessions.to_string(),
            )
            .env(
                "QUILL_ARGON2_MEMORY_KIB",
                args.hash.argon2_memory_kib.to_string(),
            )
            .env(
                "QUILL_ARGON2_ITERATIONS",
                args.hash.argon2_iterations.to_string(),
            )
            .env(
                "QUILL_ARGON2_PARALLEL",
                args.hash.argon2_parallel.to_string(),
            );
        // One PIN for every token (the environment holds one); `scale` refuses several.
        if let Some(pin) = args.token.token_pin.first() {
            cmd.env("QUILL_TOKEN_PIN", pin);
        }
        cmd
    })
}

/// A CSC client for the child server: one keep-alive connection (`sign`'s client).
struct Client {
    addr: SocketAddr,
    http: RefCell<(Http, Instant)>,
    bearer: String,
}

/// The server closes a keep-alive connection idle for a few seconds: a connection idle this
/// long is replaced before the next request rather than found closed after it was sent.
const IDLE_RECONNECT: Duration = Duration::from_secs(2);

impl Client {
    /// POST `body`; the time to the complete answer and the answer, which must be 2xx.
    fn post(&self, method: &str, body: &Value) -> anyhow::Result<(Duration, Value)> {
        let mut http = self.http.borrow_mut();
        if http.1.elapsed() > IDLE_RECONNECT {
            http.0 = Http::connect(self.addr)?;
        }
        let started = Instant::now();
        let answer = http.0.post_json(
            self.addr,
            &format!("/csc/v2/{method}"),
            Some(&self.bearer),
            body,
        );
        let took = started.elapsed();
        http.1 = Instant::now();
        Ok((took, answer.with_context(|| format!("{method} {body}"))?))
    }
}

fn login(addr: SocketAddr, user: &str, password: &str) -> anyhow::Result<Client> {
    let mut http = Http::connect(addr)?;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let body = http.post_json(addr, "/csc/v2/auth/login", Some(&basic), &json!({}))?;
    let token = body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("auth/login without access_token"))?;
    Ok(Client {
        addr,
        http: RefCell::new((http, Instant::now())),
        bearer: format!("Bearer {token}"),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The q-quantile (0..=1) of sorted samples, nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn items(answer: &Value) -> usize {
    answer
        .get("credentialIDs")
        .and_then(Value::as_array)
        .map_or(1, Vec::len)
}

/// Time `body(i)` against `method` per the limits.
fn measure(
    client: &Client,
    scenario: &str,
    method: &str,
    limits: (usize, Duration),
    mut body: impl FnMut(usize) -> Value,
) -> anyhow::Result<Figures> {
    let (requests, max_time) = limits;
    for i in 0..WARM_UP {
        client.post(method, &body(i))?;
    }
    let mut samples = Vec::with_capacity(requests);
    let mut last = Value::Null;
    let started = Instant::now();
    while samples.len() < requests && started.elapsed() < max_time {
        let (took, answer) = client.post(method, &body(samples.len()))?;
        samples.push(took);
        last = answer;
    }
    let wall = started.elapsed();
    samples.sort_unstable();
    let total: Duration = samples.iter().sum();
    let n = samples.len().max(1);
    Ok(Figures {
        scenario: scenario.to_string(),
        requests: samples.len(),
        items: items(&last),
        p50_ms: ms(quantile(&samples, 0.50)),
        p99_ms: ms(quantile(&samples, 0.99)),
        mean_ms: ms(total) / n as f64,
        max_ms: ms(samples.last().copied().unwrap_or_default()),
        per_second: samples.len() as f64 / wall.as_secs_f64().max(1e-9),
    })
}

/// Every credential of the logged-in user in pages of 1 000: (ids, the page tokens, seconds).
fn walk(client: &Client, max_time: Duration) -> anyhow::Result<(Vec<String>, Vec<String>, f64)> {
    let started = Instant::now();
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..MAX_WALK_PAGES {
        let mut body = json!({"maxResults": 1000});
        if let (Some(t), Some(obj)) = (&next, body.as_object_mut()) {
            obj.insert("pageToken".into(), json!(t));
        }
        let (_, answer) = client.post("credentials/list", &body)?;
        let page = answer
            .get("credentialIDs")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow::anyhow!("credentials/list without credentialIDs"))?;
        ids.extend(page.iter().filter_map(Value::as_str).map(str::to_string));
        next = answer
            .get("nextPageToken")
            .and_then(Value::as_str)
            .map(str::to_string);
        match &next {
            Some(t) => tokens.push(t.clone()),
            None => return Ok((ids, tokens, started.elapsed().as_secs_f64())),
        }
        anyhow::ensure!(
            started.elapsed() < max_time,
            "walking the list took over {max_time:?}"
        );
    }
    anyhow::bail!("more than {MAX_WALK_PAGES} pages")
}

pub fn run(args: ScaleArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=100_000).contains(&args.requests),
        "--requests must be between 1 and 100000"
    );
    anyhow::ensure!(
        (1..=3_600).contains(&args.max_seconds),
        "--max-seconds must be between 1 and 3600"
    );
    anyhow::ensure!(
        args.token.token_pin.len() <= 1,
        "bench scale passes one token PIN to the server it starts; give one --token-pin"
    );
    let req = args.shape.request();
    req.validate()?;
    let max_time = Duration::from_secs(args.max_seconds);
    let limits = (args.requests, max_time);

    // 1. Seed (or reuse the same seed).
    let store = Store::open(&args.store.database_url, 2)?;
    let seed_report = match seed::existing(&store, &args.shape.user_prefix)? {
        Some(n) => {
            anyhow::ensure!(
                u64::try_from(n).ok() == Some(req.total()),
                "the database holds {n} seeded credentials, not {} (--users × \
                 --credentials-per-user): use a fresh database or the same shape",
                req.total()
            );
            eprintln!("reusing the seed in the database ({n} credentials)");
            json!({"reused": true, "credentials": n})
        }
        None => {
            let r = admin::seed(&args.store, &args.token, &args.hash, &args.shape)?;
            eprintln!(
                "seeded {} credentials for {} users in {:.1} s ({:.0} credentials/s)",
                r.credentials, r.users, r.seconds, r.credentials_per_second
            );
            serde_json::to_value(&r)?
        }
    };
    let user = seed::user_name(&args.shape.user_prefix, 0);
    let user_id = store
        .with(|c| repo::users::by_name(c, &user))?
        .ok_or_else(|| anyhow::anyhow!("no user {user:?} after seeding"))?
        .id;

    // 2. The real server, and a logged-in client.
    let server = start_server(&args)?;
    let client = login(server.addr, &user, &args.shape.password)?;

    // 3. Walk one user's credentials.
    let (ids, tokens, walk_seconds) = walk(&client, max_time)?;
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    anyhow::ensure!(
        unique.len() == ids.len()
            && u64::try_from(ids.len()).ok() == Some(u64::from(args.shape.credentials_per_user)),
        "the walk saw {} ids ({} distinct), expected {}",
        ids.len(),
        unique.len(),
        args.shape.credentials_per_user
    );
    let middle = tokens.get(tokens.len() / 2).cloned();
    let with_token = |mut body: Value| {
        if let (Some(t), Some(obj)) = (&middle, body.as_object_mut()) {
            obj.insert("pageToken".into(), json!(t));
        }
        body
    };

    // 4. Scenarios.
    let mut figures = Vec::new();
    let list = "credentials/list";
    figures.push(measure(
        &client,
        "list, no maxResults (first page, capped at 1000)",
        list,
        limits,
        |_| json!({}),
    )?);
    for n in [10, 100] {
        figures.push(measure(
            &client,
            &format!("list maxResults={n}, first page"),
            list,
            limits,
            |_| json!({"maxResults": n}),
        )?);
        figures.push(measure(
            &client,
            &format!("list maxResults={n}, middle page (pageToken)"),
            list,
            limits,
            |_| with_token(json!({"maxResults": n})),
        )?);
    }
    figures.push(measure(
        &client,
        "list maxResults=10 credentialInfo certificates=chain, middle page",
        list,
        limits,
        |_| with_token(json!({"maxResults": 10, "credentialInfo": true, "certificates": "chain"})),
    )?);
    figures.push(measure(
        &client,
        "list maxResults=10 onlyValid (reads all the user's rows: copies are not valid)",
        list,
        limits,
        |_| json!({"maxResults": 10, "onlyValid": true}),
    )?);
    figures.push(measure(
        &client,
        "info certificates=chain certInfo, random credential of the user",
        "credentials/info",
        limits,
        |_| {
            let i = rand::random_range(0..ids.len().max(1));
            json!({
                "credentialID": ids.get(i).cloned().unwrap_or_default(),
                "certificates": "chain",
                "certInfo": true,
            })
        },
    )?);
    drop(client);
    drop(server);

    // The database's own account of the two queries, and the size of the data.
    let middle_cursor = match &middle {
        Some(t) => paging::decode(&user_id, t).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Cursor::start(),
    };
    let sample_id = ids.first().cloned().unwrap_or_default();
    let (first_plan, middle_plan, info_plan, bytes) = store.with(|c| {
        Ok((
            creds::page_plan(c, &user_id, &Cursor::start(), None, 11)?,
            creds::page_plan(c, &user_id, &middle_cursor, None, 11)?,
            creds::owned_plan(c, &user_id, &sample_id)?,
            creds::storage_bytes(c)?,
        ))
    })?;

    let report = json!({
        "backend": store.backend(),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "credentials": req.total(),
        "users": args.shape.users,
        "credentials_per_user": args.shape.credentials_per_user,
        "storage_bytes": bytes,
        "seed": seed_report,
        "server": "quill serve child process on 127.0.0.1, one client, sequential requests",
        "walk": {
            "user": user,
            "credentials": ids.len(),
            "pages_of_1000": tokens.len() + 1,
            "seconds": walk_seconds,
        },
        "plans": {
            "list_first_page": first_plan.summary(),
            "list_middle_page": middle_plan.summary(),
            "info": info_plan.summary(),
        },
        "scenarios": figures,
    });
    print_table(&report, &figures_of(&report));
    super::emit_report(&report, args.json.as_deref())
}

fn figures_of(report: &Value) -> Vec<Value> {
    report
        .get("scenarios")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn print_table(report: &Value, figures: &[Value]) {
    let s = |v: &Value, k: &str| v.get(k).map(Value::to_string).unwrap_or_default();
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or_default();
    eprintln!(
        "\n{} credentials ({} users × {}) on {}, {} build, {} MB of data",
        s(report, "credentials"),
        s(report, "users"),
        s(report, "credentials_per_user"),
        report
            .get("backend")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        report
            .get("build")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        f(report, "storage_bytes") as u64 / 1_000_000,
    );
    if let Some(plans) = report.get("plans").and_then(Value::as_object) {
        for (k, v) in plans {
            eprintln!("plan {k:<17} {}", v.as_str().unwrap_or_default());
        }
    }
    eprintln!(
        "{:<78} {:>5} {:>5} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "scenario", "n", "items", "p50 ms", "p99 ms", "mean ms", "max ms", "req/s"
    );
    for fig in figures {
        eprintln!(
            "{:<78} {:>5} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7.0}",
            fig.get("scenario")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            s(fig, "requests"),
            s(fig, "items"),
            f(fig, "p50_ms"),
            f(fig, "p99_ms"),
            f(fig, "mean_ms"),
            f(fig, "max_ms"),
            f(fig, "per_second"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&d, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&d, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&d[..1], 0.99), Duration::from_millis(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
