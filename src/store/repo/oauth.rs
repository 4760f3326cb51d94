//! OAuth 2.0 state: registered clients, pending authorization requests (page or PAR), one-time
//! authorization codes and refresh tokens. Every secret value is stored as its SHA-256 hash.

use diesel::prelude::*;

use super::audit::{self, Event};
use super::sads;
use crate::store::models::{AccessTokenRow, NewSad};
use crate::store::schema::{
    access_tokens, credentials, oauth_clients, oauth_codes, oauth_refresh_tokens, oauth_requests,
};
use crate::store::{DbConn, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_clients)]
pub struct ClientRow {
    pub client_id: String,
    pub secret_hash: Option<Vec<u8>>,
    pub name: String,
    /// JSON array of exact redirect URIs.
    pub redirect_uris: String,
    /// The user a client_credentials grant acts as, if allowed.
    pub service_user_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_requests)]
pub struct RequestRow {
    pub handle_hash: Vec<u8>,
    pub client_id: String,
    pub params: String,
    pub csrf_hash: Option<Vec<u8>>,
    pub pushed: bool,
    pub expires_at: i64,
    pub created_at: i64,
    /// The user whose password was accepted on this request's page (online-OTP credentials
    /// log in before their code is sent).
    pub signer_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_codes)]
pub struct CodeRow {
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub user_id: String,
    pub params: String,
    pub used: bool,
    pub token_hash: Option<Vec<u8>>,
    pub expires_at: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_refresh_tokens)]
pub struct RefreshRow {
    pub token_hash: Vec<u8>,
    pub client_id: String,
    pub user_id: String,
    pub access_token_hash: Vec<u8>,
    pub revoked: bool,
    pub expires_at: i64,
    pub created_at: i64,
    /// The hash of the authorization code the grant began with, kept through rotations (None
    /// for client_credentials).
    pub grant_hash: Option<Vec<u8>>,
}

// ---- clients ----

pub fn insert_client(conn: &mut DbConn, row: &ClientRow) -> Result<(), StoreError> {
    diesel::insert_into(oauth_clients::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn client(conn: &mut DbConn, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
    Ok(oauth_clients::table
        .find(client_id)
        .select(ClientRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn clients(conn: &mut DbConn) -> Result<Vec<ClientRow>, StoreError> {
    Ok(oauth_clients::table
        .order(oauth_clients::created_at)
        .select(ClientRow::as_select())
        .load(conn)?)
}

/// Remove a client with its pending requests, codes and refresh tokens; whether it existed.
pub fn remove_client(conn: &mut DbConn, client_id: &str) -> Result<bool, StoreError> {
    conn.write_tx(|c| {
        diesel::delete(oauth_requests::table.filter(oauth_requests::client_id.eq(client_id)))
            .execute(c)?;
        diesel::delete(oauth_codes::table.filter(oauth_codes::client_id.eq(client_id)))
            .execute(c)?;
        // Tokens already issued die with the client.
        let issued: Vec<Vec<u8>> = oauth_refresh_tokens::table
            .filter(oauth_refresh_tokens::client_id.eq(client_id))
            .select(oauth_refresh_tokens::access_token_hash)
            .load(c)?;
        diesel::update(access_tokens::table.filter(access_tokens::token_hash.eq_any(&issued)))
            .set(access_tokens::revoked.eq(true))
            .execute(c)?;
        diesel::delete(
            oauth_refresh_tokens::table.filter(oauth_refresh_tokens::client_id.eq(client_id)),
        )
        .execute(c)?;
        let n = diesel::delete(oauth_clients::table.find(client_id)).execute(c)?;
        Ok::<bool, diesel::result::Error>(n == 1)
    })
    .map_err(StoreError::from)
}

// ---- authorization requests ----

pub fn insert_request(conn: &mut DbConn, row: &RequestRow) -> Result<(), StoreError> {
    diesel::insert_into(oauth_requests::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A live request by handle.
pub fn request(
    conn: &mut DbConn,
    handle_hash: &[u8],
    now: i64,
) -> Result<Option<RequestRow>, StoreError> {
    Ok(oauth_requests::table
        .find(handle_hash)
        .filter(oauth_requests::expires_at.gt(now))
        .select(RequestRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Bind the page's CSRF token to a request, once: a pushed `request_uri` opens one page only.
pub fn bind_csrf(
    conn: &mut DbConn,
    handle_hash: &[u8],
    csrf_hash: &[u8],
    expires_at: i64,
) -> Result<bool, StoreError> {
    Ok(diesel::update(
        oauth_requests::table
            .find(handle_hash)
            .filter(oauth_requests::csrf_hash.is_null()),
    )
    .set((
        oauth_requests::csrf_hash.eq(csrf_hash),
        oauth_requests::expires_at.eq(expires_at),
    ))
    .execute(conn)?
        == 1)
}

/// Record who logged in on a live request's page, once, with the request's parameters as they
/// now are when given (the credential picked by its qualifier): a request has one signer, and a
/// second login (another user's, or the same again) changes nothing. Returns whether it did.
pub fn log_in(
    conn: &mut DbConn,
    handle_hash: &[u8],
    user_id: &str,
    params: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let live = oauth_requests::table
        .find(handle_hash)
        .filter(oauth_requests::signer_id.is_null())
        .filter(oauth_requests::expires_at.gt(now));
    let n = match params {
        Some(p) => diesel::update(live)
            .set((
                oauth_requests::signer_id.eq(user_id),
                oauth_requests::params.eq(p),
            ))
            .execute(conn)?,
        None => diesel::update(live)
            .set(oauth_requests::signer_id.eq(user_id))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// End a request without a code (the signer cancelled, or it was locked out).
pub fn drop_request(conn: &mut DbConn, handle_hash: &[u8]) -> Result<bool, StoreError> {
    Ok(diesel::delete(oauth_requests::table.find(handle_hash)).execute(conn)? == 1)
}

/// Turn a pending request into a one-time code, atomically: a request yields one code at most
/// (a second submission of the same page finds nothing). Returns whether it did.
pub fn issue_code(
    conn: &mut DbConn,
    handle_hash: &[u8],
    code: &CodeRow,
    event: &Event,
) -> Result<bool, StoreError> {
    conn.write_tx(|c| {
        let taken = diesel::delete(oauth_requests::table.find(handle_hash)).execute(c)?;
        if taken != 1 {
            return Ok(false);
        }
        diesel::insert_into(oauth_codes::table)
            .values(code)
            .execute(c)?;
        audit::append(c, event).map_err(to_diesel)?;
        Ok::<bool, diesel::result::Error>(true)
    })
    .map_err(StoreError::from)
}

// ---- codes and tokens ----

/// What presenting a code found.
#[derive(Debug)]
pub enum Redeemed {
    /// First use, in time: the code, now marked used.
    Fresh(CodeRow),
    /// Unknown or expired.
    Invalid,
    /// Presented again: the token issued for it (if any) has been revoked.
    Replayed,
}

/// Mark a code used (one conditional UPDATE: two concurrent exchanges cannot both win). A code
/// presented a second time revokes what the first exchange got (RFC 6749 §4.1.2): its access
/// token, and every refresh token of the grant with its access token, rotated ones included.
pub fn redeem_code(conn: &mut DbConn, code_hash: &[u8], now: i64) -> Result<Redeemed, StoreError> {
    conn.write_tx(|c| {
        let won = diesel::update(
            oauth_codes::table
                .find(code_hash)
                .filter(oauth_codes::used.eq(false))
                .filter(oauth_codes::expires_at.gt(now)),
        )
        .set(oauth_codes::used.eq(true))
        .execute(c)?;
        let row: Option<CodeRow> = oauth_codes::table
            .find(code_hash)
            .select(CodeRow::as_select())
            .get_result(c)
            .optional()?;
        Ok::<Redeemed, diesel::result::Error>(match row {
            Some(row) if won == 1 => Redeemed::Fresh(row),
            Some(row) if row.used => {
                match &row.token_hash {
                    Some(token) => revoke_access_in_tx(c, token)?,
                    // Presented again while the first exchange is still issuing its tokens:
                    // mark the code so that issuing finds it and gives nothing out.
                    None => {
                        diesel::update(
                            oauth_codes::table
                                .find(code_hash)
                                .filter(oauth_codes::token_hash.is_null()),
                        )
                        .set(oauth_codes::token_hash.eq(REPLAYED_BEFORE_ISSUE))
                        .execute(c)?;
                    }
                }
                revoke_grant_in_tx(c, code_hash)?;
                Redeemed::Replayed
            }
            _ => Redeemed::Invalid,
        })
    })
    .map_err(StoreError::from)
}

/// Revoke `user_id`'s refresh token `token_hash` and the access token of its grant (with that
/// token's SADs). Whether such a refresh token exists.
pub(crate) fn revoke_refresh_of_user_in_tx(
    c: &mut DbConn,
    token_hash: &[u8],
    user_id: &str,
) -> Result<bool, diesel::result::Error> {
    let access: Option<Vec<u8>> = oauth_refresh_tokens::table
        .find(token_hash)
        .filter(oauth_refresh_tokens::user_id.eq(user_id))
        .select(oauth_refresh_tokens::access_token_hash)
        .get_result(c)
        .optional()?;
    let Some(access) = access else {
        return Ok(false);
    };
    revoke_pair_in_tx(c, token_hash, &access)?;
    Ok(true)
}

/// Revoke every refresh token of the grant that began with code `grant_hash`, with their access
/// tokens.
fn revoke_grant_in_tx(c: &mut DbConn, grant_hash: &[u8]) -> Result<(), diesel::result::Error> {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = oauth_refresh_tokens::table
        .filter(oauth_refresh_tokens::grant_hash.eq(grant_hash))
        .select((
            oauth_refresh_tokens::token_hash,
            oauth_refresh_tokens::access_token_hash,
        ))
        .load(c)?;
    for (refresh, access) in &pairs {
        revoke_pair_in_tx(c, refresh, access)?;
    }
    Ok(())
}

/// Revoke a refresh token and the access token it was issued with (and that token's SADs).
fn revoke_pair_in_tx(
    c: &mut DbConn,
    refresh_hash: &[u8],
    access_hash: &[u8],
) -> Result<(), diesel::result::Error> {
    diesel::update(oauth_refresh_tokens::table.find(refresh_hash))
        .set(oauth_refresh_tokens::revoked.eq(true))
        .execute(c)?;
    revoke_access_in_tx(c, access_hash)
}

fn revoke_access_in_tx(c: &mut DbConn, token_hash: &[u8]) -> Result<(), diesel::result::Error> {
    diesel::update(access_tokens::table.find(token_hash))
        .set(access_tokens::revoked.eq(true))
        .execute(c)?;
    diesel::update(
        crate::store::schema::sads::table
            .filter(crate::store::schema::sads::token_hash.eq(token_hash)),
    )
    .set(crate::store::schema::sads::remaining.eq(sads::RETIRED))
    .execute(c)?;
    Ok(())
}

fn to_diesel(e: StoreError) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(e.to_string().into())
}

/// What a token response stores: the access token, and a refresh token (service scope) or a
/// SAD keyed by the access token itself (credential scope).
pub struct Issue<'a> {
    pub code_hash: Option<&'a [u8]>,
    pub access: &'a AccessTokenRow,
    pub refresh: Option<&'a RefreshRow>,
    pub sad: Option<&'a NewSad>,
    pub event: &'a Event,
}

/// `oauth_codes.token_hash` of a code presented again before its first exchange had issued
/// its tokens (no token has an empty hash).
const REPLAYED_BEFORE_ISSUE: &[u8] = b"";

/// Store what a token response hands out, in one transaction. `false`: nothing was stored,
/// because the code it is issued for was presented again meanwhile (and so revoked).
pub fn issue_tokens(conn: &mut DbConn, issue: &Issue<'_>) -> Result<bool, StoreError> {
    let outcome = conn.write_tx(|c| {
        diesel::insert_into(access_tokens::table)
            .values(issue.access)
            .execute(c)?;
        if let Some(refresh) = issue.refresh {
            diesel::insert_into(oauth_refresh_tokens::table)
                .values(refresh)
                .execute(c)?;
        }
        if let Some(sad) = issue.sad {
            sads::insert_in_tx(c, sad)?;
        }
        if let Some(code) = issue.code_hash {
            let linked = diesel::update(
                oauth_codes::table
                    .find(code)
                    .filter(oauth_codes::token_hash.is_null()),
            )
            .set(oauth_codes::token_hash.eq(&issue.access.token_hash))
            .execute(c)?;
            if linked != 1 {
                // Roll back what was inserted: the code was replayed.
                return Err(diesel::result::Error::RollbackTransaction);
            }
        }
        audit::append(c, issue.event).map_err(to_diesel)?;
        Ok::<(), diesel::result::Error>(())
    });
    match outcome {
        Ok(()) => Ok(true),
        Err(diesel::result::Error::RollbackTransaction) => Ok(false),
        Err(e) => Err(StoreError::from(e)),
    }
}

/// The owner of a spent refresh token and the grant it belonged to (`RefreshRow::grant_hash`).
pub struct Rotated {
    pub user_id: String,
    pub grant_hash: Option<Vec<u8>>,
}

/// Spend a refresh token of `client_id` (rotation: each works once); its user and grant. A
/// refresh token already spent or revoked, presented again before it would have expired, is taken
/// for a stolen copy (RFC 9700 §4.14.2): every token of its grant is revoked, so the pair it was
/// rotated into stops working too.
pub fn rotate_refresh(
    conn: &mut DbConn,
    token_hash: &[u8],
    client_id: &str,
    now: i64,
) -> Result<Option<Rotated>, StoreError> {
    conn.write_tx(|c| {
        let won = diesel::update(
            oauth_refresh_tokens::table
                .find(token_hash)
                .filter(oauth_refresh_tokens::client_id.eq(client_id))
                .filter(oauth_refresh_tokens::revoked.eq(false))
                .filter(oauth_refresh_tokens::expires_at.gt(now)),
        )
        .set(oauth_refresh_tokens::revoked.eq(true))
        .execute(c)?;
        if won != 1 {
            let reused: Option<Option<Vec<u8>>> = oauth_refresh_tokens::table
                .find(token_hash)
                .filter(oauth_refresh_tokens::client_id.eq(client_id))
                .filter(oauth_refresh_tokens::revoked.eq(true))
                .filter(oauth_refresh_tokens::expires_at.gt(now))
                .select(oauth_refresh_tokens::grant_hash)
                .get_result(c)
                .optional()?;
            if let Some(Some(grant)) = reused {
                revoke_grant_in_tx(c, &grant)?;
            }
            return Ok(None);
        }
        let (user, access, grant): (String, Vec<u8>, Option<Vec<u8>>) = oauth_refresh_tokens::table
            .find(token_hash)
            .select((
                oauth_refresh_tokens::user_id,
                oauth_refresh_tokens::access_token_hash,
                oauth_refresh_tokens::grant_hash,
            ))
            .get_result(c)?;
        // The access token of the old pair goes with it.
        revoke_access_in_tx(c, &access)?;
        // A grant issued before grants were recorded (an older version, or rotated by one) is
        // named from here on by this token: presented again, it revokes what it turns into.
        let grant = match grant {
            Some(grant) => grant,
            None => {
                diesel::update(oauth_refresh_tokens::table.find(token_hash))
                    .set(oauth_refresh_tokens::grant_hash.eq(token_hash))
                    .execute(c)?;
                token_hash.to_vec()
            }
        };
        Ok::<_, diesel::result::Error>(Some(Rotated {
            user_id: user,
            grant_hash: Some(grant),
        }))
    })
    .map_err(StoreError::from)
}

/// RFC 7009: revoke a refresh token (and its access token) or an access token that was issued
/// to `client_id`. Whether anything of that client matched.
pub fn revoke_for_client(
    conn: &mut DbConn,
    token_hash: &[u8],
    client_id: &str,
) -> Result<bool, StoreError> {
    conn.write_tx(|c| {
        let refresh: Option<Vec<u8>> = oauth_refresh_tokens::table
            .find(token_hash)
            .filter(oauth_refresh_tokens::client_id.eq(client_id))
            .select(oauth_refresh_tokens::access_token_hash)
            .get_result(c)
            .optional()?;
        if let Some(access) = refresh {
            revoke_pair_in_tx(c, token_hash, &access)?;
            return Ok(true);
        }
        let by_refresh = oauth_refresh_tokens::table
            .filter(oauth_refresh_tokens::access_token_hash.eq(token_hash))
            .filter(oauth_refresh_tokens::client_id.eq(client_id))
            .count()
            .get_result::<i64>(c)?;
        let by_code = oauth_codes::table
            .filter(oauth_codes::token_hash.eq(token_hash))
            .filter(oauth_codes::client_id.eq(client_id))
            .count()
            .get_result::<i64>(c)?;
        if by_refresh + by_code == 0 {
            return Ok(false);
        }
        diesel::update(
            oauth_refresh_tokens::table
                .filter(oauth_refresh_tokens::access_token_hash.eq(token_hash)),
        )
        .set(oauth_refresh_tokens::revoked.eq(true))
        .execute(c)?;
        revoke_access_in_tx(c, token_hash)?;
        Ok::<bool, diesel::result::Error>(true)
    })
    .map_err(StoreError::from)
}

/// A credential by id with its owner (the OAuth page learns the signer from the credential).
pub fn credential(
    conn: &mut DbConn,
    id: &str,
) -> Result<Option<crate::store::models::CredentialRow>, StoreError> {
    Ok(credentials::table
        .find(id)
        .select(crate::store::models::CredentialRow::as_select())
        .get_result(conn)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::repo::credentials::tests::user;
    use crate::store::repo::sads::tests::ev as event;
    use crate::store::repo::users;
    use crate::store::tests::temp_store;

    /// A code presented again while its first exchange is still issuing (between the redeem
    /// and the issue, two transactions): the issue stores nothing, so no token outlives the
    /// replay's revocation.
    #[test]
    fn a_code_replayed_before_its_tokens_are_issued_gives_none_out() {
        let (_d, store) = temp_store();
        store
            .with(|c| {
                users::insert(c, &user("u1"))?;
                insert_client(
                    c,
                    &ClientRow {
                        client_id: "cl".into(),
                        secret_hash: None,
                        name: "c".into(),
                        redirect_uris: "[]".into(),
                        service_user_id: None,
                        created_at: 0,
                    },
                )?;
                diesel::insert_into(oauth_codes::table)
                    .values(&CodeRow {
                        code_hash: vec![1; 32],
                        client_id: "cl".into(),
                        user_id: "u1".into(),
                        params: "{}".into(),
                        used: false,
                        token_hash: None,
                        expires_at: 100,
                        created_at: 0,
                    })
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
        let redeem = || store.with(|c| redeem_code(c, &[1; 32], 10)).unwrap();
        assert!(matches!(redeem(), Redeemed::Fresh(_)));
        assert!(matches!(redeem(), Redeemed::Replayed));
        let access = AccessTokenRow {
            token_hash: vec![2; 32],
            user_id: "u1".into(),
            expires_at: 100,
            revoked: false,
            created_at: 0,
            scope: crate::store::models::SCOPE_SERVICE.into(),
        };
        let issue = |code: &[u8]| {
            store
                .with(|c| {
                    issue_tokens(
                        c,
                        &Issue {
                            code_hash: Some(code),
                            access: &access,
                            refresh: None,
                            sad: None,
                            event: &event(),
                        },
                    )
                })
                .unwrap()
        };
        assert!(!issue(&[1; 32]), "nothing is issued for a replayed code");
        let stored: i64 = store
            .with(|c| {
                Ok(access_tokens::table
                    .filter(access_tokens::token_hash.eq(vec![2u8; 32]))
                    .count()
                    .get_result(c)?)
            })
            .unwrap();
        assert_eq!(stored, 0);
        assert!(
            matches!(redeem(), Redeemed::Replayed),
            "and it stays replayed"
        );
    }
}
