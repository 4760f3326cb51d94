//! Tests of SADs with many digests: many judged at once in request order, the move between a
//! row per digest and a row of digests per SAD, and a digest straddling two of the list.

use super::*;

/// A SAD of 100 digests, spent many at a time: each call is judged digest by digest in its
/// own order (the first one never authorized or already signed decides), a refusal spends
/// nothing, a refund gives back exactly its digests, and extendTransaction carries the
/// unsigned ones over.
#[test]
fn many_digests_at_once_are_judged_in_request_order() {
    let (_d, store) = setup();
    let digest = |i: u8| vec![i; 32];
    let all: Vec<Vec<u8>> = (100..200).map(digest).collect();
    store
        .with(|c| insert(c, &new_sad(6, all.clone()), &ev()))
        .unwrap();
    let left = || store.with(|c| remaining(c, &[6; 32])).unwrap();
    // Every other digest, from the end: 50 at once.
    let odd: Vec<Vec<u8>> = all.iter().rev().step_by(2).cloned().collect();
    assert_eq!(spend_of(&store, 6, &odd, 1), Ok(()));
    assert_eq!(left(), Some(50));
    // An unknown digest before a signed one: not authorized; the other way round: signed.
    let mut unknown_first = vec![all[0].clone(), digest(7), odd[3].clone()];
    unknown_first.extend(all[10..20].iter().step_by(2).cloned());
    assert_eq!(
        spend_of(&store, 6, &unknown_first, 1),
        Err(SadRefusal::NotAuthorized)
    );
    let signed_first: Vec<Vec<u8>> = vec![all[0].clone(), odd[3].clone(), digest(7)];
    assert_eq!(
        spend_of(&store, 6, &signed_first, 1),
        Err(SadRefusal::AlreadySigned)
    );
    // The same digest twice in one call: the second is already signed.
    let twice = vec![all[2].clone(), all[4].clone(), all[2].clone()];
    assert_eq!(
        spend_of(&store, 6, &twice, 1),
        Err(SadRefusal::AlreadySigned)
    );
    // A digest of another length is not one the SAD holds.
    assert_eq!(
        spend_of(&store, 6, &[vec![100; 48]], 1),
        Err(SadRefusal::NotAuthorized)
    );
    assert_eq!(left(), Some(50), "refusals spend nothing");
    let even: Vec<Vec<u8>> = all.iter().step_by(2).cloned().collect();
    // A refund of ten of the signed ones makes exactly those signable again.
    let some_odd = &odd[..10];
    assert!(
        store
            .with(|c| refund(
                c,
                &Spend {
                    sad_hash: &[6; 32],
                    user_id: "u1",
                    credential_id: "c1",
                    hash_algo: "sha256",
                    digests: some_odd,
                    clock: &FixedClock(1),
                    max_failures: 5,
                },
                &ev(),
            ))
            .unwrap()
    );
    assert_eq!(left(), Some(60));
    assert_eq!(
        spend_of(&store, 6, &odd[9..11], 1),
        Err(SadRefusal::AlreadySigned)
    );
    assert_eq!(spend_of(&store, 6, &odd[..5], 1), Ok(()));
    // extendTransaction: the 55 unsigned digests (the even ones and five odd) carry over.
    let extended = store
        .with(|c| {
            extend(
                c,
                &Extend {
                    old_sad_hash: &[6; 32],
                    new_sad_hash: &[8; 32],
                    user_id: "u1",
                    credential_id: "c1",
                    clock: &FixedClock(2),
                    max_failures: 5,
                    ttl: 598,
                    rebind: None,
                },
                &ev(),
            )
        })
        .unwrap();
    assert_eq!(extended, Ok(()));
    assert_eq!(left(), Some(RETIRED));
    // A call that spent from the old SAD before the trade and failed in the token gets no
    // refund: the budget went to the new SAD, and the old one stays dead.
    let late = Spend {
        sad_hash: &[6; 32],
        user_id: "u1",
        credential_id: "c1",
        hash_algo: "sha256",
        digests: &odd[..5],
        clock: &FixedClock(2),
        max_failures: 5,
    };
    assert!(!store.with(|c| refund(c, &late, &ev())).unwrap());
    assert_eq!(left(), Some(RETIRED));
    assert_eq!(
        spend_of(&store, 6, &odd[..1], 2),
        Err(SadRefusal::AlreadySigned)
    );
    assert_eq!(
        spend_of(&store, 6, &even[..1], 2),
        Err(SadRefusal::Exhausted)
    );
    assert_eq!(store.with(|c| remaining(c, &[8; 32])).unwrap(), Some(55));
    // the new SAD carries the digests signed before the trade, as signed
    assert_eq!(
        spend_of(&store, 8, &odd[..1], 3),
        Err(SadRefusal::AlreadySigned)
    );
    assert_eq!(spend_of(&store, 8, &odd[5..10], 3), Ok(()));
    assert_eq!(spend_of(&store, 8, &even, 3), Ok(()));
    assert_eq!(store.with(|c| remaining(c, &[8; 32])).unwrap(), Some(0));
}

/// The move from a row per digest to a row of digests per SAD (migration 2026-12-06), both
/// ways, with live SADs: after going back, each digest is a row again, signed or not; a SAD
/// written in the old layout and one that went back and forth spend as they should after
/// the move.
#[test]
fn live_sads_survive_the_move_to_a_row_of_digests_and_back() {
    use diesel::sql_types::{Bool, Integer};
    use diesel_migrations::MigrationHarness;
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = match crate::store::tests::test_pg_url() {
        Some(admin) => {
            let db = crate::store::scratch::ScratchDatabase::create(&admin, "quill_unit").unwrap();
            (db.url(), Some(db))
        }
        None => (format!("sqlite://{}/m.db", dir.path().display()), None),
    };
    /// Run `$body` on a raw connection to the test database (`$c`: a diesel connection).
    macro_rules! raw {
        (|$c:ident| $body:expr) => {
            if _pg.is_some() {
                let mut $c = diesel::PgConnection::establish(&url).unwrap();
                $body
            } else {
                let mut $c =
                    diesel::SqliteConnection::establish(url.trim_start_matches("sqlite://"))
                        .unwrap();
                // The dropped store's checkpointer may still be finishing.
                diesel::connection::SimpleConnection::batch_execute(
                    &mut $c,
                    "PRAGMA busy_timeout = 10000",
                )
                .unwrap();
                $body
            }
        };
    }
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = Binary)]
        digest: Vec<u8>,
        #[diesel(sql_type = Bool)]
        used: bool,
    }
    use diesel::sql_types::Binary;
    let store = Store::open(&url, 2).unwrap();
    fill(&store, vec![vec![3; 32], vec![1; 32], vec![2; 32]]);
    let mut conn = store.conn().unwrap();
    spend_digest(&mut conn, vec![1; 32]);
    drop(conn);
    drop(store);

    // Back to the layout before the move (and before any migration after it).
    raw!(|c| loop {
        let reverted = if _pg.is_some() {
            c.revert_last_migration(crate::store::POSTGRES_MIGRATIONS)
        } else {
            c.revert_last_migration(crate::store::SQLITE_MIGRATIONS)
        }
        .unwrap()
        .to_string();
        if reverted.replace('-', "").starts_with("20261206000001") {
            break;
        }
    });
    let rows: Vec<Row> = raw!(|c| diesel::sql_query(
        "SELECT digest, used FROM sad_hashes ORDER BY digest"
    )
    .load(&mut c)
    .unwrap());
    assert_eq!(
        rows,
        [
            Row {
                digest: vec![1; 32],
                used: true
            },
            Row {
                digest: vec![2; 32],
                used: false
            },
            Row {
                digest: vec![3; 32],
                used: false
            },
        ]
    );
    // A SAD as the old code wrote it: two digests, the first signed.
    raw!(|c| {
        diesel::sql_query(
            "INSERT INTO sads (sad_hash, token_hash, user_id, credential_id, hash_algo, \
             remaining, expires_at, created_at) VALUES ($1, $2, 'u1', 'c1', 'sha256', $3, 500, 0)",
        )
        .bind::<Binary, _>(vec![6u8; 32])
        .bind::<Binary, _>(vec![7u8; 32])
        .bind::<Integer, _>(1)
        .execute(&mut c)
        .unwrap();
        for (d, used) in [(9u8, true), (8u8, false)] {
            diesel::sql_query(
                "INSERT INTO sad_hashes (sad_hash, digest, used) VALUES ($1, $2, $3)",
            )
            .bind::<Binary, _>(vec![6u8; 32])
            .bind::<Binary, _>(vec![d; 32])
            .bind::<Bool, _>(used)
            .execute(&mut c)
            .unwrap();
        }
    });

    // Forward again (Store::open migrates).
    let store = Store::open(&url, 2).unwrap();
    let spend_on = |sad: u8, d: u8| spend_of(&store, sad, &[vec![d; 32]], 1);
    assert_eq!(spend_on(5, 1), Err(SadRefusal::AlreadySigned));
    assert_eq!(spend_on(5, 4), Err(SadRefusal::NotAuthorized));
    assert_eq!(spend_on(5, 2), Ok(()));
    assert_eq!(spend_on(5, 3), Ok(()));
    assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(0));
    assert_eq!(spend_on(6, 9), Err(SadRefusal::AlreadySigned));
    assert_eq!(spend_on(6, 8), Ok(()));
    assert_eq!(store.with(|c| remaining(c, &[6; 32])).unwrap(), Some(0));
    assert_eq!(store.with(audit::verify).unwrap().first_broken, None);
}

/// A digest found in the database across two of the SAD's (the end of one and the start of
/// the next: digests a client chose so) is looked for in the whole list: a digest that is
/// one of the SAD's further on is still found, one that is only such a straddle is not.
#[test]
fn a_digest_straddling_two_of_the_list_is_not_taken_for_one() {
    let (_d, store) = temp_store();
    let a: Vec<u8> = (0..32).collect();
    let b: Vec<u8> = (100..132).collect();
    let straddle = |x: &[u8], y: &[u8]| [&x[16..], &y[..16]].concat();
    let t = straddle(&a, &b);
    fill(&store, vec![a.clone(), b.clone(), t.clone()]);
    assert_eq!(
        spend_of(&store, 5, &[straddle(&b, &t)], 1),
        Err(SadRefusal::NotAuthorized)
    );
    assert_eq!(spend_of(&store, 5, std::slice::from_ref(&t), 1), Ok(()));
    let used = used_flags(&store);
    assert_eq!(used, [0, 0, 1]);
    assert_eq!(
        spend_of(&store, 5, std::slice::from_ref(&t), 1),
        Err(SadRefusal::AlreadySigned)
    );
    assert_eq!(spend_of(&store, 5, std::slice::from_ref(&b), 1), Ok(()));
    assert_eq!(
        spend_of(&store, 5, &[a[..31].to_vec()], 1),
        Err(SadRefusal::NotAuthorized)
    );
}
