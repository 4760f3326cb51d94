//! `quill bench …`: measurements of a real `quill serve` on 127.0.0.1, and the comparison of
//! two builds' reports. Each prints a table on stderr and one JSON object on stdout (and to
//! `--json FILE`). Plain `quill bench` (with the `sign` flags) is `quill bench sign`.

mod child;
pub mod compare;
mod load;
pub mod scale;
pub mod sign;

use clap::{Args, Subcommand};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Without a subcommand: `quill bench sign` with these flags.
    #[command(flatten)]
    pub sign: sign::SignArgs,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// signHash against the raw PKCS#11 sign rate of the same token, in one run: SoftHSM2 token
    /// and SQLite (or, with --postgres, PostgreSQL) database of its own, RSA-2048/3072 and
    /// P-256/384, 1 and N connections.
    Sign(sign::SignArgs),
    /// credentials/list and credentials/info latency with many credentials (seeds the
    /// database first when needed: scale-test data, one shared key).
    Scale(scale::ScaleArgs),
    /// The `sign` reports of two builds side by side: ratio, rate and Quill's own time per
    /// call, averaged over several reports per side (runs made alternately).
    Compare(compare::CompareArgs),
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        Some(BenchCommand::Sign(sign)) => sign::run(sign),
        Some(BenchCommand::Scale(scale)) => scale::run(scale),
        Some(BenchCommand::Compare(c)) => compare::run(c),
        None => sign::run(args.sign),
    }
}

/// Write a report: pretty JSON to `--json FILE` when given, and one line of JSON on stdout.
fn emit_report(report: &serde_json::Value, json: Option<&std::path::Path>) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{}", serde_json::to_string(report)?);
    Ok(())
}
