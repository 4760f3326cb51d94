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
    /// The OAuth credential token the call was made with (only it may poll the call); `None`
    /// for a service token's call.
    pub credential_token_hash: Option<Vec<u8>>,
    /// HTTP status of the answer; `None` while the call runs.
    pub status: Option<i32>,
    /// The answer's JSON in clear, as versions before sealing wrote it; `None` from them on.
    pub result: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
    /// The answer's JSON sealed for the caller (`service::sign_jobs::seal`); `None` while the
    /// call runs.
    pub sealed_result: Option<Vec<u8>>,
}

/// Insert a running job unless its caller already holds `max_held` jobs, expired or not (until
/// the purge deletes them): the user's service tokens share one allowance, and each credential
/// token has one of its own. Counted and inserted in one write transaction; whether inserted.
pub fn insert_within(conn: &mut DbConn, row: &JobRow, max_held: i64) -> Result<bool, StoreError> {
    conn.write_tx(|c| {
        let mine = sign_jobs::table.filter(sign_jobs::user_id.eq(&row.user_id));
        let held: i64 = match &row.credential_token_hash {
            Some(h) => mine
                .filter(sign_jobs::credential_token_hash.eq(h))
                .count()
                .get_result(c)?,
            None => mine
                .filter(sign_jobs::credential_token_hash.is_null())
                .count()
                .get_result(c)?,
        };
        if held >= max_held {
            return Ok(false);
        }
        diesel::insert_into(sign_jobs::table)
            .values(row)
            .execute(c)?;
        Ok::<bool, diesel::result::Error>(true)
    })
    .map_err(StoreError::from)
}

/// Record a job's sealed answer (once: a finished job keeps its first answer), kept until
/// `expires_at` (its validity counted from now, when the answer exists).
pub fn finish(
    conn: &mut DbConn,
    id_hash: &[u8],
    status: i32,
    sealed: &[u8],
    expires_at: i64,
) -> Result<bool, StoreError> {
    Ok(diesel::update(
        sign_jobs::table
            .find(id_hash)
            .filter(sign_jobs::status.is_null()),
    )
    .set((
        sign_jobs::status.eq(status),
        sign_jobs::sealed_result.eq(sealed),
        sign_jobs::expires_at.eq(expires_at),
    ))
    .execute(conn)?
        == 1)
}

/// The user's job with this responseID hash, if it has not expired at `now`. A credential
/// token (`credential_token`) finds only the jobs it made; a service token (`None`), any of
/// the user's.
pub fn find(
    conn: &mut DbConn,
    id_hash: &[u8],
    user_id: &str,
    credential_token: Option<&[u8]>,
    now: i64,
) -> Result<Option<JobRow>, StoreError> {
    let row = sign_jobs::table
        .find(id_hash)
        .filter(sign_jobs::user_id.eq(user_id))
        .filter(sign_jobs::expires_at.gt(now))
        .select(JobRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row.filter(|r| match credential_token {
        Some(h) => r.credential_token_hash.as_deref() == Some(h),
        None => true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::repo;
    use crate::store::repo::credentials::tests::user;
    use crate::store::tests::temp_store;

    fn job(id: u8, user: &str, token: Option<u8>, expires_at: i64) -> JobRow {
        JobRow {
            id_hash: vec![id; 32],
            user_id: user.into(),
            credential_token_hash: token.map(|t| vec![t; 32]),
            status: None,
            result: None,
            expires_at,
            created_at: 0,
            sealed_result: None,
        }
    }

    #[test]
    fn jobs_are_the_callers_own_capped_and_answered_once() {
        let (_d, store) = temp_store();
        store
            .with(|c| {
                repo::users::insert(c, &user("u"))?;
                repo::users::insert(c, &user("v"))
            })
            .unwrap();
        store
            .with(|c| {
                assert!(insert_within(c, &job(1, "u", None, 100), 2)?);
                assert!(insert_within(c, &job(2, "u", None, 5), 2)?);
                // A third is refused, an expired one counting until it is purged; a credential
                // token and another user have allowances of their own.
                assert!(!insert_within(c, &job(3, "u", None, 100), 2)?);
                assert!(insert_within(c, &job(4, "u", Some(9), 100), 2)?);
                assert!(insert_within(c, &job(5, "v", None, 100), 2)?);

                assert_eq!(find(c, &[1; 32], "u", None, 10)?.unwrap().status, None);
                assert!(
                    find(c, &[1; 32], "v", None, 10)?.is_none(),
                    "another user's"
                );
                assert!(find(c, &[1; 32], "u", None, 100)?.is_none(), "expired");
                assert!(
                    find(c, &[1; 32], "u", Some(&[9; 32]), 10)?.is_none(),
                    "a service call"
                );
                assert!(find(c, &[4; 32], "u", Some(&[9; 32]), 10)?.is_some());
                assert!(
                    find(c, &[4; 32], "u", Some(&[8; 32]), 10)?.is_none(),
                    "another token's"
                );
                assert!(
                    find(c, &[4; 32], "u", None, 10)?.is_some(),
                    "the user's service token"
                );
                assert!(finish(c, &[1; 32], 200, b"sealed", 500)?);
                assert!(!finish(c, &[1; 32], 400, b"other", 500)?, "answered once");
                let done = find(c, &[1; 32], "u", None, 100)?.unwrap();
                assert_eq!(
                    (done.status, done.sealed_result.as_deref(), done.expires_at),
                    (Some(200), Some(&b"sealed"[..]), 500)
                );
                assert_eq!(done.result, None, "nothing in clear");
                Ok(())
            })
            .unwrap();
    }
}
