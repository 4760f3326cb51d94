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

pub fn by_name(conn: &mut DbConn, name: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::name.eq(name))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn by_id(conn: &mut DbConn, id: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
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
        // names are unique
        let dup = UserRow {
            id: "u2".into(),
            ..row
        };
        assert!(store.with(|c| insert(c, &dup)).is_err());
    }
}
