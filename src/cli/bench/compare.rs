//! `quill bench compare`: the JSON reports of `quill bench sign` from two builds, side by side.
//! Several reports per side (runs made alternately, as a shared VM's speed drifts by ±20% within
//! minutes) are averaged, with their range. Per signHash row it puts the ratio to raw, the rate
//! and Quill's own time per call (the mean call less the token's time inside the server, from
//! `server_breakdown`: the figure a change to Quill moves most directly); then the server's peak
//! RSS and cold start. Rows are matched by scenario, key and concurrency.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

#[derive(Args, Clone, Debug)]
pub struct CompareArgs {
    /// A report (`quill bench --json FILE`) of the build before; repeat for several runs.
    #[arg(long, required = true, value_name = "FILE")]
    pub before: Vec<PathBuf>,
    /// A report of the build after; repeat for several runs.
    #[arg(long, required = true, value_name = "FILE")]
    pub after: Vec<PathBuf>,
    /// Also write the comparison (JSON) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What a comparison reads of a `quill bench sign` report (the shape; the breakdown is
/// absent from reports of older builds).
#[derive(Clone, Debug, Deserialize)]
pub struct Report {
    results: Vec<ReportRow>,
    #[serde(default)]
    server_breakdown: Vec<ReportBreakdown>,
    server_peak_rss_mib: f64,
    cold_start_ms: f64,
    #[serde(default)]
    database: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct ReportRow {
    scenario: String,
    key: String,
    concurrency: usize,
    rate_per_s: f64,
    ratio: f64,
}

#[derive(Clone, Debug, Deserialize)]
struct ReportBreakdown {
    scenario: String,
    key: String,
    concurrency: usize,
    mean_call_ms: f64,
    server_token_ms: f64,
}

/// The mean of a figure over one side's reports, and its range.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        let first = *values.first()?;
        let (min, max) = values
            .iter()
            .fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        Some(Spread {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            min,
            max,
            runs: values.len(),
        })
    }
}

/// One figure before and after (`None`: no report of that side has it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Change {
    pub before: Option<Spread>,
    pub after: Option<Spread>,
}

impl Change {
    fn of(before: &[f64], after: &[f64]) -> Change {
        Change {
            before: Spread::of(before),
            after: Spread::of(after),
        }
    }

    /// After less before, of the means.
    pub fn delta(&self) -> Option<f64> {
        Some(self.after?.mean - self.before?.mean)
    }

    /// The change of the means relative to before.
    pub fn relative(&self) -> Option<f64> {
        let before = self.before?.mean;
        (before != 0.0).then(|| self.delta().map(|d| d / before))?
    }
}

/// One row of the comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompareRow {
    pub scenario: String,
    pub key: String,
    pub concurrency: usize,
    pub ratio: Change,
    pub rate_per_s: Change,
    /// Mean call less the token's time in the server, ms (signHash rows).
    pub quill_ms_per_call: Change,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub before_database: Vec<String>,
    pub after_database: Vec<String>,
    pub rows: Vec<CompareRow>,
    pub server_peak_rss_mib: Change,
    pub cold_start_ms: Change,
}

/// Compare the reports of two builds.
pub fn compare(before: &[Report], after: &[Report]) -> Comparison {
    // Every (scenario, key, concurrency) either side has, in the order first seen.
    let mut keys: Vec<(String, String, usize)> = Vec::new();
    for r in before.iter().chain(after).flat_map(|r| &r.results) {
        let k = (r.scenario.clone(), r.key.clone(), r.concurrency);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let rows = keys
        .into_iter()
        .map(|(scenario, key, concurrency)| {
            let same = |s: &str, k: &str, c: usize| s == scenario && k == key && c == concurrency;
            let figures = |side: &[Report], f: fn(&ReportRow) -> f64| -> Vec<f64> {
                side.iter()
                    .flat_map(|r| &r.results)
                    .filter(|r| same(&r.scenario, &r.key, r.concurrency))
                    .map(f)
                    .collect()
            };
            let quill = |side: &[Report]| -> Vec<f64> {
                side.iter()
                    .flat_map(|r| &r.server_breakdown)
                    .filter(|b| same(&b.scenario, &b.key, b.concurrency))
                    .map(|b| b.mean_call_ms - b.server_token_ms)
                    .collect()
            };
            CompareRow {
                ratio: Change::of(&figures(before, |r| r.ratio), &figures(after, |r| r.ratio)),
                rate_per_s: Change::of(
                    &figures(before, |r| r.rate_per_s),
                    &figures(after, |r| r.rate_per_s),
                ),
                quill_ms_per_call: Change::of(&quill(before), &quill(after)),
                scenario,
                key,
                concurrency,
            }
        })
        .collect();
    let each = |side: &[Report], f: fn(&Report) -> f64| side.iter().map(f).collect::<Vec<_>>();
    let databases = |side: &[Report]| {
        let mut names: Vec<String> = side
            .iter()
            .map(|r| r.database.clone().unwrap_or_else(|| "sqlite".into()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    Comparison {
        before_database: databases(before),
        after_database: databases(after),
        rows,
        server_peak_rss_mib: Change::of(
            &each(before, |r| r.server_peak_rss_mib),
            &each(after, |r| r.server_peak_rss_mib),
        ),
        cold_start_ms: Change::of(
            &each(before, |r| r.cold_start_ms),
            &each(after, |r| r.cold_start_ms),
        ),
    }
}

fn read(paths: &[PathBuf]) -> anyhow::Result<Vec<Report>> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a `quill bench sign` report", p.display()))
        })
        .collect()
}

/// `12.3` or `12.3 (11.0–13.1)` when several runs differ; `-` when absent.
fn show(s: Option<Spread>, scale: f64, digits: usize) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.runs > 1 && s.min != s.max => format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            s.mean * scale,
            s.min * scale,
            s.max * scale
        ),
        Some(s) => format!("{:.digits$}", s.mean * scale),
    }
}

fn show_delta(c: &Change, scale: f64, digits: usize, relative: bool) -> String {
    let value = if relative {
        c.relative().map(|r| r * 100.0)
    } else {
        c.delta().map(|d| d * scale)
    };
    match value {
        None => "-".into(),
        Some(v) if relative => format!("{v:+.1}%"),
        Some(v) => format!("{v:+.digits$}"),
    }
}

fn print(c: &Comparison, before: usize, after: usize) {
    eprintln!(
        "before: {before} report(s), {}; after: {after} report(s), {}",
        c.before_database.join(", "),
        c.after_database.join(", ")
    );
    if c.before_database != c.after_database {
        eprintln!("note: the two sides ran on different databases");
    }
    eprintln!(
        "\n{:<15} {:<9} {:>4}  {:>20} {:>20} {:>7}  {:>24} {:>24} {:>7}  {:>22} {:>22} {:>7}",
        "scenario",
        "key",
        "conc",
        "ratio % before",
        "after",
        "Δ pts",
        "rate/s before",
        "after",
        "Δ",
        "Quill ms/call before",
        "after",
        "Δ"
    );
    for r in &c.rows {
        eprintln!(
            "{:<15} {:<9} {:>4}  {:>20} {:>20} {:>7}  {:>24} {:>24} {:>7}  {:>22} {:>22} {:>7}",
            r.scenario,
            r.key,
            r.concurrency,
            show(r.ratio.before, 100.0, 1),
            show(r.ratio.after, 100.0, 1),
            show_delta(&r.ratio, 100.0, 1, false),
            show(r.rate_per_s.before, 1.0, 0),
            show(r.rate_per_s.after, 1.0, 0),
            show_delta(&r.rate_per_s, 1.0, 0, true),
            show(r.quill_ms_per_call.before, 1.0, 3),
            show(r.quill_ms_per_call.after, 1.0, 3),
            show_delta(&r.quill_ms_per_call, 1.0, 3, true),
        );
    }
    eprintln!(
        "\nserver peak RSS MiB: {} → {}; cold start ms: {} → {}",
        show(c.server_peak_rss_mib.before, 1.0, 1),
        show(c.server_peak_rss_mib.after, 1.0, 1),
        show(c.cold_start_ms.before, 1.0, 0),
        show(c.cold_start_ms.after, 1.0, 0),
    );
    eprintln!(
        "Quill ms/call: the mean signHash call less the token's time inside the server (HTTP, \
         JSON, database, the client and waiting for a core)"
    );
}

pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let before = read(&args.before)?;
    let after = read(&args.after)?;
    let comparison = compare(&before, &after);
    print(&comparison, before.len(), after.len());
    let json = serde_json::to_string(&comparison)?;
    if let Some(path) = &args.json {
        std::fs::write(path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{json}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(ratio: f64, rate: f64, call: f64, token: f64, rss: f64) -> Report {
        serde_json::from_value(json!({
            "results": [
                {"scenario": "raw", "key": "ec-p256", "concurrency": 1, "rate_per_s": 9.0,
                 "raw_rate_per_s": 9.0, "ratio": 1.0, "p50_ms": 0.1, "p99_ms": 0.2},
                {"scenario": "sign_hash_1", "key": "ec-p256", "concurrency": 1,
                 "rate_per_s": rate, "raw_rate_per_s": 9.0, "ratio": ratio, "p50_ms": 0.3,
                 "p99_ms": 0.5}
            ],
            "server_breakdown": [
                {"scenario": "sign_hash_1", "key": "ec-p256", "concurrency": 1, "calls": 10,
                 "mean_call_ms": call, "server_token_ms": token, "raw_token_ms": 0.06}
            ],
            "server_peak_rss_mib": rss,
            "cold_start_ms": 20.0,
            "database": "sqlite",
            "http_floor": []
        }))
        .unwrap()
    }

    #[test]
    fn averages_each_side_and_matches_rows() {
        let before = [
            report(0.20, 3000.0, 0.32, 0.10, 50.0),
            report(0.24, 3400.0, 0.30, 0.10, 52.0),
        ];
        let after = [report(0.25, 3600.0, 0.28, 0.11, 51.0)];
        let c = compare(&before, &after);
        assert_eq!(c.rows.len(), 2, "raw and sign_hash_1: {c:?}");
        let row = c.rows.iter().find(|r| r.scenario == "sign_hash_1").unwrap();
        let ratio_before = row.ratio.before.unwrap();
        assert!((ratio_before.mean - 0.22).abs() < 1e-9);
        assert_eq!(
            (ratio_before.min, ratio_before.max, ratio_before.runs),
            (0.20, 0.24, 2)
        );
        assert!((row.ratio.delta().unwrap() - 0.03).abs() < 1e-9);
        assert!((row.rate_per_s.relative().unwrap() - 0.125).abs() < 1e-9);
        // Quill's own time: 0.22 and 0.20 ms before (mean 0.21), 0.17 after.
        let quill = row.quill_ms_per_call;
        assert!((quill.before.unwrap().mean - 0.21).abs() < 1e-9);
        assert!((quill.after.unwrap().mean - 0.17).abs() < 1e-9);
        assert!((quill.relative().unwrap() + 0.04 / 0.21).abs() < 1e-9);
        // The raw row has no breakdown: no Quill time on either side.
        let raw = c.rows.iter().find(|r| r.scenario == "raw").unwrap();
        assert_eq!(raw.quill_ms_per_call.before, None);
        assert_eq!(raw.quill_ms_per_call.delta(), None);
        assert!((c.server_peak_rss_mib.before.unwrap().mean - 51.0).abs() < 1e-9);
        assert_eq!(c.before_database, ["sqlite"]);
        // Reports of different databases on one side are all named, once each.
        let mut pg = report(0.1, 1000.0, 1.0, 0.1, 45.0);
        pg.database = Some("postgres".into());
        let mixed = [before[0].clone(), pg, before[1].clone()];
        assert_eq!(
            compare(&mixed, &after).before_database,
            ["postgres", "sqlite"]
        );
    }

    #[test]
    fn a_row_on_one_side_only_is_kept_without_a_delta() {
        let before = [report(0.20, 3000.0, 0.32, 0.10, 50.0)];
        let mut after = report(0.25, 3600.0, 0.28, 0.11, 51.0);
        after.results[1].key = "ec-p384".into();
        after.server_breakdown[0].key = "ec-p384".into();
        let c = compare(&before, &[after]);
        let keys: Vec<_> = c
            .rows
            .iter()
            .map(|r| (r.scenario.as_str(), r.key.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("raw", "ec-p256"),
                ("sign_hash_1", "ec-p256"),
                ("sign_hash_1", "ec-p384")
            ]
        );
        let p256 = &c.rows[1];
        assert!(p256.ratio.before.is_some() && p256.ratio.after.is_none());
        assert_eq!(p256.ratio.delta(), None);
        assert_eq!(show(p256.ratio.after, 100.0, 1), "-");
        assert_eq!(show_delta(&p256.ratio, 100.0, 1, false), "-");
    }

    #[test]
    fn shows_the_range_only_when_runs_differ() {
        let one = Spread::of(&[0.5]).unwrap();
        assert_eq!(show(Some(one), 100.0, 1), "50.0");
        let same = Spread::of(&[0.5, 0.5]).unwrap();
        assert_eq!(show(Some(same), 100.0, 1), "50.0");
        let two = Spread::of(&[0.4, 0.6]).unwrap();
        assert_eq!(show(Some(two), 100.0, 1), "50.0 (40.0–60.0)");
        assert_eq!(Spread::of(&[]), None);
        let change = Change::of(&[0.2], &[0.25]);
        assert_eq!(show_delta(&change, 100.0, 1, false), "+5.0");
        assert_eq!(show_delta(&change, 1.0, 1, true), "+25.0%");
        assert_eq!(Change::of(&[0.0], &[1.0]).relative(), None);
    }

    #[test]
    fn a_file_that_is_not_a_report_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{\"results\": 3}").unwrap();
        let err = read(std::slice::from_ref(&path)).unwrap_err();
        assert!(format!("{err:#}").contains("x.json"), "{err:#}");
        let missing = dir.path().join("missing.json");
        assert!(read(&[missing]).is_err());
    }
}
