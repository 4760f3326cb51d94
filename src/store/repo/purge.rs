//! Removing state that has expired, a while after it expired: SADs with their digests, access
//! tokens no SAD refers to any more, OTP challenges, OAuth requests, codes and refresh tokens.
//! Without this every authorization would leave rows behind for good (a thousand-hash SAD is
//! 32 KB of digests) and the tables the hot path reads would only grow. The audit log is never
//! purged: it is the record.
//!
//! Work comes in batches of at most `BATCH` rows per table, each in a write transaction of its
//! own, so writers (signHash) wait for one short batch at most.

use diesel::dsl::{exists, not};
use diesel::prelude::*;

use crate::store::schema::{
    access_tokens, oauth_codes, oauth_refresh_tokens, oauth_requests, otp_challenges, sad_digests,
    sads, sign_jobs,
};
use crate::store::{DbConn, StoreError};

/// Most rows one batch deletes from a table (for SADs, a SAD and each of its digests count one;
/// one SAD is never split).
pub const BATCH: usize = 512;
const BATCH_I64: i64 = 512;
/// Most OAuth authorization requests one batch deletes: each may hold up to 256 KiB (a
/// thousand digests with labels), so 512 of them kept the writers waiting for about a second.
pub const REQUEST_BATCH: usize = 32;

/// Rows deleted, by table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub sads: usize,
    /// `sad_digests` rows: one per SAD.
    pub sad_digests: usize,
    /// Digests those rows held (not a table: what the batch size weighs).
    pub digests: usize,
    pub access_tokens: usize,
    pub otp_challenges: usize,
    pub oauth_requests: usize,
    pub oauth_codes: usize,
    pub oauth_refresh_tokens: usize,
    /// Asynchronous signing calls (each may hold signed documents: `REQUEST_BATCH` a batch).
    pub sign_jobs: usize,
}

impl Purged {
    /// `(table, rows)` for each table.
    pub fn by_table(&self) -> [(&'static str, usize); 8] {
        [
            ("sads", self.sads),
            ("sad_digests", self.sad_digests),
            ("access_tokens", self.access_tokens),
            ("otp_challenges", self.otp_challenges),
            ("oauth_requests", self.oauth_requests),
            ("oauth_codes", self.oauth_codes),
            ("oauth_refresh_tokens", self.oauth_refresh_tokens),
            ("sign_jobs", self.sign_jobs),
        ]
    }

    pub fn total(&self) -> usize {
        self.by_table().iter().map(|(_, n)| n).sum()
    }

    fn add(&mut self, other: &Purged) {
        self.sads += other.sads;
        self.sad_digests += other.sad_digests;
        self.digests += other.digests;
        self.access_tokens += other.access_tokens;
        self.otp_challenges += other.otp_challenges;
        self.oauth_requests += other.oauth_requests;
        self.oauth_codes += other.oauth_codes;
        self.oauth_refresh_tokens += other.oauth_refresh_tokens;
        self.sign_jobs += other.sign_jobs;
    }

    /// Did any table fill its batch (so that more may be left)?
    fn full(&self) -> bool {
        self.sads + self.digests >= BATCH
            || [
                self.access_tokens,
                self.otp_challenges,
                self.oauth_codes,
                self.oauth_refresh_tokens,
            ]
            .iter()
            .any(|&n| n >= BATCH)
            || self.oauth_requests >= REQUEST_BATCH
            || self.sign_jobs >= REQUEST_BATCH
    }
}

/// What expired before `cutoff` (Unix seconds; asynchronous calls' answers before
/// `jobs_cutoff`), batch after batch with `pause` between them for the writers that queued
/// meanwhile, until nothing is left or after `max_batches` (the rest waits for the next call).
pub fn run(
    conn: &mut DbConn,
    cutoff: i64,
    jobs_cutoff: i64,
    max_batches: usize,
    pause: std::time::Duration,
) -> Result<Purged, StoreError> {
    let mut total = Purged::default();
    for n in 0..max_batches {
        if n > 0 {
            std::thread::sleep(pause);
        }
        let done = batch(conn, cutoff, jobs_cutoff)?;
        total.add(&done);
        if !done.full() {
            break;
        }
    }
    Ok(total)
}

/// Delete up to `BATCH` (or `$limit`) rows of `$table` whose `expires_at` is before `$cutoff`,
/// keyed by `$key` (of Rust type `$ty`), in one write transaction: the number deleted.
macro_rules! expired {
    ($conn:expr, $cutoff:expr, $table:ident, $key:ident, $ty:ty) => {
        expired!($conn, $cutoff, $table, $key, $ty, BATCH_I64)
    };
    ($conn:expr, $cutoff:expr, $table:ident, $key:ident, $ty:ty, $limit:expr) => {
        $conn.write_tx(|c| {
            let ids: Vec<$ty> = $table::table
                .filter($table::expires_at.lt($cutoff))
                .select($table::$key)
                .limit($limit)
                .load(c)?;
            diesel::delete($table::table.filter($table::$key.eq_any(&ids))).execute(c)
        })
    };
}

/// One batch of each table.
pub fn batch(conn: &mut DbConn, cutoff: i64, jobs_cutoff: i64) -> Result<Purged, StoreError> {
    let (sads, sad_digests, digests) = expired_sads(conn, cutoff)?;
    // After the SADs: a token is kept while a SAD refers to it.
    let access_tokens = conn.write_tx(|c| {
        let ids: Vec<Vec<u8>> = access_tokens::table
            .filter(access_tokens::expires_at.lt(cutoff))
            .filter(not(exists(
                sads::table.filter(sads::token_hash.eq(access_tokens::token_hash)),
            )))
            .select(access_tokens::token_hash)
            .limit(BATCH_I64)
            .load(c)?;
        diesel::delete(access_tokens::table.filter(access_tokens::token_hash.eq_any(&ids)))
            .execute(c)
    })?;
    let otp_challenges = expired!(conn, cutoff, otp_challenges, credential_id, String)?;
    let oauth_requests = expired!(
        conn,
        cutoff,
        oauth_requests,
        handle_hash,
        Vec<u8>,
        REQUEST_BATCH as i64
    )?;
    let oauth_codes = expired!(conn, cutoff, oauth_codes, code_hash, Vec<u8>)?;
    let oauth_refresh_tokens = expired!(conn, cutoff, oauth_refresh_tokens, token_hash, Vec<u8>)?;
    let sign_jobs = expired!(
        conn,
        jobs_cutoff,
        sign_jobs,
        id_hash,
        Vec<u8>,
        REQUEST_BATCH as i64
    )?;
    Ok(Purged {
        sads,
        sad_digests,
        digests,
        access_tokens,
        otp_challenges,
        oauth_requests,
        oauth_codes,
        oauth_refresh_tokens,
        sign_jobs,
    })
}

/// Expired SADs and their digests, whole SADs until `BATCH` (SADs plus digests) is reached:
/// (SADs, `sad_digests` rows, digests).
fn expired_sads(conn: &mut DbConn, cutoff: i64) -> Result<(usize, usize, usize), StoreError> {
    let done = conn.write_tx(|c| {
        // `used` has a byte per digest: its length is the SAD's digest count.
        let found: Vec<(Vec<u8>, Vec<u8>)> = sads::table
            .filter(sads::expires_at.lt(cutoff))
            .select((sads::sad_hash, sads::used))
            .limit(BATCH_I64)
            .load(c)?;
        let (mut ids, mut weight, mut digests) = (Vec::new(), 0, 0);
        for (id, used) in found {
            if weight >= BATCH {
                break;
            }
            weight += 1 + used.len();
            digests += used.len();
            ids.push(id);
        }
        let rows = diesel::delete(sad_digests::table.filter(sad_digests::sad_hash.eq_any(&ids)))
            .execute(c)?;
        let sads = diesel::delete(sads::table.filter(sads::sad_hash.eq_any(&ids))).execute(c)?;
        Ok::<_, diesel::result::Error>((sads, rows, digests))
    })?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::models::{AccessTokenRow, NewSad, SCOPE_SERVICE};
    use crate::store::repo::credentials::tests::{sample, user};
    use crate::store::repo::{self, audit};
    use crate::store::tests::{TempDb, temp_store};

    const NOW: i64 = 1_000_000;

    fn setup() -> (TempDb, Store) {
        let (d, store) = temp_store();
        store
            .with(|c| {
                repo::users::insert(c, &user("u"))?;
                repo::credentials::insert(c, &sample("c", "u"))
            })
            .unwrap();
        (d, store)
    }

    fn token(store: &Store, hash: u8, expires_at: i64) {
        store
            .with(|c| {
                repo::tokens::insert(
                    c,
                    &AccessTokenRow {
                        token_hash: vec![hash; 32],
                        user_id: "u".into(),
                        expires_at,
                        revoked: false,
                        created_at: 0,
                        scope: SCOPE_SERVICE.into(),
                    },
                )
            })
            .unwrap();
    }

    fn sad(store: &Store, hash: u8, token: u8, expires_at: i64, digests: usize) {
        let digests: Vec<Vec<u8>> = (0..digests)
            .map(|i| {
                let mut d = vec![hash; 32];
                d[..8].copy_from_slice(&(i as u64).to_be_bytes());
                d
            })
            .collect();
        let new = NewSad {
            sad_hash: vec![hash; 32],
            token_hash: vec![token; 32],
            user_id: "u".into(),
            credential_id: "c".into(),
            hash_algo: "SHA-256".into(),
            num_signatures: i32::try_from(digests.len()).unwrap(),
            expires_at,
            created_at: 0,
            digests,
        };
        store
            .with(|c| {
                repo::sads::insert(
                    c,
                    &new,
                    &audit::Event {
                        at: 0,
                        actor: "u".into(),
                        action: "authorize",
                        credential_id: Some("c".into()),
                        outcome: "sad_issued",
                        detail: serde_json::json!({}),
                    },
                )
            })
            .unwrap();
    }

    /// Rows in `table`.
    macro_rules! count {
        ($store:expr, $table:expr) => {
            $store
                .with(|c| Ok($table.count().get_result::<i64>(c)?))
                .unwrap()
        };
    }

    #[test]
    fn removes_what_expired_before_the_cutoff_and_keeps_the_rest() {
        let (_d, store) = setup();
        let cutoff = NOW - 3600;
        token(&store, 1, cutoff - 10); // expired long ago, no SAD left after the purge: goes
        token(&store, 2, cutoff - 10); // expired long ago, but a live SAD refers to it: stays
        token(&store, 3, cutoff + 10); // within the grace period: stays
        sad(&store, 11, 1, cutoff - 5, 3); // goes, with its three digests
        sad(&store, 12, 2, NOW + 300, 2); // live: stays
        sad(&store, 13, 3, cutoff + 5, 1); // expired, within the grace period: stays
        let audit_before = count!(store, crate::store::schema::audit_log::table);

        let purged = store
            .with(|c| run(c, cutoff, cutoff, 100, std::time::Duration::ZERO))
            .unwrap();
        assert_eq!(
            purged,
            Purged {
                sads: 1,
                sad_digests: 1,
                digests: 3,
                access_tokens: 1,
                ..Purged::default()
            }
        );
        assert_eq!(count!(store, sads::table), 2);
        assert_eq!(count!(store, sad_digests::table), 2);
        assert_eq!(count!(store, access_tokens::table), 2);
        let left: Vec<Vec<u8>> = store
            .with(|c| {
                Ok(access_tokens::table
                    .select(access_tokens::token_hash)
                    .order(access_tokens::token_hash)
                    .load(c)?)
            })
            .unwrap();
        assert_eq!(left, vec![vec![2; 32], vec![3; 32]]);
        // The record stays whole and still verifies.
        assert_eq!(
            count!(store, crate::store::schema::audit_log::table),
            audit_before
        );
        let chain = store.with(audit::verify).unwrap();
        assert_eq!(chain.first_broken, None, "the audit chain is whole");
        assert_eq!(
            i64::try_from(chain.records).unwrap(),
            audit_before,
            "every record was checked"
        );
        // Nothing more to do.
        let again = store
            .with(|c| run(c, cutoff, cutoff, 100, std::time::Duration::ZERO))
            .unwrap();
        assert_eq!(again.total(), 0);
    }

    /// OAuth requests, up to 256 KiB each, go 32 to a batch, and the run goes on while
    /// batches come back full.
    #[test]
    fn oauth_requests_go_in_small_batches() {
        use repo::oauth::{ClientRow, RequestRow, insert_client, insert_request};
        let (_d, store) = setup();
        store
            .with(|c| {
                insert_client(
                    c,
                    &ClientRow {
                        client_id: "cl".into(),
                        secret_hash: None,
                        name: "n".into(),
                        redirect_uris: "[]".into(),
                        service_user_id: None,
                        created_at: 0,
                    },
                )?;
                for i in 0..70u8 {
                    insert_request(
                        c,
                        &RequestRow {
                            handle_hash: vec![i; 32],
                            client_id: "cl".into(),
                            params: "{}".into(),
                            csrf_hash: None,
                            pushed: true,
                            expires_at: if i < 69 { NOW - 7200 } else { NOW },
                            created_at: 0,
                            signer_id: None,
                        },
                    )?;
                }
                Ok(())
            })
            .unwrap();
        let first = store.with(|c| batch(c, NOW - 3600, NOW)).unwrap();
        assert_eq!(first.oauth_requests, REQUEST_BATCH);
        assert!(first.full());
        let rest = store
            .with(|c| run(c, NOW - 3600, NOW, 100, std::time::Duration::ZERO))
            .unwrap();
        assert_eq!(rest.oauth_requests, 69 - REQUEST_BATCH);
        assert_eq!(
            count!(store, oauth_requests::table),
            1,
            "the live one stays"
        );
    }

    #[test]
    fn works_in_batches_that_never_split_a_sad() {
        let (_d, store) = setup();
        token(&store, 1, NOW + 3600);
        // 5 SADs of 200 digests: 1005 SADs and digests, more than one batch.
        for h in 20..25 {
            sad(&store, h, 1, NOW - 7200, 200);
        }
        let first = store.with(|c| batch(c, NOW - 3600, NOW)).unwrap();
        // Whole SADs until the batch is reached: 3 SADs (603 SADs and digests).
        assert_eq!((first.sads, first.sad_digests, first.digests), (3, 3, 600));
        assert!(first.full());
        assert_eq!(count!(store, sad_digests::table), 2);
        let rest = store
            .with(|c| run(c, NOW - 3600, NOW, 100, std::time::Duration::ZERO))
            .unwrap();
        assert_eq!((rest.sads, rest.sad_digests, rest.digests), (2, 2, 400));
        assert_eq!(count!(store, sads::table), 0);
        assert_eq!(count!(store, sad_digests::table), 0);
    }

    /// Asynchronous calls' answers go when they expire (`jobs_cutoff`), not `--keep-expired`
    /// later: until deleted they count against their caller's allowance.
    #[test]
    fn sign_jobs_go_when_they_expire() {
        use crate::store::repo::sign_jobs::{JobRow, insert_within};
        let (_d, store) = setup();
        for (id, expires_at) in [(1u8, NOW - 1), (2, NOW + 10)] {
            let row = JobRow {
                id_hash: vec![id; 32],
                user_id: "u".into(),
                credential_token_hash: None,
                status: Some(200),
                result: None,
                expires_at,
                created_at: 0,
                sealed_result: Some(vec![id; 40]),
            };
            assert!(store.with(|c| insert_within(c, &row, 10)).unwrap());
        }
        let purged = store.with(|c| batch(c, NOW - 3600, NOW)).unwrap();
        assert_eq!(purged.sign_jobs, 1);
        assert_eq!(count!(store, sign_jobs::table), 1);
    }
}
