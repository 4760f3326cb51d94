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
    fn credential_needs_an_existing_user() {
        let (_d, store) = temp_store();
        assert!(store.with(|c| insert(c, &sample("c1", "ghost"))).is_err());
    }
}
