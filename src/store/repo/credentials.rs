//! Credentials: always looked up together with their owner, so another user's credential is
//! indistinguishable from one that does not exist. A user's credentials are read a page at a
//! time in (created_at, id) order by keyset — "after this (created_at, id)", never OFFSET — so
//! any page costs one index seek on `credentials_user_order (user_id, created_at, id)` plus the
//! rows it returns, however many credentials there are.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};

use crate::store::explain::QueryPlan;
use crate::store::models::{CredentialRef, CredentialRow, STATUS_ENABLED, STATUS_SCALE_TEST};
use crate::store::schema::{credentials, users};
use crate::store::{DbConn, StoreError, on_backend};

/// Rows per multi-row INSERT in `insert_many`: 17 columns × 1 000 = 17 000 bound values, under
/// both SQLite's (32 766) and PostgreSQL's (65 535) limits.
const INSERT_CHUNK: usize = 1_000;

pub fn insert(conn: &mut DbConn, row: &CredentialRow) -> Result<(), StoreError> {
    diesel::insert_into(credentials::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Insert many rows with multi-row INSERTs of `INSERT_CHUNK` rows (diesel builds batch inserts
/// per backend, not for `MultiConnection`, hence the dispatch). Run it inside a transaction:
/// it is the caller's choice how many rows one commit carries.
pub fn insert_many(conn: &mut DbConn, rows: &[CredentialRef<'_>]) -> Result<usize, StoreError> {
    let mut n = 0;
    for chunk in rows.chunks(INSERT_CHUNK) {
        let insert = diesel::insert_into(credentials::table).values(chunk);
        n += match conn {
            DbConn::Sqlite(c) => insert.execute(c)?,
            DbConn::Pg(c) => insert.execute(c)?,
        };
    }
    Ok(n)
}

/// A position in a user's (created_at, id)-ordered credentials: a page starts strictly after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    /// Before every credential (ids are never empty).
    pub fn start() -> Cursor {
        Cursor {
            created_at: i64::MIN,
            id: String::new(),
        }
    }

    pub fn of(row: &CredentialRow) -> Cursor {
        Cursor {
            created_at: row.created_at,
            id: row.id.clone(),
        }
    }
}

/// `onlyValid` in SQL, the same rule as `CredentialView::is_valid`: enabled, under the failure
/// limit, certificate valid at `now`.
#[derive(Debug, Clone, Copy)]
pub struct UsableAt {
    pub now: i64,
    pub max_failures: i32,
}

/// One page of a user's credentials. Built by a macro because diesel types a query by backend
/// only when it runs: the page query and its EXPLAIN must be the same expression.
/// `(created_at, id) > (?, ?)` is a row-value comparison: both databases turn it into one seek
/// on `credentials_user_order` (after `user_id = ?`), also when many rows share a created_at.
macro_rules! page_query {
    ($user_id:expr, $after:expr, $usable:expr, $limit:expr) => {{
        let (all, now, max_failures) = match $usable {
            Some(UsableAt { now, max_failures }) => (false, now, max_failures),
            None => (true, 0_i64, 0_i32),
        };
        credentials::table
            .filter(credentials::user_id.eq($user_id))
            .filter(
                diesel::dsl::sql::<Bool>("(credentials.created_at, credentials.id) > (")
                    .bind::<BigInt, _>($after.created_at)
                    .sql(", ")
                    .bind::<Text, _>($after.id.as_str())
                    .sql(")"),
            )
            .filter(
                all.into_sql::<Bool>().or(credentials::status
                    .eq(STATUS_ENABLED)
                    .and(credentials::failed_auths.lt(max_failures))
                    .and(credentials::not_before.le(now))
                    .and(credentials::not_after.ge(now))),
            )
            .order((credentials::created_at.asc(), credentials::id.asc()))
            .limit($limit)
            .select(CredentialRow::as_select())
    }};
}

/// Up to `limit` of the user's credentials after `after`, oldest first; with `usable`, only
/// those usable at that time (filtered in the query, so a page is full whenever rows remain).
pub fn page_of_user(
    conn: &mut DbConn,
    user_id: &str,
    after: &Cursor,
    usable: Option<UsableAt>,
    limit: i64,
) -> Result<Vec<CredentialRow>, StoreError> {
    Ok(page_query!(user_id, after, usable, limit).load(conn)?)
}

/// The database's plan for `page_of_user` with these arguments.
pub fn page_plan(
    conn: &mut DbConn,
    user_id: &str,
    after: &Cursor,
    usable: Option<UsableAt>,
    limit: i64,
) -> Result<QueryPlan, StoreError> {
    use crate::store::explain::{PgExplain, SqliteExplain};
    match conn {
        DbConn::Pg(c) => {
            let raw: String =
                PgExplain(page_query!(user_id, after, usable, limit)).get_result(c)?;
            QueryPlan::from_pg_json(raw)
        }
        DbConn::Sqlite(c) => Ok(QueryPlan::from_sqlite(
            SqliteExplain(page_query!(user_id, after, usable, limit)).load(c)?,
        )),
    }
}

// No LIMIT (the id is the primary key): SQLite re-prepares a statement with a bound LIMIT every
// time it is bound again, and this lookup is on the signHash path.
macro_rules! owned_query {
    ($user_id:expr, $id:expr) => {
        credentials::table
            .filter(credentials::id.eq($id))
            .filter(credentials::user_id.eq($user_id))
            .select(CredentialRow::as_select())
    };
}

/// The credential `id` if it belongs to `user_id`.
pub fn owned(
    conn: &mut DbConn,
    user_id: &str,
    id: &str,
) -> Result<Option<CredentialRow>, StoreError> {
    Ok(on_backend!(conn, |c| owned_query!(user_id, id)
        .get_result(c)
        .optional())?)
}

/// The database's plan for `owned`.
pub fn owned_plan(conn: &mut DbConn, user_id: &str, id: &str) -> Result<QueryPlan, StoreError> {
    use crate::store::explain::{PgExplain, SqliteExplain};
    match conn {
        DbConn::Pg(c) => {
            let raw: String = PgExplain(owned_query!(user_id, id)).get_result(c)?;
            QueryPlan::from_pg_json(raw)
        }
        DbConn::Sqlite(c) => Ok(QueryPlan::from_sqlite(
            SqliteExplain(owned_query!(user_id, id)).load(c)?,
        )),
    }
}

/// Refresh the planner's statistics on users and credentials (after a bulk load).
pub fn analyze(conn: &mut DbConn) -> Result<(), StoreError> {
    diesel::sql_query("ANALYZE users").execute(conn)?;
    diesel::sql_query("ANALYZE credentials").execute(conn)?;
    Ok(())
}

/// Bytes on disk: the credentials table with its indexes on PostgreSQL, the whole database
/// file on SQLite (which has no per-table figure without its optional dbstat table).
pub fn storage_bytes(conn: &mut DbConn) -> Result<i64, StoreError> {
    let sql = match conn {
        DbConn::Pg(_) => "pg_total_relation_size('credentials')",
        DbConn::Sqlite(_) => {
            "(SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())"
        }
    };
    Ok(diesel::select(diesel::dsl::sql::<BigInt>(sql)).get_result(conn)?)
}

/// How many credentials carry this description (the scale-test seed marks its rows).
pub fn count_described(conn: &mut DbConn, description: &str) -> Result<i64, StoreError> {
    Ok(credentials::table
        .filter(credentials::description.eq(description))
        .count()
        .get_result(conn)?)
}

/// Reserve one PIN/OTP attempt before checking it: the attempt counts as failed up front, so
/// parallel wrong guesses can never exceed `limit`. `false` means the credential is locked.
pub fn reserve_attempt(conn: &mut DbConn, id: &str, limit: i32) -> Result<bool, StoreError> {
    let n = diesel::update(
        credentials::table
            .filter(credentials::id.eq(id))
            .filter(credentials::failed_auths.lt(limit)),
    )
    .set(credentials::failed_auths.eq(credentials::failed_auths + 1))
    .execute(conn)?;
    Ok(n == 1)
}

/// Give back an attempt [`reserve_attempt`] took when the check could not be made (a token or
/// database error): it was no guess, and must not count towards a lock.
pub fn release_attempt(conn: &mut DbConn, id: &str) -> Result<(), StoreError> {
    diesel::update(
        credentials::table
            .filter(credentials::id.eq(id))
            .filter(credentials::failed_auths.gt(0)),
    )
    .set(credentials::failed_auths.eq(credentials::failed_auths - 1))
    .execute(conn)?;
    Ok(())
}

/// Store a PIN hash made again (`password::rehash_if_stale`) in place of `old` (`replace_hash!`).
pub fn replace_pin_hash(
    conn: &mut DbConn,
    id: &str,
    old: &str,
    new: &str,
) -> Result<bool, StoreError> {
    replace_hash!(conn, credentials, pin_hash, id, old, new)
}

/// Accept a TOTP time step at most once per credential: succeeds only when `step` is later than
/// every step accepted before (so a code is never accepted twice, nor an older neighbour).
pub fn consume_otp_step(conn: &mut DbConn, id: &str, step: i64) -> Result<bool, StoreError> {
    let n = diesel::update(
        credentials::table.filter(credentials::id.eq(id)).filter(
            credentials::last_otp_step
                .is_null()
                .or(credentials::last_otp_step.lt(step)),
        ),
    )
    .set(credentials::last_otp_step.eq(step))
    .execute(conn)?;
    Ok(n == 1)
}

/// Whether any credential signs with the key pair `key_id` (`credential orphan-keys`).
pub fn key_in_use(conn: &mut DbConn, key_id: &[u8]) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(
        credentials::table.filter(credentials::key_id.eq(key_id)),
    ))
    .get_result(conn)?)
}

/// The credential `id`, whoever owns it (operator commands).
pub fn by_id(conn: &mut DbConn, id: &str) -> Result<Option<CredentialRow>, StoreError> {
    Ok(on_backend!(conn, |c| credentials::table
        .filter(credentials::id.eq(id))
        .select(CredentialRow::as_select())
        .get_result(c)
        .optional())?)
}

/// Replace the credential's certificate chain and validity, if the chain is still `old_chain`
/// (two renewals at once: one wins, the other changes nothing). Whether it replaced it.
pub fn replace_certificate(
    conn: &mut DbConn,
    id: &str,
    old_chain: &[u8],
    chain: &[u8],
    not_before: i64,
    not_after: i64,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        credentials::table
            .filter(credentials::id.eq(id))
            .filter(credentials::cert_chain.eq(old_chain)),
    )
    .set((
        credentials::cert_chain.eq(chain),
        credentials::not_before.eq(not_before),
        credentials::not_after.eq(not_after),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Set the credential's status to `to` if it is `from`. Whether it changed.
pub fn change_status(
    conn: &mut DbConn,
    id: &str,
    from: &str,
    to: &str,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        credentials::table
            .filter(credentials::id.eq(id))
            .filter(credentials::status.eq(from)),
    )
    .set(credentials::status.eq(to))
    .execute(conn)?;
    Ok(n == 1)
}

/// A credential whose certificate ends before some time (`expiring`).
#[derive(Debug, Queryable, serde::Serialize)]
pub struct Expiring {
    pub credential_id: String,
    pub user: String,
    pub status: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// Credentials whose certificates end before `before` (expired ones included), soonest first, at
/// most `limit`; `scale-test` seed rows are left out.
pub fn expiring(conn: &mut DbConn, before: i64, limit: i64) -> Result<Vec<Expiring>, StoreError> {
    Ok(credentials::table
        .inner_join(users::table)
        .filter(credentials::not_after.lt(before))
        .filter(credentials::status.ne(STATUS_SCALE_TEST))
        .order((credentials::not_after, credentials::id))
        .limit(limit)
        .select((
            credentials::id,
            users::name,
            credentials::status,
            credentials::not_after,
        ))
        .load(conn)?)
}

/// A successful authentication clears the failure count.
pub fn clear_attempts(conn: &mut DbConn, id: &str) -> Result<bool, StoreError> {
    let n = diesel::update(credentials::table.filter(credentials::id.eq(id)))
        .set(credentials::failed_auths.eq(0))
        .execute(conn)?;
    Ok(n == 1)
}

#[cfg(test)]
#[path = "credentials_scale_tests.rs"]
mod scale_tests;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::models::UserRow;
    use crate::store::repo::users;
    use crate::store::tests::temp_store;

    pub(crate) fn sample(id: &str, user_id: &str) -> CredentialRow {
        CredentialRow {
            id: id.into(),
            user_id: user_id.into(),
            key_id: id.as_bytes().to_vec(),
            key_type: "ec-p256".into(),
            key_bits: 256,
            cert_chain: vec![1, 2, 3],
            not_before: 10,
            not_after: 20,
            pin_hash: "p".into(),
            otp_kind: "totp".into(),
            otp_secret: Some(vec![9]),
            status: "enabled".into(),
            multisign: 5,
            description: Some("d".into()),
            failed_auths: 0,
            last_otp_step: Some(7),
            created_at: 1,
        }
    }

    pub(crate) fn user(id: &str) -> UserRow {
        UserRow {
            id: id.into(),
            name: format!("name-{id}"),
            password_hash: "h".into(),
            failed_logins: 0,
            created_at: 1,
        }
    }

    #[test]
    fn ownership_is_part_of_the_lookup() {
        let (_d, store) = temp_store();
        store.with(|c| users::insert(c, &user("u1"))).unwrap();
        store.with(|c| users::insert(c, &user("u2"))).unwrap();
        store.with(|c| insert(c, &sample("c1", "u1"))).unwrap();
        store.with(|c| insert(c, &sample("c2", "u2"))).unwrap();
        let mine = store.with(|c| owned(c, "u1", "c1")).unwrap().unwrap();
        assert_eq!(mine.cert_chain, vec![1, 2, 3]);
        assert_eq!(mine.last_otp_step, Some(7));
        assert!(store.with(|c| owned(c, "u1", "c2")).unwrap().is_none());
        assert!(store.with(|c| owned(c, "u1", "nope")).unwrap().is_none());
        let list = store
            .with(|c| page_of_user(c, "u1", &Cursor::start(), None, 10))
            .unwrap();
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn attempts_stop_at_the_limit_even_in_parallel() {
        let (_d, store) = temp_store();
        store.with(|c| users::insert(c, &user("u1"))).unwrap();
        store.with(|c| insert(c, &sample("c1", "u1"))).unwrap();
        let handles: Vec<_> = (0..12)
            .map(|_| {
                let s = store.clone();
                std::thread::spawn(move || s.with(|c| reserve_attempt(c, "c1", 5)).unwrap())
            })
            .collect();
        let granted = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(granted, 5);
        let row = store.with(|c| owned(c, "u1", "c1")).unwrap().unwrap();
        assert_eq!(row.failed_auths, 5);
        assert!(store.with(|c| clear_attempts(c, "c1")).unwrap());
        assert!(store.with(|c| reserve_attempt(c, "c1", 5)).unwrap());
        assert!(!store.with(|c| clear_attempts(c, "nope")).unwrap());
    }

    #[test]
    fn otp_steps_are_single_use_and_increasing() {
        let (_d, store) = temp_store();
        store.with(|c| users::insert(c, &user("u1"))).unwrap();
        let mut row = sample("c1", "u1");
        row.last_otp_step = None;
        store.with(|c| insert(c, &row)).unwrap();
        assert!(store.with(|c| consume_otp_step(c, "c1", 100)).unwrap());
        assert!(!store.with(|c| consume_otp_step(c, "c1", 100)).unwrap());
        assert!(!store.with(|c| consume_otp_step(c, "c1", 99)).unwrap());
        assert!(store.with(|c| consume_otp_step(c, "c1", 101)).unwrap());
    }

    #[test]
    fn credential_needs_an_existing_user() {
        let (_d, store) = temp_store();
        assert!(store.with(|c| insert(c, &sample("c1", "ghost"))).is_err());
    }
}
