//! The command line of `quill bench sign` and the key types it knows: for each, the digest, the
//! CSC `signAlgo`, the token mechanism, and what the token signs for one digest.

use std::path::PathBuf;

use clap::Args;
use rand::RngCore;

use crate::config::HashArgs;
use crate::crypto::{self, HashAlg};
use crate::qscd::SignMechanism;

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
    pub(super) fn effective(mut self) -> SignArgs {
        if self.smoke {
            self.keys = vec!["rsa-2048".into(), "ec-p256".into()];
            self.duration_ms = self.duration_ms.min(150);
            self.max_signatures = self.max_signatures.min(1000);
            self.flows = self.flows.min(2);
            self.warm_up = self.warm_up.min(1);
        }
        self
    }

    pub(super) fn levels(&self) -> Vec<usize> {
        let mut levels = vec![1, self.threads.max(1)];
        levels.dedup();
        levels
    }
}

/// How one key type signs in this benchmark.
#[derive(Clone, Debug)]
pub(super) struct KeyKind {
    pub(super) name: String,
    pub(super) hash: HashAlg,
    pub(super) sign_algo: &'static str,
    pub(super) mechanism: SignMechanism,
}

pub(super) fn key_kind(name: &str) -> anyhow::Result<KeyKind> {
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
pub(super) fn token_input(kind: &KeyKind, digest: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(match kind.mechanism {
        SignMechanism::RsaPkcs1 => crypto::digest_info::digest_info(kind.hash, digest)?,
        _ => digest.to_vec(),
    })
}

pub(super) fn random_digest(hash: HashAlg) -> Vec<u8> {
    let mut d = vec![0u8; hash.digest_len()];
    rand::rng().fill_bytes(&mut d);
    d
}
