//! `quill healthcheck`: GET a readiness URL and exit 0 on 200, 1 otherwise — for container
//! HEALTHCHECKs and init systems on images without curl. Prints the answer's JSON (or the
//! failure) on one line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

#[derive(Args)]
pub struct HealthcheckArgs {
    /// URL to probe.
    #[arg(
        long,
        env = "QUILL_HEALTHCHECK_URL",
        default_value = "http://127.0.0.1:8080/readyz"
    )]
    pub url: String,
    /// PEM certificate to trust for an https URL (e.g. the server's own self-signed one).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

pub fn run(args: HealthcheckArgs) -> anyhow::Result<()> {
    let mut client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(args.timeout.max(1)))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let response = client.build()?.get(&args.url).send()?;
    let status = response.status();
    let body = response.text().unwrap_or_default();
    println!("{}", body.trim());
    anyhow::ensure!(status.is_success(), "{} answered {status}", args.url);
    Ok(())
}
