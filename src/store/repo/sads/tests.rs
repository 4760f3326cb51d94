//! Tests of the SAD store: spending, refusals, refunds, extension, revocation, the statements a
//! spend sends, and concurrent spends; `digest_lists` has those of SADs with many digests.

use super::*;
use crate::clock::FixedClock;
use crate::store::Store;
use crate::store::models::AccessTokenRow;
use crate::store::repo::credentials::tests::{sample, user};
use crate::store::repo::{credentials, tokens, users};
use crate::store::tests::temp_store;

fn setup() -> (crate::store::tests::TempDb, Store) {
    let (d, store) = temp_store();
    fill(&store, vec![vec![1; 32], vec![2; 32]]);
    (d, store)
}

/// Users u1 and u2, u1's credentials c1 and c2, u1's token [7; 32], and SAD [5; 32] for c1
/// with `digests` and as many signatures, until 500.
fn fill(store: &Store, digests: Vec<Vec<u8>>) {
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
            insert(c, &new_sad(5, digests), &ev())
        })
        .unwrap();
}

/// SAD `[hash; 32]` of user u1 for c1 with token [7; 32], `digests` and as many
/// signatures, until 500.
fn new_sad(hash: u8, digests: Vec<Vec<u8>>) -> NewSad {
    NewSad {
        sad_hash: vec![hash; 32],
        token_hash: vec![7; 32],
        user_id: "u1".into(),
        credential_id: "c1".into(),
        hash_algo: "sha256".into(),
        num_signatures: i32::try_from(digests.len()).unwrap(),
        expires_at: 500,
        created_at: 0,
        digests,
    }
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
                    clock: &FixedClock(now),
                    max_failures: 5,
                },
                &ev(),
            )
        })
        .unwrap()
}

/// The setup SAD's `used` flags.
fn used_flags(store: &Store) -> Vec<u8> {
    store
        .with(|c| {
            Ok(sads::table
                .find(&[5u8; 32][..])
                .select(sads::used)
                .get_result(c)?)
        })
        .unwrap()
}

/// Spend `digests` of SAD `[sad; 32]` as user u1 with credential c1 (SHA-256) at `now`.
fn spend_of(store: &Store, sad: u8, digests: &[Vec<u8>], now: i64) -> Result<(), SadRefusal> {
    store
        .with(|c| {
            spend(
                c,
                &Spend {
                    sad_hash: &[sad; 32],
                    user_id: "u1",
                    credential_id: "c1",
                    hash_algo: "sha256",
                    digests,
                    clock: &FixedClock(now),
                    max_failures: 5,
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
            clock: &FixedClock(1),
            max_failures: 5,
        },
        &ev(),
    );
    assert_eq!(spent.unwrap(), Ok(()));
}

/// A disable or a lock that committed before the spend stops it, whatever was read of the
/// credential before (the row is read with the SAD, under the write lock); nothing is spent,
/// and the SAD signs again once the credential is usable.
#[test]
fn a_disabled_or_locked_credential_spends_nothing() {
    let (_d, store) = setup();
    let set = |sql: &str| {
        store
            .with(|c| {
                use diesel::connection::SimpleConnection as _;
                Ok(crate::store::on_backend!(c, |c| c.batch_execute(sql))?)
            })
            .unwrap()
    };
    set("UPDATE credentials SET status = 'disabled' WHERE id = 'c1'");
    assert_eq!(
        spend_of(&store, 5, &[vec![1; 32]], 1),
        Err(SadRefusal::CredentialDisabled)
    );
    set("UPDATE credentials SET status = 'enabled', failed_auths = 5 WHERE id = 'c1'");
    assert_eq!(
        spend_of(&store, 5, &[vec![1; 32]], 1),
        Err(SadRefusal::CredentialLocked)
    );
    set("UPDATE credentials SET failed_auths = 4 WHERE id = 'c1'");
    assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(2));
    assert_eq!(spend_of(&store, 5, &[vec![1; 32]], 1), Ok(()));
}

/// A test's audit event.
pub(crate) fn ev() -> Event {
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
    // PostgreSQL runs it with the audit record as one statement (`SpendRecordPg`).
    let statements: &[&str] = match &**conn {
        DbConn::Sqlite(_) => &["UPDATE sads SET used"],
        DbConn::Pg(_) => &["WITH taken AS (UPDATE sads SET used"],
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
                    clock: &FixedClock(1),
                    max_failures: 5,
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

/// A digest of a SAD whose count is gone (a SAD swapped by extendTransaction keeps its
/// unused digests, with nothing left to spend) is refused, and stays unsigned.
#[test]
fn a_mark_without_a_count_is_refused() {
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
    let used = used_flags(&store);
    assert_eq!(used, [0, 0]);
    assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(0));
}

/// What a spend sends to the database, statement by statement: on PostgreSQL each is a
/// round trip, so the write transaction is begun and locked in one, the SAD read with the
/// audit log's tail in one (for one digest the digest is found in the server, for several
/// the list is read), its flags and count written with the audit record in one, then the
/// commit. The chain it writes verifies.
#[test]
fn what_a_spend_sends_and_the_chain_it_writes() {
    use diesel::connection::{Connection, InstrumentationEvent};
    use std::sync::{Arc, Mutex};
    let (_d, store) = temp_store();
    fill(&store, (1..=6).map(|i| vec![i; 32]).collect());
    let mut conn = store.conn().unwrap();
    let started = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&started);
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            log.lock().unwrap().push(query.to_string());
        }
    });
    let calls: [&[Vec<u8>]; 3] = [
        &[vec![1; 32]],
        &[vec![2; 32]],
        &[vec![5; 32], vec![3; 32], vec![4; 32]],
    ];
    for digests in calls {
        started.lock().unwrap().clear();
        let spent = spend(
            &mut conn,
            &Spend {
                sad_hash: &[5; 32],
                user_id: "u1",
                credential_id: "c1",
                hash_algo: "sha256",
                digests,
                clock: &FixedClock(1),
                max_failures: 5,
            },
            &ev(),
        );
        assert_eq!(spent.unwrap(), Ok(()));
        let sent = started.lock().unwrap().clone();
        // One digest on PostgreSQL: found in the server rather than by reading the list;
        // SQLite reads the list (its instr() is slower than the read), and so does every
        // spend of several.
        let (find, not) = match (&**conn, digests.len()) {
            (DbConn::Pg(_), 1) => ("position(", "d.digests, tail"),
            (DbConn::Pg(_), _) => ("d.digests, tail.seq", "position("),
            (DbConn::Sqlite(_), _) => ("`sad_digests`.`digests`", "instr("),
        };
        let check = sent.get(1).map(String::as_str).unwrap_or_default();
        assert!(check.contains(find) && !check.contains(not), "{sent:#?}");
        let expected = match &**conn {
            DbConn::Pg(_) => vec![
                "BEGIN; SELECT pg_advisory_xact_lock",
                "SELECT",
                "WITH taken",
                "COMMIT",
            ],
            DbConn::Sqlite(_) => vec![
                "BEGIN IMMEDIATE",
                "SELECT",
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
        if let DbConn::Pg(_) = &**conn {
            let spend = sent.get(2).map(String::as_str).unwrap_or_default();
            assert!(spend.contains("INSERT INTO audit_log"), "{sent:#?}");
        }
    }
    let chain = audit::verify(&mut conn).unwrap();
    assert_eq!(chain.first_broken, None);
    assert_eq!(chain.records, 4, "the SAD's record and three spends");
    assert_eq!(remaining(&mut conn, &[5; 32]).unwrap(), Some(1));
    assert_eq!(
        used_flags(&store),
        [1, 1, 1, 1, 1, 0],
        "exactly the spent digests are marked"
    );
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
    // One record for the one spend (refusals write none here), chained.
    let chain = store.with(audit::verify).unwrap();
    assert_eq!((chain.records, chain.first_broken), (2, None));
}

mod digest_lists;
