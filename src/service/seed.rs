//! Scale-test seeding (`quill admin seed`, `quill bench scale`): many users and credentials,
//! quickly, for measuring `credentials/list` and `credentials/info` at size. FOR TESTING ONLY.
//!
//! One credential is enrolled for real (`enrol::enrol`: a key pair in the token, a certificate
//! from the development CA, argon2 hashes of the password and PIN). Every other row copies its
//! certificate chain, PIN hash and password hash (argon2 computed once) and is inserted with
//! multi-row INSERTs, `ROWS_PER_TX` rows per transaction. The copies are marked and can never
//! sign:
//! - `description` is `SCALE_TEST_DESCRIPTION` (the enrolled template too), so the seed is easy
//!   to find and delete;
//! - `status` is `SCALE_TEST_STATUS`, not `enabled`: `credentials/info` shows
//!   `key.status: "disabled"`, `onlyValid` leaves them out, and `credentials/authorize` and
//!   `signatures/signHash` refuse them before any PIN, OTP or token operation;
//! - `key_id` (the CKA_ID the token signs with) is `scale-test:<credential id>`: unique, as the
//!   schema requires, and naming no key in the token (real key ids are the credential id, 32 hex
//!   digits), so even a copy whose status someone set to `enabled` could not sign with the
//!   template's key — or any key;
//! - they have no OTP secret.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::{password, token};
use crate::clock::Clock;
use crate::qscd::Qscd;
use crate::secret::Secret;
use crate::store::models::{CredentialRef, UserRow};
use crate::store::{Store, StoreError, repo};

use super::enrol::{self, EnrolRequest};

/// Description of every seeded credential.
pub const SCALE_TEST_DESCRIPTION: &str = "scale-test shared key";
/// Status of the seeded copies (not `enabled`: they never authorize or sign).
pub const SCALE_TEST_STATUS: &str = crate::store::models::STATUS_SCALE_TEST;
/// Prefix of a copy's key id.
pub const SCALE_TEST_KEY_PREFIX: &[u8] = b"scale-test:";
/// Rows per write transaction (each a few multi-row INSERTs of 1 000 rows).
const ROWS_PER_TX: usize = 20_000;
/// Most rows one seed writes.
pub const MAX_CREDENTIALS: u64 = 10_000_000;

/// What to seed.
pub struct SeedRequest {
    pub users: u32,
    pub credentials_per_user: u32,
    /// Users are named `<prefix><n>`, n from 0.
    pub user_prefix: String,
    /// Every seeded user's password.
    pub password: Secret,
    /// The PIN of every seeded credential (only the template can use it).
    pub pin: Secret,
    /// Key algorithm of the template (`enrol::key_spec`).
    pub key: String,
}

impl SeedRequest {
    pub fn total(&self) -> u64 {
        u64::from(self.users) * u64::from(self.credentials_per_user)
    }

    /// Check the request before touching the database or the token.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.users >= 1, "--users must be at least 1");
        anyhow::ensure!(
            self.credentials_per_user >= 1,
            "--credentials-per-user must be at least 1"
        );
        anyhow::ensure!(
            self.total() <= MAX_CREDENTIALS,
            "at most {MAX_CREDENTIALS} credentials per seed"
        );
        anyhow::ensure!(
            !self.user_prefix.is_empty()
                && self.user_prefix.len() <= 64
                && !self.user_prefix.contains(':'),
            "--user-prefix must be 1 to 64 characters without ':'"
        );
        enrol::key_spec(&self.key)?;
        Ok(())
    }
}

/// The name of seeded user `n`.
pub fn user_name(prefix: &str, n: u32) -> String {
    format!("{prefix}{n}")
}

/// What a seed did (printed as JSON).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedReport {
    pub backend: &'static str,
    pub users: u64,
    pub credentials: u64,
    pub credentials_per_user: u32,
    pub user_prefix: String,
    /// The one credential with a real key (belongs to `<prefix>0`).
    pub template_credential_id: String,
    pub seconds: f64,
    pub credentials_per_second: f64,
}

/// Is there a seed with this prefix, and how many seeded credentials does the database hold?
pub fn existing(store: &Store, prefix: &str) -> Result<Option<i64>, StoreError> {
    let first = user_name(prefix, 0);
    store.with(|c| {
        if repo::users::by_name(c, &first)?.is_none() {
            return Ok(None);
        }
        repo::credentials::count_described(c, SCALE_TEST_DESCRIPTION).map(Some)
    })
}

/// Seed `req` (see the module comment). Fails, writing nothing, when `<prefix>0` exists.
pub fn seed(
    store: &Store,
    qscd: &Arc<dyn Qscd>,
    clock: &dyn Clock,
    params: password::HashParams,
    req: &SeedRequest,
) -> anyhow::Result<SeedReport> {
    req.validate()?;
    let started = Instant::now();
    let first = user_name(&req.user_prefix, 0);
    anyhow::ensure!(
        store.with(|c| repo::users::by_name(c, &first))?.is_none(),
        "user {first:?} exists: this database already holds a seed with prefix {:?}",
        req.user_prefix
    );
    // The one real credential: key pair in the token, certificate, argon2 hashes.
    let template = enrol::enrol(
        store,
        qscd,
        clock,
        params,
        EnrolRequest {
            user: first.clone(),
            password: req.password.clone(),
            pin: req.pin.clone(),
            key: req.key.clone(),
            totp_secret: None,
            online_otp: None,
            common_name: Some("Quill scale test".into()),
            multisign: 1,
            cert_days: enrol::CERT_DAYS,
            description: Some(SCALE_TEST_DESCRIPTION.into()),
        },
    )?;
    let (owner, row) = store.with(|c| {
        let owner = repo::users::by_name(c, &first)?
            .ok_or_else(|| StoreError::Query("enrolled user vanished".into()))?;
        let row = repo::credentials::owned(c, &owner.id, &template.credential_id)?
            .ok_or_else(|| StoreError::Query("enrolled credential vanished".into()))?;
        Ok((owner, row))
    })?;
    let now = clock.now();

    // Users 1.., sharing the template user's argon2 password hash.
    let mut user_ids = vec![owner.id.clone()];
    let mut users = Vec::new();
    for n in 1..req.users {
        let u = UserRow {
            id: token::random_id(16),
            name: user_name(&req.user_prefix, n),
            password_hash: owner.password_hash.clone(),
            failed_logins: 0,
            created_at: now,
        };
        user_ids.push(u.id.clone());
        users.push(u);
    }
    for chunk in users.chunks(ROWS_PER_TX) {
        store.with(|c| c.write_tx(|c| repo::users::insert_many(c, chunk)))?;
    }
    drop(users);

    // Credentials: per_user for each user; the template is user 0's first.
    let total = req.total();
    let per_user = u64::from(req.credentials_per_user);
    let mut batch: Vec<(String, Vec<u8>, usize)> = Vec::with_capacity(ROWS_PER_TX);
    let mut written: u64 = 1;
    let flush = |batch: &mut Vec<(String, Vec<u8>, usize)>| -> anyhow::Result<usize> {
        let refs: Vec<CredentialRef<'_>> = batch
            .iter()
            .filter_map(|(id, key_id, u)| {
                Some(CredentialRef {
                    id,
                    user_id: user_ids.get(*u)?,
                    key_id,
                    status: SCALE_TEST_STATUS,
                    otp_secret: None,
                    failed_auths: 0,
                    last_otp_step: None,
                    created_at: now,
                    ..row.as_ref()
                })
            })
            .collect();
        anyhow::ensure!(refs.len() == batch.len(), "seed batch lost rows");
        let n = store.with(|c| c.write_tx(|c| repo::credentials::insert_many(c, &refs)))?;
        batch.clear();
        Ok(n)
    };
    for i in 1..total {
        let user = usize::try_from(i / per_user)?;
        let id = token::random_id(16);
        let mut key_id = SCALE_TEST_KEY_PREFIX.to_vec();
        key_id.extend_from_slice(id.as_bytes());
        batch.push((id, key_id, user));
        if batch.len() == ROWS_PER_TX {
            written += u64::try_from(flush(&mut batch)?)?;
            if written % 100_000 < u64::try_from(ROWS_PER_TX)? {
                tracing::info!(written, total, "seeding credentials");
            }
        }
    }
    written += u64::try_from(flush(&mut batch)?)?;
    anyhow::ensure!(
        written == total,
        "wrote {written} credentials, wanted {total}"
    );
    store.with(repo::credentials::analyze)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(SeedReport {
        backend: store.backend(),
        users: u64::from(req.users),
        credentials: total,
        credentials_per_user: req.credentials_per_user,
        user_prefix: req.user_prefix.clone(),
        template_credential_id: template.credential_id,
        seconds,
        credentials_per_second: total as f64 / seconds.max(1e-9),
    })
}
