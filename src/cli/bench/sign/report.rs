//! The report: one row per scenario, key and concurrency, the server's time breakdown per
//! signHash scenario, the table on stderr and the targets judged on this run (step 6),
//! and the JSON report on stdout and to `--json FILE`.

use serde_json::{Value, json};

use super::args::SignArgs;
use crate::cli::bench::load::Run;

/// One row of the report.
#[derive(Clone, Debug, serde::Serialize)]
pub(super) struct Row {
    pub(super) scenario: &'static str,
    pub(super) key: String,
    pub(super) concurrency: usize,
    pub(super) rate_per_s: f64,
    pub(super) raw_rate_per_s: f64,
    pub(super) ratio: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    /// p99 of the raw token calls this row is compared with (not in the JSON report).
    #[serde(skip)]
    pub(super) raw_p99_ms: f64,
}

pub(super) fn row(scenario: &'static str, key: &str, c: usize, run: &Run, raw: &Run) -> Row {
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

/// Where a signHash scenario's time went, per call: the mean call as the client saw it, the
/// token's part inside the server (`quill_hsm_sign_seconds`), and the raw token time for the
/// same signatures at the same concurrency. The rest is Quill's own work (HTTP, JSON,
/// database), the client, and waiting for a core.
#[derive(Clone, Debug, serde::Serialize)]
pub(super) struct Breakdown {
    pub(super) scenario: &'static str,
    pub(super) key: String,
    pub(super) concurrency: usize,
    /// signHash calls the server counted (the timed ones: warm-up calls come before).
    pub(super) calls: u64,
    pub(super) mean_call_ms: f64,
    pub(super) server_token_ms: f64,
    pub(super) raw_token_ms: f64,
}

pub(super) fn breakdown(
    row: &Row,
    run: &Run,
    per_call: usize,
    token: ((u64, f64), (u64, f64)),
) -> Breakdown {
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

/// Everything the end of a run reports.
pub(super) struct Report {
    pub(super) database: &'static str,
    pub(super) rows: Vec<Row>,
    /// `GET /healthz` per concurrency.
    pub(super) floor: Vec<Value>,
    pub(super) breakdowns: Vec<Breakdown>,
    /// Server peak RSS at the end, and before the authorize → signHash flows (MiB).
    pub(super) rss: f64,
    pub(super) rss_sign_hash: f64,
    pub(super) cold_start_ms: f64,
    pub(super) argon2_ms: f64,
    pub(super) authorize_p50_ms: f64,
    /// Time spent authorizing the signHash scenarios' SADs.
    pub(super) prepare_seconds: f64,
}

impl Report {
    /// 6. The table and the targets on stderr; the JSON report on stdout and to `--json FILE`.
    pub(super) fn finish(&self, args: &SignArgs) -> anyhow::Result<()> {
        let Report {
            database,
            rows,
            floor,
            breakdowns,
            rss,
            rss_sign_hash,
            cold_start_ms,
            argon2_ms,
            authorize_p50_ms,
            prepare_seconds,
        } = self;
        let report = json!({
            "database": database,
            "results": rows,
            "server_peak_rss_mib": rss,
            "cold_start_ms": cold_start_ms,
            "http_floor": floor,
            "server_breakdown": breakdowns,
        });
        print_table(rows);
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
        print_targets(rows, floor, breakdowns, *rss, *cold_start_ms);
        crate::cli::bench::emit_report(&report, args.json.as_deref())
    }
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
