//! Asynchronous signing calls (`operationMode: "A"`): a row per accepted call, found by the
//! SHA-256 of its responseID and its user, holding the call's answer once it has one.

use diesel::prelude::*;

use crate::store::schema::sign_jobs;
use crate::store::{DbConn, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sign_jobs)]
pub struct JobRow {
    pub id_hash: Vec<u8>,
    pub user_id: String,
    /// HTTP status of the answer; `None` while the call runs.
    pub status: Option<i32>,
    /// The answer's JSON; `None` while the call runs.
    pub result: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
}

/// Insert a running job unless the user already has `max_live` jobs that have not expired at
/// `now` (counted and inserted in one write transaction). Returns whether it was inserted.
pub fn insert_within(
    conn: &mut DbConn,
    row: &JobRow,
    now: i64,
    max_live: i64,
) -> Result<bool, StoreError> {
    conn.write_tx(|c| {
        let live: i64 = sign_jobs::table
            .filter(sign_jobs::user_id.eq(&row.user_id))
            .filter(sign_jobs::expires_at.gt(now))
            .count()
            .get_result(c)?;
        if live >= max_live {
            return Ok(false);
        }
        diesel::insert_into(sign_jobs::table)
            .values(row)
            .execute(c)?;
        Ok::<bool, diesel::result::Error>(true)
    })
    .map_err(StoreError::from)
}

/// Record a job's answer (once: a finished job keeps its first answer).
pub fn finish(
    conn: &mut DbConn,
    id_hash: &[u8],
    status: i32,
    result: &str,
) -> Result<bool, StoreError> {
    Ok(diesel::update(
        sign_jobs::table
            .find(id_hash)
            .filter(sign_jobs::status.is_null()),
    )
    .set((sign_jobs::status.eq(status), sign_jobs::result.eq(result)))
    .execute(conn)?
        == 1)
}

/// The user's job with this responseID hash, if it has not expired at `now`.
pub fn find(
    conn: &mut DbConn,
    id_hash: &[u8],
    user_id: &str,
    now: i64,
) -> Result<Option<JobRow>, StoreError> {
    Ok(sign_jobs::table
        .find(id_hash)
        .filter(sign_jobs::user_id.eq(user_id))
        .filter(sign_jobs::expires_at.gt(now))
        .select(JobRow::as_select())
        .get_result(conn)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::repo;
    use crate::store::repo::credentials::tests::user;
    use crate::store::tests::temp_store;

    fn job(id: u8, user: &str, expires_at: i64) -> JobRow {
        JobRow {
            id_hash: vec![id; 32],
            user_id: user.into(),
            status: None,
            result: None,
            expires_at,
            created_at: 0,
        }
    }

    #[test]
    fn jobs_are_the_users_own_capped_and_answered_once() {
        let (_d, store) = temp_store();
        store
            .with(|c| {
                repo::users::insert(c, &user("u"))?;
                repo::users::insert(c, &user("v"))
            })
            .unwrap();
        store
            .with(|c| {
                assert!(insert_within(c, &job(1, "u", 100), 10, 2)?);
                assert!(insert_within(c, &job(2, "u", 100), 10, 2)?);
                // A third live job is refused; one expired by then does not count.
                assert!(!insert_within(c, &job(3, "u", 100), 10, 2)?);
                assert!(insert_within(c, &job(3, "u", 200), 100, 2)?);
                assert!(insert_within(c, &job(4, "v", 100), 10, 2)?);

                assert_eq!(find(c, &[1; 32], "u", 10)?.unwrap().status, None);
                assert!(find(c, &[1; 32], "v", 10)?.is_none(), "another user's");
                assert!(find(c, &[1; 32], "u", 100)?.is_none(), "expired");
                assert!(finish(c, &[1; 32], 200, "{\"signatures\":[]}")?);
                assert!(!finish(c, &[1; 32], 400, "{}")?, "answered once");
                let done = find(c, &[1; 32], "u", 10)?.unwrap();
                assert_eq!(
                    (done.status, done.result.as_deref()),
                    (Some(200), Some("{\"signatures\":[]}"))
                );
                Ok(())
            })
            .unwrap();
    }
}
