//! Access tokens from `auth/login`, stored only as SHA-256 hashes of the random token.

use diesel::prelude::*;

use crate::store::models::{AccessTokenRow, SCOPE_SERVICE, SigningCredential};
use crate::store::schema::{access_tokens, credentials, sads};
use crate::store::{DbConn, StoreError, on_backend};

pub fn insert(conn: &mut DbConn, row: &AccessTokenRow) -> Result<(), StoreError> {
    diesel::insert_into(access_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Who a token belongs to, and its scope.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = access_tokens)]
pub struct TokenOwner {
    pub user_id: String,
    pub scope: String,
}

/// The user owning a live (unrevoked, unexpired) service token: what the API methods accept.
pub fn live_user(
    conn: &mut DbConn,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<String>, StoreError> {
    Ok(live_token(conn, token_hash, now)?
        .filter(|owner| owner.scope == SCOPE_SERVICE)
        .map(|owner| owner.user_id))
}

/// The owner and scope of a live token of either scope (signHash also takes credential tokens).
pub fn live_token(
    conn: &mut DbConn,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<TokenOwner>, StoreError> {
    Ok(on_backend!(conn, |c| access_tokens::table
        .filter(access_tokens::token_hash.eq(token_hash))
        .filter(access_tokens::revoked.eq(false))
        .filter(access_tokens::expires_at.gt(now))
        .select(TokenOwner::as_select())
        .get_result(c)
        .optional())?)
}

/// A live token of either scope with the credential `credential_id` if that belongs to the
/// token's user (the columns signing needs): signHash's two lookups in one statement when both
/// are there (the success path); otherwise the token alone, so that the caller can tell a bad
/// token from a credential that is not its user's.
pub fn live_token_and_credential(
    conn: &mut DbConn,
    token_hash: &[u8],
    now: i64,
    credential_id: &str,
) -> Result<Option<(TokenOwner, Option<SigningCredential>)>, StoreError> {
    let both: Option<(TokenOwner, SigningCredential)> = on_backend!(&mut *conn, |c| {
        access_tokens::table
            .inner_join(
                credentials::table.on(credentials::id
                    .eq(credential_id)
                    .and(credentials::user_id.eq(access_tokens::user_id))),
            )
            .filter(access_tokens::token_hash.eq(token_hash))
            .filter(access_tokens::revoked.eq(false))
            .filter(access_tokens::expires_at.gt(now))
            .select((TokenOwner::as_select(), SigningCredential::as_select()))
            .get_result(c)
            .optional()
    })?;
    if let Some((owner, credential)) = both {
        return Ok(Some((owner, Some(credential))));
    }
    Ok(live_token(conn, token_hash, now)?.map(|owner| (owner, None)))
}

/// `auth/revoke` (RFC 7009 semantics, whatever the type hint): an access token of `user_id` is
/// revoked with the SADs issued under it (its refresh token, if any, lives on); a refresh token
/// of `user_id` is revoked with the access token of its grant. Returns whether a token matched.
pub fn revoke(conn: &mut DbConn, user_id: &str, token_hash: &[u8]) -> Result<bool, StoreError> {
    conn.write_tx(|c| {
        if super::oauth::revoke_refresh_of_user_in_tx(c, token_hash, user_id)? {
            return Ok(true);
        }
        let n = diesel::update(
            access_tokens::table
                .filter(access_tokens::token_hash.eq(token_hash))
                .filter(access_tokens::user_id.eq(user_id)),
        )
        .set(access_tokens::revoked.eq(true))
        .execute(c)?;
        if n > 0 {
            diesel::update(sads::table.filter(sads::token_hash.eq(token_hash)))
                .set(sads::remaining.eq(super::sads::RETIRED))
                .execute(c)?;
        }
        Ok::<bool, diesel::result::Error>(n > 0)
    })
    .map_err(StoreError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::repo::credentials::tests::user;
    use crate::store::repo::users;
    use crate::store::tests::temp_store;

    #[test]
    fn live_expired_and_revoked() {
        let (_d, store) = temp_store();
        store.with(|c| users::insert(c, &user("u1"))).unwrap();
        let row = AccessTokenRow {
            token_hash: vec![1; 32],
            user_id: "u1".into(),
            expires_at: 100,
            revoked: false,
            created_at: 1,
            scope: crate::store::models::SCOPE_SERVICE.into(),
        };
        store.with(|c| insert(c, &row)).unwrap();
        assert_eq!(
            store
                .with(|c| live_user(c, &[1; 32], 50))
                .unwrap()
                .as_deref(),
            Some("u1")
        );
        assert!(
            store
                .with(|c| live_user(c, &[1; 32], 100))
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .with(|c| live_user(c, &[2; 32], 50))
                .unwrap()
                .is_none()
        );
        assert!(!store.with(|c| revoke(c, "someone-else", &[1; 32])).unwrap());
        assert!(store.with(|c| revoke(c, "u1", &[1; 32])).unwrap());
        assert!(
            store
                .with(|c| live_user(c, &[1; 32], 50))
                .unwrap()
                .is_none()
        );
    }
}
