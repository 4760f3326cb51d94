//! `quill admin seed`: fill a database with many users and credentials for scale testing (see
//! `service::seed`: one real key, every other credential a marked copy that can never sign).
//! Prints one JSON object: the seed report.

use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::clock::SystemClock;
use crate::config::{HashArgs, StoreArgs, TokenArgs};
use crate::qscd::Qscd;
use crate::secret::Secret;
use crate::service::seed::{self, SeedRequest};
use crate::store::Store;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// FOR SCALE TESTS ONLY: create USERS × CREDENTIALS_PER_USER credentials quickly. One is
    /// enrolled with a real key; the others copy its certificate, are marked
    /// "scale-test shared key" and can never authorize or sign.
    Seed(SeedArgs),
}

/// The shape of a scale-test seed (shared by `admin seed` and `bench scale`).
#[derive(Args, Debug, Clone)]
pub struct SeedShape {
    /// Number of users (named PREFIX0, PREFIX1, …).
    #[arg(long, default_value_t = 100)]
    pub users: u32,
    /// Credentials per user (USERS × this in all).
    #[arg(long, default_value_t = 10_000)]
    pub credentials_per_user: u32,
    /// Prefix of the seeded user names.
    #[arg(long, default_value = "scale-")]
    pub user_prefix: String,
    /// Password of every seeded user (hashed once, shared: scale tests only).
    #[arg(long, default_value = "scale-test-password")]
    pub password: String,
    /// PIN of the seeded credentials (only the one real credential can use it).
    #[arg(long, default_value = "123456")]
    pub pin: String,
    /// Key algorithm of the one real credential.
    #[arg(long, default_value = "ec-p256")]
    pub key: String,
}

impl SeedShape {
    pub fn request(&self) -> SeedRequest {
        SeedRequest {
            users: self.users,
            credentials_per_user: self.credentials_per_user,
            user_prefix: self.user_prefix.clone(),
            password: Secret::new(self.password.clone()),
            pin: Secret::new(self.pin.clone()),
            key: self.key.clone(),
        }
    }
}

#[derive(Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub token: TokenArgs,
    #[command(flatten)]
    pub hash: HashArgs,
    #[command(flatten)]
    pub shape: SeedShape,
}

/// Seed `shape` into the database and token of `args` (blocking).
pub fn seed(
    store: &StoreArgs,
    token: &TokenArgs,
    hash: &HashArgs,
    shape: &SeedShape,
) -> anyhow::Result<seed::SeedReport> {
    let req = shape.request();
    req.validate()?;
    let store = Store::open_for_command(&store.database_url, 2)?;
    let qscd: Arc<dyn Qscd> = token.open()?;
    tracing::info!(
        users = req.users,
        credentials = req.total(),
        backend = store.backend(),
        "seeding a scale test (shared key, test data only)"
    );
    seed::seed(&store, &qscd, &SystemClock, hash.params(), &req)
}

pub fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Seed(args) => {
            let report = seed(&args.store, &args.token, &args.hash, &args.shape)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}
