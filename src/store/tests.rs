//! Tests of the store itself: URLs, migrations and upgrades, SQLite's file mode and WAL
//! checkpointer, PostgreSQL connection health, write transactions; and the fresh stores
//! (`temp_store`, `temp_db`) every repository's tests open.

use super::*;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;

use super::checkpoint::CHECKPOINT_EVERY;
use super::migrate::check_sqlite_version;
use super::pool::ALIVE_BYPASS;

#[test]
fn an_unsupported_url_is_refused_without_its_password() {
    let e = Target::parse("mysql://quill:DbPassw0rd@db/quill")
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"mysql\"") && !e.contains("DbPassw0rd"), "{e}");
    assert_eq!(
        Target::parse("sqlite://var/q.db").unwrap(),
        Target::Sqlite("var/q.db".into())
    );
}

#[test]
fn sqlite_older_than_3_35_is_refused_by_name() {
    for ok in ["3.35.0", "3.40.1", "3.50.4", "4.0.0"] {
        assert!(check_sqlite_version(ok).is_ok(), "{ok}");
    }
    for old in ["3.34.1", "3.7.17", "2.8.17", "", "x.y"] {
        let e = check_sqlite_version(old).unwrap_err().to_string();
        assert!(e.contains("3.35 or later"), "{old}: {e}");
    }
}

/// A new SQLite database and its WAL files are the owner's alone; an existing file keeps
/// the mode its operator gave it.
#[test]
fn a_new_sqlite_database_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/q.db");
    let store = Store::open(&format!("sqlite://{}", path.display()), 2).unwrap();
    store.ping().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    let wal = dir.path().join("sub/q.db-wal");
    assert!(wal.exists());
    assert_eq!(mode(&wal), 0o600);
    drop(store);
    let shared = dir.path().join("shared.db");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
    Store::open(&format!("sqlite://{}", shared.display()), 2).unwrap();
    assert_eq!(mode(&shared), 0o640);
}

/// The PostgreSQL server the tests run against (`QUILL_TEST_PG_URL`, which CI sets);
/// `None`: SQLite.
pub(crate) fn test_pg_url() -> Option<String> {
    std::env::var("QUILL_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A fresh store: a temporary SQLite file, or — when `QUILL_TEST_PG_URL` names a
/// PostgreSQL server (CI sets it) — a fresh database on that server.
pub(crate) fn temp_store() -> (TempDb, Store) {
    let (db, url) = temp_db();
    let store = Store::open(&url, 4).unwrap();
    (db, store)
}

/// `temp_store`'s database, not opened yet: what holds it, and its URL.
pub(crate) fn temp_db() -> (TempDb, String) {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = match test_pg_url() {
        Some(admin) => {
            let db = scratch::ScratchDatabase::create(&admin, "quill_unit").unwrap();
            (db.url(), Some(db))
        }
        None => (format!("sqlite://{}/t.db", dir.path().display()), None),
    };
    (TempDb { _dir: dir, _pg: pg }, url)
}

/// Keeps the temporary directory, and the PostgreSQL database until the end.
pub(crate) struct TempDb {
    _dir: tempfile::TempDir,
    _pg: Option<scratch::ScratchDatabase>,
}

impl TempDb {
    /// The scratch directory (for files a test needs beside the database).
    pub(crate) fn path(&self) -> &Path {
        self._dir.path()
    }
}

/// A database a newer Quill migrated (a migration version this build lacks) is refused by
/// name, on either backend, and nothing is run on it; a known one opens as before.
#[test]
fn a_database_from_a_newer_quill_is_refused() {
    let (_db, url) = temp_db();
    let store = Store::open(&url, 1).unwrap();
    store
        .with(|c| {
            Ok(c.batch_execute(
                "INSERT INTO __diesel_schema_migrations (version) VALUES ('29990101000001')",
            )?)
        })
        .unwrap();
    drop(store);
    let e = Store::open(&url, 1).err().expect("refused").to_string();
    assert!(
        e.contains("29990101000001") && e.contains("newer Quill"),
        "{e}"
    );
    store_reopens_once_the_unknown_migration_is_gone(&url);
}

/// A database an older Quill set up (a migration of this build not run yet) is migrated by
/// `open` (serve, demo) only: the operator commands refuse it by name and change nothing,
/// so that running one of the new version does not move the schema under instances of the
/// old one. An empty database is set up by either.
#[test]
fn only_serve_upgrades_a_database_an_older_quill_set_up() {
    use diesel_migrations::MigrationHarness;
    let (_db, url) = temp_db();
    let fresh = Store::open_for_command(&url, 1).unwrap();
    let last = fresh
        .with(|c| {
            Ok(match c {
                DbConn::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
                DbConn::Pg(c) => c.revert_last_migration(POSTGRES_MIGRATIONS),
            }
            .unwrap()
            .to_string()
            .replace('-', ""))
        })
        .unwrap();
    drop(fresh);
    let applied = |url: &str| -> i64 {
        let mut c = DbConn::establish(url).unwrap();
        if let DbConn::Sqlite(_) = c {
            // The dropped store's checkpointer may still be finishing.
            c.batch_execute("PRAGMA busy_timeout = 5000").unwrap();
        }
        diesel::sql_query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM __diesel_schema_migrations")
            .get_result::<Count>(&mut c)
            .unwrap()
            .n
    };
    let before = applied(&url);
    for e in [
        Store::open_for_command(&url, 1).err(),
        Store::open_existing(&url, 1).err(),
    ] {
        let e = e.expect("refused").to_string();
        assert!(e.contains(&last) && e.contains("older version"), "{e}");
    }
    assert_eq!(applied(&url), before, "nothing migrated");
    Store::open(&url, 1).unwrap();
    assert_eq!(applied(&url), before + 1);
    Store::open_existing(&url, 1).unwrap();
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn store_reopens_once_the_unknown_migration_is_gone(url: &str) {
    let mut conn = DbConn::establish(url).unwrap();
    // The dropped store's checkpointer may still hold SQLite's lock for a moment.
    if let DbConn::Sqlite(c) = &mut conn {
        c.batch_execute("PRAGMA busy_timeout = 10000").unwrap();
    }
    conn.batch_execute("DELETE FROM __diesel_schema_migrations WHERE version = '29990101000001'")
        .unwrap();
    drop(conn);
    assert!(Store::open(url, 1).is_ok());
}

#[test]
fn url_forms() {
    assert_eq!(
        sqlite_path("sqlite://var/quill.db").unwrap(),
        "var/quill.db"
    );
    assert_eq!(sqlite_path("/tmp/x.db").unwrap(), "/tmp/x.db");
    assert!(sqlite_path("postgres://h/db").is_err());
    assert!(sqlite_path("sqlite://").is_err());
    assert!(Target::parse("mysql://h/db").is_err());
    assert_eq!(
        Target::parse("postgresql://u@h:5/db").unwrap(),
        Target::Postgres("postgresql://u@h:5/db".into())
    );
}

#[test]
fn migrations_apply_twice_without_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/a/b.db", dir.path().display());
    Store::open(&url, 2).unwrap();
    Store::open(&url, 2).unwrap();
}

/// A user row whose password hash is `size` bytes, in a write transaction of its own.
fn insert_user(store: &Store, id: &str, size: usize) {
    use crate::store::schema::users;
    store
        .with(|c| {
            c.write_tx(|c| {
                diesel::insert_into(users::table)
                    .values((
                        users::id.eq(id),
                        users::name.eq(format!("user {id}")),
                        users::password_hash.eq("h".repeat(size)),
                        users::failed_logins.eq(0),
                        users::created_at.eq(0_i64),
                    ))
                    .execute(c)?;
                Ok::<_, StoreError>(())
            })
        })
        .unwrap();
}

#[test]
fn sqlite_wal_is_checkpointed_off_the_request_path() {
    if test_pg_url().is_some() {
        return; // SQLite only
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = Store::open(path.to_str().unwrap(), 2).unwrap();
    let wal = dir.path().join("q.db-wal");
    // No pooled connection checkpoints inside a commit.
    let auto: i64 = store
        .with(|c| {
            #[derive(QueryableByName)]
            struct Auto {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                wal_autocheckpoint: i64,
            }
            let row: Auto = diesel::sql_query("PRAGMA wal_autocheckpoint").get_result(c)?;
            Ok(row.wal_autocheckpoint)
        })
        .unwrap();
    assert_eq!(auto, 0);
    // Ten rounds of writes with a pause: without the checkpointer the log would only grow
    // (about ten times one round); with it, each round reuses the log from its start.
    let mut n = 0;
    let mut round_size = 0;
    for round in 0..10 {
        for _ in 0..100 {
            n += 1;
            insert_user(&store, &format!("u{n}"), 500);
        }
        if round == 0 {
            round_size = std::fs::metadata(&wal).unwrap().len();
        }
        std::thread::sleep(CHECKPOINT_EVERY * 4);
    }
    let size = std::fs::metadata(&wal).unwrap().len();
    assert!(round_size > 0);
    assert!(
        size < round_size * 4,
        "WAL of {size} bytes after ten rounds of {round_size}"
    );
    // Dropping the store stops the thread and closes its connection: SQLite then folds
    // the log into the database and removes it.
    drop(store);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while wal.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!wal.exists(), "the checkpointer's connection was closed");
}

#[test]
fn sqlite_wal_starts_over_under_steady_writes() {
    if test_pg_url().is_some() {
        return; // SQLite only
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    // Started over at 1024 frames (4 MiB) instead of 16384, to see it happen quickly.
    let store = Store::open_with(path.to_str().unwrap(), 2, 1024, Upgrade::Migrate).unwrap();
    let wal = dir.path().join("q.db-wal");
    // Bytes 12..16 of the log's header count the times it was started over.
    let restarts = || {
        let mut header = [0_u8; 16];
        std::fs::File::open(&wal)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
            .map_or(0, |()| {
                u32::from_be_bytes([header[12], header[13], header[14], header[15]])
            })
    };
    // Steady commits, a few thousand a second (each logging a few 4 KiB pages), never a
    // pause in which a checkpoint could copy the whole log before the next one.
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..6000 {
        insert_user(&store, &format!("u{n}"), 1500);
        if n % 20 == 0 {
            seen.insert(restarts());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    assert!(
        seen.len() >= 5,
        "the log was started over {} times under steady writes: {seen:?}",
        seen.len() - 1
    );
}

/// PostgreSQL: a connection that answered a moment ago is handed out without `SELECT 1`,
/// one idle for longer is tested first; one whose server process was terminated fails its
/// next statement (unavailable, not a query error), is dropped by the pool, and the next
/// checkout works; one terminated while idle for longer is replaced without an error.
#[test]
fn pg_connections_are_tested_after_a_pause_and_dropped_when_lost() {
    let Some(admin) = test_pg_url() else {
        return;
    };
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let db = scratch::ScratchDatabase::create(&admin, "quill_unit").unwrap();
    let store = Store::open(&db.url(), 1).unwrap();
    let pid = |store: &Store| {
        store.with(|c| {
            Ok(diesel::sql_query("SELECT pg_backend_pid() AS pid")
                .get_result::<Pid>(c)?
                .pid)
        })
    };
    let last_answer = |store: &Store| store.conn().unwrap().health().unwrap().last_answer_us();
    let first = pid(&store).unwrap();
    let used = last_answer(&store);
    assert_ne!(used, 0);
    assert_eq!(last_answer(&store), used, "no SELECT 1 right after use");
    std::thread::sleep(ALIVE_BYPASS + Duration::from_millis(100));
    assert!(last_answer(&store) > used, "a SELECT 1 after a pause");

    let mut killer = PgConnection::establish(&db.url()).unwrap();
    let terminate = |killer: &mut PgConnection, pid: i32| {
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
            .execute(killer)
            .unwrap();
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        for _ in 0..100 {
            let left: Count = diesel::sql_query(format!(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = {pid}"
            ))
            .get_result(killer)
            .unwrap();
            if left.n == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("backend {pid} still there");
    };
    let second = pid(&store).unwrap();
    assert_eq!(second, first, "one connection, kept");
    terminate(&mut killer, second);
    // Within the window: the dead connection is handed out, fails, and is dropped.
    assert!(matches!(pid(&store), Err(StoreError::Unavailable(_))));
    let third = pid(&store).unwrap();
    assert_ne!(third, second, "a new connection");
    // After a pause: tested, found dead and replaced before use.
    terminate(&mut killer, third);
    std::thread::sleep(ALIVE_BYPASS + Duration::from_millis(100));
    let fourth = pid(&store).unwrap();
    assert_ne!(fourth, third);
}

#[test]
fn write_tx_rolls_back_on_error_and_serialises_writers() {
    use crate::store::schema::users;
    let (_d, store) = temp_store();
    let insert = |c: &mut DbConn, id: &str| {
        diesel::insert_into(users::table)
            .values((
                users::id.eq(id),
                users::name.eq(id),
                users::password_hash.eq("h"),
                users::failed_logins.eq(0),
                users::created_at.eq(0_i64),
            ))
            .execute(c)
    };
    let failed: Result<(), StoreError> = store.with(|c| {
        c.write_tx(|c| {
            insert(c, "a")?;
            Err(StoreError::Query("no".into()))
        })
    });
    assert!(failed.is_err());
    let count = |store: &Store| {
        store
            .with(|c| Ok(users::table.count().get_result::<i64>(c)?))
            .unwrap()
    };
    assert_eq!(count(&store), 0, "rolled back");
    // Read-then-write in parallel: every transaction sees the previous one's write.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let s = store.clone();
            std::thread::spawn(move || {
                s.with(|c| {
                    c.write_tx(|c| {
                        let n: i64 = users::table.count().get_result(c)?;
                        insert(c, &format!("u{n}-{i}"))?;
                        Ok::<i64, StoreError>(n)
                    })
                })
                .unwrap()
            })
        })
        .collect();
    let mut seen: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
    assert_eq!(
        store.backend(),
        if test_pg_url().is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
}
