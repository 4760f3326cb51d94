//! The measurements against the running server (step 5): the HTTP floor, the signHash
//! scenarios in slices alternating with the raw token, and the full authorize → signHash flows.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::SLICES;
use super::args::{KeyKind, random_digest};
use super::client::{Client, expect_signed, prepare_calls, token_time};
use super::prepare::Bench;
use super::raw::measure_raw;
use super::report::{Breakdown, Row, breakdown, row};
use super::setup::Creds;
use crate::cli::bench::load::{self, Http, Limits, Run};
use crate::crypto;

/// The signHash scenarios' rows and breakdowns, and the time their SADs took to authorize.
pub(super) struct SignHashResults {
    pub(super) rows: Vec<Row>,
    pub(super) breakdowns: Vec<Breakdown>,
    pub(super) prepare_seconds: f64,
}

/// One signHash scenario's measurement: the server's run, the raw token's run in the slices
/// between, and the server's token counters (count, seconds) before and after the timed calls.
struct Paired {
    served: Run,
    raw: Run,
    token: ((u64, f64), (u64, f64)),
}

impl Bench<'_> {
    /// The floor any HTTP call pays here: `GET /healthz` (no database, no token) at each
    /// concurrency, on the same connections and client. A signHash can be no faster than raw
    /// sign + this, which bounds the ratio a 1-hash call can reach on this machine.
    pub(super) fn http_floor(&self, addr: SocketAddr) -> anyhow::Result<Vec<Value>> {
        let args = self.args;
        let mut floor = Vec::new();
        let healthz = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
        for &n in &self.levels {
            let run = load::run(
                n,
                Limits {
                    duration: (self.duration / 4).min(Duration::from_secs(1)),
                    max_calls: 1_000_000,
                    warm_up: args.warm_up,
                },
                |_| Http::connect(addr),
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
        Ok(floor)
    }

    /// The `raw` rows: the standalone raw runs, compared with themselves.
    pub(super) fn raw_rows(&self) -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        for kind in &self.kinds {
            for &n in &self.levels {
                let r = self
                    .raw
                    .get(&(kind.name.clone(), n))
                    .ok_or_else(|| anyhow::anyhow!("no raw figure"))?;
                rows.push(row("raw", &kind.name, n, r, r));
            }
        }
        Ok(rows)
    }

    /// sign_hash_1 and sign_hash_100 for every key and concurrency, on the key's one
    /// SAD-preparing credential.
    pub(super) fn sign_hash_scenarios(
        &self,
        client: &Client<'_>,
    ) -> anyhow::Result<SignHashResults> {
        let mut results = SignHashResults {
            rows: Vec::new(),
            breakdowns: Vec::new(),
            prepare_seconds: 0.0,
        };
        for kind in &self.kinds {
            let c = self
                .creds
                .get(&kind.name)
                .ok_or_else(|| anyhow::anyhow!("no credentials"))?;
            let (cred, key_id) = c
                .ids
                .first()
                .zip(c.key_ids.first())
                .ok_or_else(|| anyhow::anyhow!("no credential"))?;
            for (scenario, per_call) in [("sign_hash_1", 1), ("sign_hash_100", 100)] {
                for &n in &self.levels {
                    let t = Instant::now();
                    let signatures = self.signatures_for(&kind.name, n, per_call);
                    let calls = prepare_calls(client, kind, cred, signatures, per_call)?;
                    results.prepare_seconds += t.elapsed().as_secs_f64();
                    let paired =
                        self.paired_slices(client.addr, kind, key_id, &calls, n, per_call)?;
                    let row = row(scenario, &kind.name, n, &paired.served, &paired.raw);
                    let parts = breakdown(&row, &paired.served, per_call, paired.token);
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
                    results.rows.push(row);
                    results.breakdowns.push(parts);
                }
            }
        }
        Ok(results)
    }

    /// One signHash scenario: the prepared `calls` against the server, and the raw token on
    /// the same key, in alternating slices of the same time budget, so that the ratio compares
    /// like with like on a machine whose speed drifts (shared VM): each row's raw rate is the
    /// one measured between its own slices. The order is raw-server, server-raw, raw-server, …
    /// (ABBA): a steady drift over the scenario then weighs on both sides alike instead of
    /// favouring the one that always goes first. Also the server's token counters before and
    /// after the timed calls.
    fn paired_slices(
        &self,
        addr: SocketAddr,
        kind: &KeyKind,
        key_id: &[u8],
        calls: &[Vec<u8>],
        n: usize,
        per_call: usize,
    ) -> anyhow::Result<Paired> {
        let args = self.args;
        let duration = self.duration;
        let (mut served, mut raw_paired) = (Run::default(), Run::default());
        // The next prepared calls (from `served.calls` on) within `limits`; false when none are
        // left.
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
                |_| Http::connect(addr),
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
        // The server's warm-up calls come before its token counters are read, so that its
        // per-call token time and the client's mean cover the same calls.
        serve(
            &mut served,
            Limits {
                duration: Duration::ZERO,
                max_calls: n * args.warm_up,
                warm_up: args.warm_up,
            },
        )?;
        let token_before = token_time(addr)?;
        for slice in 0..SLICES {
            let slice_limits = |max_calls, warm_up| Limits {
                duration: duration / SLICES,
                max_calls,
                warm_up,
            };
            let raw_slice = |raw_paired: &mut Run| -> anyhow::Result<()> {
                let warm_up = if slice == 0 { args.warm_up } else { 0 };
                raw_paired.absorb(measure_raw(
                    &self.qscd,
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
        let token_after = token_time(addr)?;
        Ok(Paired {
            served,
            raw: raw_paired,
            token: (token_before, token_after),
        })
    }

    /// The full flow: authorize (argon2 PIN + TOTP) → signHash, one hash, for every key with
    /// flow credentials and every concurrency. The rows, and the median time of
    /// `credentials/authorize` within the flows (ms).
    pub(super) fn authorize_flows(
        &self,
        client: &Client<'_>,
        flow_creds: &mut BTreeMap<String, Creds>,
    ) -> anyhow::Result<(Vec<Row>, f64)> {
        let args = self.args;
        let signer = &self.signer;
        let mut rows = Vec::new();
        let authorize_times = Mutex::new(Vec::new());
        for kind in &self.kinds {
            let Some(f) = flow_creds.get_mut(&kind.name) else {
                continue;
            };
            if f.ids.is_empty() {
                continue;
            }
            let f = Mutex::new(f);
            for &n in &self.levels {
                let limits = Limits {
                    duration: self.duration,
                    max_calls: args.flows + n * args.warm_up.min(1),
                    warm_up: args.warm_up.min(1),
                };
                let run = load::run(
                    n,
                    limits,
                    |w| Ok((w, Http::connect(client.addr)?)),
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
                let standalone = self
                    .raw
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
        let mut authorize_times = authorize_times
            .into_inner()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        authorize_times.sort_unstable();
        let authorize_p50_ms = authorize_times
            .get(authorize_times.len() / 2)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or_default();
        Ok((rows, authorize_p50_ms))
    }
}
