//! SADs (signature activation data) from `credentials/authorize`: stored only as a hash, bound
//! to the token that asked for it, its user, its credential, its digest algorithm and the exact
//! digests authorized. Spending is one immediate transaction of conditional updates, so two
//! concurrent `signHash` calls can never both spend the same digest or the last signature.

use diesel::prelude::*;

use super::audit::{self, Event};
use crate::store::models::NewSad;
use crate::store::schema::{access_tokens, sad_hashes, sads};
use crate::store::{DbConn, StoreError, on_backend};

/// Why a SAD may not sign what was asked. Each maps to a CSC error in the service layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SadRefusal {
    /// Unknown, another user's, another credential's, or its token was revoked.
    Unknown,
    Expired,
    WrongHashAlgo,
    /// A digest that the SAD never authorized.
    NotAuthorized,
    /// A digest already signed with this SAD.
    AlreadySigned,
    /// No signatures left.
    Exhausted,
}

/// The request to spend a SAD.
pub struct Spend<'a> {
    pub sad_hash: &'a [u8],
    pub user_id: &'a str,
    pub credential_id: &'a str,
    pub hash_algo: &'a str,
    pub digests: &'a [Vec<u8>],
    pub now: i64,
}

enum TxError {
    Refused(SadRefusal),
    Db(diesel::result::Error),
}

/// Carry a store error through a diesel transaction (it rolls the transaction back).
fn store_to_diesel(e: StoreError) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(e.to_string().into())
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}

/// The digests a SAD authorizes, each not yet signed.
fn insert_digests(
    c: &mut DbConn,
    sad_hash: &[u8],
    digests: &[Vec<u8>],
) -> Result<(), diesel::result::Error> {
    let rows: Vec<_> = digests
        .iter()
        .map(|d| {
            (
                sad_hashes::sad_hash.eq(sad_hash),
                sad_hashes::digest.eq(d),
                sad_hashes::used.eq(false),
            )
        })
        .collect();
    // One multi-row INSERT; diesel builds batch inserts per backend, not for MultiConnection.
    let insert = diesel::insert_into(sad_hashes::table).values(&rows);
    match c {
        DbConn::Sqlite(c) => insert.execute(c)?,
        DbConn::Pg(c) => insert.execute(c)?,
    };
    Ok(())
}

/// Store a new SAD and its audit record in one transaction.
pub fn insert(conn: &mut DbConn, sad: &NewSad, event: &Event) -> Result<(), StoreError> {
    conn.write_tx(|c| {
        insert_in_tx(c, sad)?;
        audit::append(c, event)
    })
}

/// The rows of a new SAD, inside the caller's write transaction.
pub(crate) fn insert_in_tx(c: &mut DbConn, sad: &NewSad) -> Result<(), diesel::result::Error> {
    diesel::insert_into(sads::table)
        .values((
            sads::sad_hash.eq(&sad.sad_hash),
            sads::token_hash.eq(&sad.token_hash),
            sads::user_id.eq(&sad.user_id),
            sads::credential_id.eq(&sad.credential_id),
            sads::hash_algo.eq(&sad.hash_algo),
            sads::remaining.eq(sad.num_signatures),
            sads::expires_at.eq(sad.expires_at),
            sads::created_at.eq(sad.created_at),
        ))
        .execute(c)?;
    insert_digests(c, &sad.sad_hash, &sad.digests)
}

/// Check and spend, atomically, with its audit record. `Ok(Err(refusal))` means nothing was
/// spent (and nothing recorded: the caller records refusals).
pub fn spend(
    conn: &mut DbConn,
    req: &Spend<'_>,
    event: &Event,
) -> Result<Result<(), SadRefusal>, StoreError> {
    audited(conn, event, |c| spend_in_tx(c, req))
}

/// Run a SAD decision and its audit record in one immediate transaction; a refusal rolls
/// everything back and comes out as `Ok(Err(refusal))`. A decision that read the audit log's
/// tail on the way returns it (`Some`), and the record goes after it without reading it again.
fn audited(
    conn: &mut DbConn,
    event: &Event,
    decide: impl FnOnce(&mut DbConn) -> Result<Option<audit::Tail>, TxError>,
) -> Result<Result<(), SadRefusal>, StoreError> {
    let outcome = conn.write_tx(|c| {
        match decide(c)? {
            Some(tail) => audit::append_after(c, event, tail),
            None => audit::append(c, event),
        }
        .map_err(|e| TxError::Db(store_to_diesel(e)))
    });
    match outcome {
        Ok(()) => Ok(Ok(())),
        Err(TxError::Refused(r)) => Ok(Err(r)),
        Err(TxError::Db(e)) => Err(StoreError::from(e)),
    }
}

/// token_hash, user_id, credential_id, hash_algo, remaining, expires_at, and the token's
/// `revoked` (`None`: no such token).
type SadWithToken = (Vec<u8>, String, String, String, i32, i64, Option<bool>);

/// A SAD that passed the checks every use shares.
struct LiveSad {
    token_hash: Vec<u8>,
    hash_algo: String,
    remaining: i32,
}

/// The one place a SAD is judged usable: it exists, belongs to this user and credential, its
/// token is not revoked, and it has not expired. Another user's SAD looks unknown.
fn load_live(
    c: &mut DbConn,
    sad_hash: &[u8],
    user: &str,
    credential: &str,
    now: i64,
) -> Result<LiveSad, TxError> {
    let refuse = |r| Err(TxError::Refused(r));
    // The SAD with its token's revocation flag, in one statement (no token row: revoked).
    let row: Option<SadWithToken> = on_backend!(c, |c| sads::table
        .left_join(access_tokens::table.on(access_tokens::token_hash.eq(sads::token_hash)))
        .filter(sads::sad_hash.eq(sad_hash))
        .select((
            sads::token_hash,
            sads::user_id,
            sads::credential_id,
            sads::hash_algo,
            sads::remaining,
            sads::expires_at,
            access_tokens::revoked.nullable(),
        ))
        .get_result(c)
        .optional())?;
    let Some((token_hash, user_id, credential_id, hash_algo, remaining, expires_at, revoked)) = row
    else {
        return refuse(SadRefusal::Unknown);
    };
    if user_id != user || credential_id != credential || revoked.unwrap_or(true) {
        return refuse(SadRefusal::Unknown);
    }
    if expires_at <= now {
        return refuse(SadRefusal::Expired);
    }
    Ok(LiveSad {
        token_hash,
        hash_algo,
        remaining,
    })
}

/// Spend; `Some(tail)` when the audit log's tail was read on the way.
fn spend_in_tx(c: &mut DbConn, req: &Spend<'_>) -> Result<Option<audit::Tail>, TxError> {
    let refuse = |r| Err(TxError::Refused(r));
    let LiveSad { hash_algo, .. } =
        load_live(c, req.sad_hash, req.user_id, req.credential_id, req.now)?;
    if hash_algo != req.hash_algo {
        return refuse(SadRefusal::WrongHashAlgo);
    }
    // One digest (the usual signHash): statements kept prepared (`hot`); when the mark marks
    // nothing the row is as it was, so its state says why.
    if let [digest] = req.digests {
        // PostgreSQL: mark, count and the audit tail in one statement — each statement is a
        // round trip to the server, about 0.1 ms on a small machine.
        if let DbConn::Pg(pg) = c {
            let (marked, taken, seq, hash): (i64, i64, Option<i64>, Option<Vec<u8>>) =
                hot::SpendOnePg {
                    sad_hash: req.sad_hash,
                    digest,
                }
                .get_result(pg)?;
            if marked != 1 {
                return refuse(digest_refusal(c, req.sad_hash, digest)?);
            }
            if taken != 1 {
                return refuse(SadRefusal::Exhausted);
            }
            return Ok(Some(seq.zip(hash)));
        }
        let mark = hot::MarkDigest {
            sad_hash: req.sad_hash,
            digest,
        };
        let marked = on_backend!(&mut *c, |c| mark.execute(c))?;
        if marked != 1 {
            return refuse(digest_refusal(c, req.sad_hash, digest)?);
        }
        return take_count(c, req).map(|()| None);
    }
    // Every digest in one statement (a signHash may carry up to `multisign` of them); the
    // refusal path alone looks at which digest failed and why.
    let mark = diesel::update(
        sad_hashes::table
            .filter(sad_hashes::sad_hash.eq(req.sad_hash))
            .filter(sad_hashes::digest.eq_any(req.digests))
            .filter(sad_hashes::used.eq(false)),
    )
    .set(sad_hashes::used.eq(true))
    .returning(sad_hashes::digest);
    let marked: Vec<Vec<u8>> = match c {
        DbConn::Sqlite(c) => mark.get_results(c)?,
        DbConn::Pg(c) => mark.get_results(c)?,
    };
    if marked.len() != req.digests.len() {
        // The first digest (in request order) this statement did not mark: known to the SAD
        // means signed before, unknown means never authorized. The transaction rolls back.
        for digest in req.digests {
            if marked.contains(digest) {
                continue;
            }
            return refuse(digest_refusal(c, req.sad_hash, digest)?);
        }
        return refuse(SadRefusal::NotAuthorized);
    }
    take_count(c, req).map(|()| None)
}

/// Why a digest could not be marked: known to the SAD means signed before, unknown means never
/// authorized.
fn digest_refusal(c: &mut DbConn, sad_hash: &[u8], digest: &[u8]) -> Result<SadRefusal, TxError> {
    let exists: Option<bool> = sad_hashes::table
        .find((sad_hash, digest))
        .select(sad_hashes::used)
        .get_result(c)
        .optional()?;
    Ok(if exists.is_some() {
        SadRefusal::AlreadySigned
    } else {
        SadRefusal::NotAuthorized
    })
}

/// Take the request's number of signatures off the SAD's count.
fn take_count(c: &mut DbConn, req: &Spend<'_>) -> Result<(), TxError> {
    let refuse = |r| Err(TxError::Refused(r));
    let n = i32::try_from(req.digests.len()).unwrap_or(i32::MAX);
    let take = hot::TakeCount {
        sad_hash: req.sad_hash,
        n,
    };
    let spent = on_backend!(c, |c| take.execute(c))?;
    if spent == 0 {
        return refuse(SadRefusal::Exhausted);
    }
    Ok(())
}

/// Swap a live SAD for a new one (`credentials/extendTransaction`): same token, user and
/// credential, never more signatures than the old one had left; the old SAD dies in the same
/// transaction. Without new digests the unused ones carry over.
pub struct Extend<'a> {
    pub old_sad_hash: &'a [u8],
    pub new_sad_hash: &'a [u8],
    pub user_id: &'a str,
    pub credential_id: &'a str,
    pub now: i64,
    pub expires_at: i64,
    /// New digest algorithm name and digests, if the client binds new hashes.
    pub rebind: Option<(&'a str, &'a [Vec<u8>])>,
}

pub fn extend(
    conn: &mut DbConn,
    req: &Extend<'_>,
    event: &Event,
) -> Result<Result<(), SadRefusal>, StoreError> {
    audited(conn, event, |c| extend_in_tx(c, req).map(|()| None))
}

fn extend_in_tx(c: &mut DbConn, req: &Extend<'_>) -> Result<(), TxError> {
    let refuse = |r| Err(TxError::Refused(r));
    let LiveSad {
        token_hash,
        hash_algo,
        remaining,
    } = load_live(c, req.old_sad_hash, req.user_id, req.credential_id, req.now)?;
    if remaining <= 0 {
        return refuse(SadRefusal::Exhausted);
    }
    let (algo, digests): (String, Vec<Vec<u8>>) = match req.rebind {
        Some((algo, digests)) => (algo.to_string(), digests.to_vec()),
        None => (
            hash_algo,
            sad_hashes::table
                .filter(sad_hashes::sad_hash.eq(req.old_sad_hash))
                .filter(sad_hashes::used.eq(false))
                .select(sad_hashes::digest)
                .load(c)?,
        ),
    };
    let count = i32::try_from(digests.len()).unwrap_or(i32::MAX);
    if count > remaining || digests.is_empty() {
        return refuse(SadRefusal::Exhausted);
    }
    diesel::update(sads::table.find(req.old_sad_hash))
        .set(sads::remaining.eq(0))
        .execute(c)?;
    diesel::insert_into(sads::table)
        .values((
            sads::sad_hash.eq(req.new_sad_hash),
            sads::token_hash.eq(&token_hash),
            sads::user_id.eq(req.user_id),
            sads::credential_id.eq(req.credential_id),
            sads::hash_algo.eq(&algo),
            sads::remaining.eq(count),
            sads::expires_at.eq(req.expires_at),
            sads::created_at.eq(req.now),
        ))
        .execute(c)?;
    insert_digests(c, req.new_sad_hash, &digests)?;
    Ok(())
}

/// Give back what `spend` took when the token produced no signature (a device error after the
/// SAD was spent): the digests become unused again and the count goes back up, in one write
/// transaction with its audit record. Spending first and refunding on failure keeps the
/// double-spend guarantee (a concurrent caller never sees more than was authorized) without
/// making the signer authorize again because the HSM hiccupped. A SAD that is gone meanwhile
/// (expired and purged, swapped by extendTransaction) is left alone. The audit record's detail
/// gets `"refunded": true|false`. Returns whether it refunded.
pub fn refund(conn: &mut DbConn, req: &Spend<'_>, event: &Event) -> Result<bool, StoreError> {
    let outcome = conn.write_tx(|c| {
        let n = i32::try_from(req.digests.len()).unwrap_or(i32::MAX);
        let restored = diesel::update(
            sads::table
                .filter(sads::sad_hash.eq(req.sad_hash))
                .filter(sads::user_id.eq(req.user_id))
                .filter(sads::credential_id.eq(req.credential_id)),
        )
        .set(sads::remaining.eq(sads::remaining + n))
        .execute(c)?;
        if restored == 1 {
            for digest in req.digests {
                diesel::update(
                    sad_hashes::table
                        .filter(sad_hashes::sad_hash.eq(req.sad_hash))
                        .filter(sad_hashes::digest.eq(digest)),
                )
                .set(sad_hashes::used.eq(false))
                .execute(c)?;
            }
        }
        let mut event = event.clone();
        if let Some(detail) = event.detail.as_object_mut() {
            detail.insert("refunded".into(), serde_json::Value::Bool(restored == 1));
        }
        audit::append(c, &event).map_err(store_to_diesel)?;
        Ok::<_, diesel::result::Error>(restored == 1)
    });
    Ok(outcome?)
}

/// Signatures left on a SAD (diagnostics and tests).
pub fn remaining(conn: &mut DbConn, sad_hash: &[u8]) -> Result<Option<i32>, StoreError> {
    Ok(sads::table
        .find(sad_hash)
        .select(sads::remaining)
        .get_result(conn)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::models::AccessTokenRow;
    use crate::store::repo::credentials::tests::{sample, user};
    use crate::store::repo::{credentials, tokens, users};
    use crate::store::tests::temp_store;

    fn setup() -> (crate::store::tests::TempDb, Store) {
        let (d, store) = temp_store();
        store
            .with(|c| {
                users::insert(c, &user("u1"))?;
                users::insert(c, &user("u2"))?;
                credentials::insert(c, &sample("c1", "u1"))?;
                credentials::insert(c, &sample("c2", "u1"))?;
                tokens::insert(
                    c,
                    &AccessTokenRow {
                        token_hash: vec![7; 32],
                        user_id: "u1".into(),
                        expires_at: 1_000,
                        revoked: false,
                        created_at: 0,
                        scope: crate::store::models::SCOPE_SERVICE.into(),
                    },
                )?;
                insert(
                    c,
                    &NewSad {
                        sad_hash: vec![5; 32],
                        token_hash: vec![7; 32],
                        user_id: "u1".into(),
                        credential_id: "c1".into(),
                        hash_algo: "sha256".into(),
                        num_signatures: 2,
                        expires_at: 500,
                        created_at: 0,
                        digests: vec![vec![1; 32], vec![2; 32]],
                    },
                    &ev(),
                )
            })
            .unwrap();
        (d, store)
    }

    fn try_spend(
        store: &Store,
        user: &str,
        cred: &str,
        alg: &str,
        digests: &[Vec<u8>],
        now: i64,
    ) -> Result<(), SadRefusal> {
        store
            .with(|c| {
                spend(
                    c,
                    &Spend {
                        sad_hash: &[5; 32],
                        user_id: user,
                        credential_id: cred,
                        hash_algo: alg,
                        digests,
                        now,
                    },
                    &ev(),
                )
            })
            .unwrap()
    }

    /// Spend one of the setup SAD's digests on `conn` (user u1, credential c1): it must work.
    fn spend_digest(conn: &mut DbConn, digest: Vec<u8>) {
        let spent = spend(
            conn,
            &Spend {
                sad_hash: &[5; 32],
                user_id: "u1",
                credential_id: "c1",
                hash_algo: "sha256",
                digests: &[digest],
                now: 1,
            },
            &ev(),
        );
        assert_eq!(spent.unwrap(), Ok(()));
    }

    fn ev() -> Event {
        Event {
            at: 0,
            actor: "u1".into(),
            action: "test",
            credential_id: None,
            outcome: "ok",
            detail: serde_json::json!({}),
        }
    }

    #[test]
    fn the_hot_updates_are_prepared_once_per_connection() {
        use diesel::connection::{Connection, InstrumentationEvent};
        use std::sync::{Arc, Mutex};
        let (_d, store) = setup();
        let mut conn = store.conn().unwrap();
        let seen = Arc::new(Mutex::new(Vec::<(bool, String)>::new()));
        let log = Arc::clone(&seen);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            let entry = match event {
                InstrumentationEvent::CacheQuery { sql, .. } => (true, sql.to_string()),
                InstrumentationEvent::StartQuery { query, .. } => (false, query.to_string()),
                _ => return,
            };
            log.lock().unwrap().push(entry);
        });
        for digest in [vec![1; 32], vec![2; 32]] {
            spend_digest(&mut conn, digest);
        }
        let seen = seen.lock().unwrap();
        // PostgreSQL runs both as one statement (`SpendOnePg`).
        let statements: &[&str] = match &**conn {
            DbConn::Sqlite(_) => &["UPDATE sad_hashes", "UPDATE sads"],
            DbConn::Pg(_) => &["WITH marked AS (UPDATE sad_hashes"],
        };
        for table in statements {
            let ran = seen
                .iter()
                .filter(|(cached, sql)| !cached && sql.starts_with(table));
            let prepared = seen
                .iter()
                .filter(|(cached, sql)| *cached && sql.starts_with(table));
            assert_eq!(ran.count(), 2, "{table} runs once per spend: {seen:?}");
            assert_eq!(
                prepared.count(),
                1,
                "{table} is prepared for the cache once"
            );
        }
    }

    fn try_refund(store: &Store, user: &str, cred: &str, digests: &[Vec<u8>]) -> bool {
        store
            .with(|c| {
                refund(
                    c,
                    &Spend {
                        sad_hash: &[5; 32],
                        user_id: user,
                        credential_id: cred,
                        hash_algo: "sha256",
                        digests,
                        now: 1,
                    },
                    &ev(),
                )
            })
            .unwrap()
    }

    #[test]
    fn refund_gives_back_exactly_what_was_spent() {
        let (_d, store) = setup();
        let one = vec![vec![1; 32]];
        assert_eq!(try_spend(&store, "u1", "c1", "sha256", &one, 1), Ok(()));
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &one, 1),
            Err(SadRefusal::AlreadySigned)
        );
        // someone else's refund request touches nothing
        assert!(!try_refund(&store, "u2", "c1", &one));
        assert!(!try_refund(&store, "u1", "c2", &one));
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(1));
        assert!(try_refund(&store, "u1", "c1", &one));
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(2));
        // the digest can be signed again, and the count still caps the total
        let both = vec![vec![1; 32], vec![2; 32]];
        assert_eq!(try_spend(&store, "u1", "c1", "sha256", &both, 1), Ok(()));
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(0));
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &one, 1),
            Err(SadRefusal::AlreadySigned)
        );
        let audited: i64 = store
            .with(|c| {
                Ok(crate::store::schema::audit_log::table
                    .count()
                    .get_result(c)?)
            })
            .unwrap();
        // the SAD's issue, 2 spends and 3 refund attempts (refused spends roll back theirs)
        assert_eq!(audited, 6);
    }

    #[test]
    fn refusals_spend_nothing() {
        let (_d, store) = setup();
        let one = vec![vec![1; 32]];
        assert_eq!(
            try_spend(&store, "u2", "c1", "sha256", &one, 1),
            Err(SadRefusal::Unknown)
        );
        assert_eq!(
            try_spend(&store, "u1", "c2", "sha256", &one, 1),
            Err(SadRefusal::Unknown)
        );
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &one, 500),
            Err(SadRefusal::Expired)
        );
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha384", &one, 1),
            Err(SadRefusal::WrongHashAlgo)
        );
        // an unauthorized digest after an authorized one rolls back the first mark
        let mixed = vec![vec![1; 32], vec![3; 32]];
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &mixed, 1),
            Err(SadRefusal::NotAuthorized)
        );
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(2));
        assert_eq!(try_spend(&store, "u1", "c1", "sha256", &one, 1), Ok(()));
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(1));
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &one, 1),
            Err(SadRefusal::AlreadySigned)
        );
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &[vec![2; 32]], 1),
            Ok(())
        );
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(0));
    }

    /// A digest marked while the count is gone (a SAD swapped by extendTransaction keeps its
    /// unused digests, with nothing left to spend) is refused, and the mark does not stay.
    #[test]
    fn a_mark_without_a_count_is_rolled_back() {
        let (_d, store) = setup();
        store
            .with(|c| {
                Ok(diesel::update(sads::table.find(&[5u8; 32][..]))
                    .set(sads::remaining.eq(0))
                    .execute(c)?)
            })
            .unwrap();
        let one = vec![vec![1; 32]];
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &one, 1),
            Err(SadRefusal::Exhausted)
        );
        let used: Vec<bool> = store
            .with(|c| {
                Ok(sad_hashes::table
                    .filter(sad_hashes::sad_hash.eq(&[5u8; 32][..]))
                    .select(sad_hashes::used)
                    .load(c)?)
            })
            .unwrap();
        assert_eq!(used, [false, false]);
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(0));
    }

    /// What one 1-digest spend sends to the database, statement by statement: on PostgreSQL
    /// each is a round trip, so the write transaction is begun and locked in one, the SAD is
    /// checked in one, marked, counted and the audit tail read in one, then the record and the
    /// commit. The chain it writes verifies.
    #[test]
    fn what_one_spend_sends_and_the_chain_it_writes() {
        use diesel::connection::{Connection, InstrumentationEvent};
        use std::sync::{Arc, Mutex};
        let (_d, store) = setup();
        let mut conn = store.conn().unwrap();
        let started = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = Arc::clone(&started);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                log.lock().unwrap().push(query.to_string());
            }
        });
        for digest in [vec![1; 32], vec![2; 32]] {
            started.lock().unwrap().clear();
            spend_digest(&mut conn, digest);
            let sent = started.lock().unwrap().clone();
            let expected = match &**conn {
                DbConn::Pg(_) => vec![
                    "BEGIN; SELECT pg_advisory_xact_lock",
                    "SELECT",
                    "WITH marked",
                    "INSERT INTO \"audit_log\"",
                    "COMMIT",
                ],
                DbConn::Sqlite(_) => vec![
                    "BEGIN IMMEDIATE",
                    "SELECT",
                    "UPDATE sad_hashes",
                    "UPDATE sads",
                    "SELECT",
                    "INSERT INTO `audit_log`",
                    "COMMIT",
                ],
            };
            assert_eq!(sent.len(), expected.len(), "{sent:#?}");
            for (s, e) in sent.iter().zip(&expected) {
                assert!(s.starts_with(e), "{s} is not {e}: {sent:#?}");
            }
        }
        let chain = audit::verify(&mut conn).unwrap();
        assert_eq!(chain.first_broken, None);
        assert_eq!(chain.records, 3, "the SAD's record and two spends");
        assert_eq!(remaining(&mut conn, &[5; 32]).unwrap(), Some(0));
    }

    #[test]
    fn revoked_token_kills_its_sads() {
        let (_d, store) = setup();
        assert!(store.with(|c| tokens::revoke(c, "u1", &[7; 32])).unwrap());
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &[vec![1; 32]], 1),
            Err(SadRefusal::Unknown)
        );
    }

    #[test]
    fn concurrent_spends_of_one_digest_succeed_once() {
        let (_d, store) = setup();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = store.clone();
                std::thread::spawn(move || try_spend(&s, "u1", "c1", "sha256", &[vec![1; 32]], 1))
            })
            .collect();
        let ok = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(Result::is_ok)
            .count();
        assert_eq!(ok, 1);
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(1));
    }
}

/// The two UPDATEs of every signHash as statements diesel keeps prepared. Diesel never caches
/// its own `UPDATE` (a changeset's SQL may vary with its values), so the hot path would parse
/// both again on every call; these have fixed SQL and a static query id, so the statement
/// cache finds them by type. Same SQL on SQLite and PostgreSQL (placeholders are diesel's),
/// and on PostgreSQL both in one statement (`SpendOnePg`).
mod hot {
    use diesel::backend::Backend;
    use diesel::pg::Pg;
    use diesel::prelude::*;
    use diesel::query_builder::{AstPass, QueryFragment, QueryId};
    use diesel::serialize::ToSql;
    use diesel::sql_types::{BigInt, Binary, Bool, Integer};

    /// `UPDATE sad_hashes SET used = TRUE WHERE sad_hash = ? AND digest = ? AND used = FALSE`
    pub struct MarkDigest<'a> {
        pub sad_hash: &'a [u8],
        pub digest: &'a [u8],
    }

    impl QueryId for MarkDigest<'_> {
        type QueryId = MarkDigest<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl<DB> QueryFragment<DB> for MarkDigest<'_>
    where
        DB: Backend + diesel::sql_types::HasSqlType<Binary> + diesel::sql_types::HasSqlType<Bool>,
        [u8]: ToSql<Binary, DB>,
        bool: ToSql<Bool, DB>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
            out.push_sql("UPDATE sad_hashes SET used = ");
            out.push_bind_param::<Bool, _>(&true)?;
            out.push_sql(" WHERE sad_hash = ");
            out.push_bind_param::<Binary, _>(self.sad_hash)?;
            out.push_sql(" AND digest = ");
            out.push_bind_param::<Binary, _>(self.digest)?;
            out.push_sql(" AND used = ");
            out.push_bind_param::<Bool, _>(&false)?;
            Ok(())
        }
    }

    impl<C> RunQueryDsl<C> for MarkDigest<'_> {}

    /// `UPDATE sads SET remaining = remaining - n WHERE sad_hash = ? AND remaining >= n`
    pub struct TakeCount<'a> {
        pub sad_hash: &'a [u8],
        pub n: i32,
    }

    impl QueryId for TakeCount<'_> {
        type QueryId = TakeCount<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl<DB> QueryFragment<DB> for TakeCount<'_>
    where
        DB: Backend
            + diesel::sql_types::HasSqlType<Binary>
            + diesel::sql_types::HasSqlType<Integer>,
        [u8]: ToSql<Binary, DB>,
        i32: ToSql<Integer, DB>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
            out.push_sql("UPDATE sads SET remaining = remaining - ");
            out.push_bind_param::<Integer, _>(&self.n)?;
            out.push_sql(" WHERE sad_hash = ");
            out.push_bind_param::<Binary, _>(self.sad_hash)?;
            out.push_sql(" AND remaining >= ");
            out.push_bind_param::<Integer, _>(&self.n)?;
            Ok(())
        }
    }

    impl<C> RunQueryDsl<C> for TakeCount<'_> {}

    /// PostgreSQL only: `MarkDigest` and a `TakeCount` of one that runs only if the digest was
    /// marked, as data-modifying CTEs of one statement, which also reads the audit log's tail
    /// (the caller holds the write lock, so the tail stays the newest until its commit).
    /// Returns (digests marked, SADs counted down, tail seq, tail hash). A refusal rolls the
    /// transaction back, so a mark without a count never stays.
    pub struct SpendOnePg<'a> {
        pub sad_hash: &'a [u8],
        pub digest: &'a [u8],
    }

    impl QueryId for SpendOnePg<'_> {
        type QueryId = SpendOnePg<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl diesel::query_builder::Query for SpendOnePg<'_> {
        type SqlType = (
            BigInt,
            BigInt,
            diesel::sql_types::Nullable<BigInt>,
            diesel::sql_types::Nullable<Binary>,
        );
    }

    impl QueryFragment<Pg> for SpendOnePg<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql("WITH marked AS (UPDATE sad_hashes SET used = TRUE WHERE sad_hash = ");
            out.push_bind_param::<Binary, _>(self.sad_hash)?;
            out.push_sql(" AND digest = ");
            out.push_bind_param::<Binary, _>(self.digest)?;
            out.push_sql(
                " AND used = FALSE RETURNING 1), \
                 taken AS (UPDATE sads SET remaining = remaining - 1 WHERE sad_hash = ",
            );
            out.push_bind_param::<Binary, _>(self.sad_hash)?;
            out.push_sql(
                " AND remaining >= 1 AND EXISTS (SELECT 1 FROM marked) RETURNING 1) \
                 SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM taken), \
                 tail.seq, tail.hash FROM (SELECT 1) AS one LEFT JOIN audit_log AS tail \
                 ON tail.seq = (SELECT max(seq) FROM audit_log)",
            );
            Ok(())
        }
    }

    impl<C> RunQueryDsl<C> for SpendOnePg<'_> {}
}
