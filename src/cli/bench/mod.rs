//! `quill bench …`: measurements of a real `quill serve` on 127.0.0.1. Each prints a table on
//! stderr and one JSON object on stdout (and to `--json FILE`).

pub mod scale;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// credentials/list and credentials/info latency with many credentials (seeds the
    /// database first when needed: scale-test data, one shared key).
    Scale(scale::ScaleArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Scale(args) => scale::run(args),
    }
}
