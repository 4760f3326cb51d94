//! Credentials: always looked up together with their owner, so another user's credential is
//! indistinguishable from one that does not exist.

use diesel::prelude::*;

use crate::store::models::CredentialRow;
use crate::store::schema::credentials;
use crate::store::{DbConn, StoreError};

pub fn insert(conn: &mut DbConn, row: &CredentialRow) -> Result<(), StoreError> {
    diesel::insert_into(credentials::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The credential `id` if it belongs to `user_id`.
pub fn owned(
    conn: &mut DbConn,
    user_id: &str,
    id: &str,
) -> Result<Option<CredentialRow>, StoreError> {
    Ok(credentials::table
        .filter(credentials::id.eq(id))
        .filter(credentials::user_id.eq(user_id))
        .select(CredentialRow::as_select())
        .first(conn)
        .optional()?)
}

/// All credentials of a user, oldest first.
pub fn of_user(conn: &mut DbConn, user_id: &str) -> Result<Vec<CredentialRow>, StoreError> {
    Ok(credentials::table
        .filter(credentials::user_id.eq(user_id))
        .order((credentials::created_at.asc(), credentials::id.asc()))
        .select(CredentialRow::as_select())
        .load(conn)?)
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

/// A successful authentication clears the failure count.
pub fn clear_attempts(conn: &mut DbConn, id: &str) -> Result<bool, StoreError> {
    let n = diesel::update(credentials::table.filter(credentials::id.eq(id)))
        .set(credentials::failed_auths.eq(0))
        .execute(conn)?;
    Ok(n == 1)
}

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
        let list = store.with(|c| of_user(c, "u1")).unwrap();
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
