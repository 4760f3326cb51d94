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
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(args.timeout.max(1))))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false);
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let certs = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    let agent: ureq::Agent = config.build().into();
    let mut response = agent.get(&args.url).call()?;
    let status = response.status();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    println!("{}", body.trim());
    anyhow::ensure!(status.is_success(), "{} answered {status}", args.url);
    Ok(())
}
