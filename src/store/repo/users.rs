//! Users: created by enrolment, looked up by name at `auth/login`.

use diesel::prelude::*;

use crate::store::models::UserRow;
use crate::store::schema::users;
use crate::store::{DbConn, StoreError};

pub fn insert(conn: &mut DbConn, row: &UserRow) -> Result<(), StoreError> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Insert many users with multi-row INSERTs of 1 000 rows (per-backend dispatch, as diesel builds
/// batch inserts per backend). Run it inside a transaction.
pub fn insert_many(conn: &mut DbConn, rows: &[UserRow]) -> Result<usize, StoreError> {
    let mut n = 0;
    for chunk in rows.chunks(1_000) {
        let insert = diesel::insert_into(users::table).values(chunk);
        n += match conn {
            DbConn::Sqlite(c) => insert.execute(c)?,
            DbConn::Pg(c) => insert.execute(c)?,
        };
    }
    Ok(n)
}

pub fn by_name(conn: &mut DbConn, name: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::name.eq(name))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn by_id(conn: &mut DbConn, id: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Reserve one login attempt at `now` (counted as failed up front, until `clear_logins`);
/// `false` means the user is locked. A user with `limit` failures is locked until `lock_secs`
/// after the last reserved attempt (`None`: until unblocked); then one attempt is reserved,
/// and the lock starts again from it. One conditional `UPDATE`, so parallel attempts never
/// get more than that.
pub fn reserve_login(
    conn: &mut DbConn,
    id: &str,
    limit: i32,
    now: i64,
    lock_secs: Option<i64>,
) -> Result<bool, StoreError> {
    let reserve = (
        users::failed_logins.eq(users::failed_logins + 1),
        users::last_login_failure.eq(now),
    );
    let under_limit = users::failed_logins.lt(limit);
    let n = match lock_secs {
        None => diesel::update(users::table.filter(users::id.eq(id)).filter(under_limit))
            .set(reserve)
            .execute(conn)?,
        Some(secs) => {
            let lifted = users::last_login_failure
                .is_null()
                .or(users::last_login_failure.assume_not_null().le(now - secs));
            diesel::update(
                users::table
                    .filter(users::id.eq(id))
                    .filter(under_limit.or(lifted)),
            )
            .set(reserve)
            .execute(conn)?
        }
    };
    Ok(n == 1)
}

/// A successful login (or an operator's unblock) clears the failure count.
pub fn clear_logins(conn: &mut DbConn, id: &str) -> Result<bool, StoreError> {
    let n = diesel::update(users::table.filter(users::id.eq(id)))
        .set(users::failed_logins.eq(0))
        .execute(conn)?;
    Ok(n == 1)
}

/// Store a password hash made again (`password::rehash_if_stale`) in place of `old`
/// (`replace_hash!`).
pub fn replace_password_hash(
    conn: &mut DbConn,
    id: &str,
    old: &str,
    new: &str,
) -> Result<bool, StoreError> {
    replace_hash!(conn, users, password_hash, id, old, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;

    #[test]
    fn insert_and_find() {
        let (_d, store) = temp_store();
        let row = UserRow {
            id: "u1".into(),
            name: "alice".into(),
            password_hash: "h".into(),
            failed_logins: 0,
            created_at: 1,
        };
        store.with(|c| insert(c, &row)).unwrap();
        let got = store.with(|c| by_name(c, "alice")).unwrap().unwrap();
        assert_eq!(got.id, "u1");
        assert_eq!(got.password_hash, "h");
        assert!(store.with(|c| by_name(c, "bob")).unwrap().is_none());
        assert!(store.with(|c| by_id(c, "u1")).unwrap().is_some());
        let reserve = |now: i64, lock: Option<i64>| {
            store
                .with(|c| reserve_login(c, "u1", 3, now, lock))
                .unwrap()
        };
        // Until unblocked: three attempts, then none however late.
        for t in 0..3 {
            assert!(reserve(t, None));
        }
        assert!(!reserve(10, None));
        assert!(!reserve(1_000_000, None));
        assert!(store.with(|c| clear_logins(c, "u1")).unwrap());
        assert!(reserve(1_000_000, None));
        assert!(store.with(|c| clear_logins(c, "u1")).unwrap());
        // Timed: locked until 100 s after the last reserved attempt, then one attempt per lock.
        for t in [0, 1, 2] {
            assert!(reserve(t, Some(100)));
        }
        assert!(!reserve(50, Some(100)));
        assert!(
            !reserve(101, Some(100)),
            "100 s after the last attempt, at 2"
        );
        assert!(reserve(102, Some(100)));
        assert!(!reserve(102, Some(100)), "one attempt, then locked again");
        assert!(!reserve(201, Some(100)));
        assert!(reserve(202, Some(100)));
        // A lock from before the lock time was recorded (NULL) has lifted.
        store
            .with(|c| {
                diesel::update(users::table.find("u1"))
                    .set(users::last_login_failure.eq(None::<i64>))
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
        assert!(reserve(203, Some(100)));
        assert!(!reserve(204, Some(100)));
        // names are unique
        let dup = UserRow {
            id: "u2".into(),
            ..row
        };
        assert!(store.with(|c| insert(c, &dup)).is_err());
    }
}
