//! Service authorization (CSC §2): `auth/login` with user name and password, bearer tokens,
//! `auth/revoke`.

use crate::auth::{password, token};
use crate::blocking;
use crate::error::CscError;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::DbConn;
use crate::store::models::{AccessTokenRow, UserId, UserRow};
use crate::store::repo;

/// A fresh access token and its lifetime in seconds.
pub struct Login {
    pub access_token: Secret,
    pub expires_in: i64,
}

/// Check user name and password; on success issue an access token.
#[tracing::instrument(skip_all)]
pub async fn login(state: &AppState, name: String, pw: Secret) -> Result<Login, CscError> {
    let st = state.clone();
    blocking::run(move || {
        let now = st.clock.now();
        let user = check_password(&st, &name, &pw, now)?;
        let access_token = token::generate();
        let expires_in = st.settings.access_token_ttl;
        let row = AccessTokenRow {
            token_hash: token::hash(access_token.expose()),
            user_id: user.id,
            expires_at: now + expires_in,
            revoked: false,
            created_at: now,
            scope: crate::store::models::SCOPE_SERVICE.into(),
        };
        let audit = super::event(
            now,
            &row.user_id,
            "login",
            None,
            "ok",
            serde_json::json!({}),
        );
        st.store.with(|c| {
            c.write_tx(|c| {
                repo::tokens::insert(c, &row)?;
                repo::audit::append(c, &audit)
            })
        })?;
        tracing::info!("login succeeded");
        Ok(Login {
            access_token,
            expires_in,
        })
    })
    .await
}

/// The user behind a bearer token, and the token's hash.
pub async fn authenticate(state: &AppState, bearer: Secret) -> Result<(UserId, Vec<u8>), CscError> {
    let store = state.store.clone();
    let now = state.clock.now();
    let token_hash = token::hash(bearer.expose());
    let th = token_hash.clone();
    let user = blocking::run(move || Ok(store.with(|c| repo::tokens::live_user(c, &th, now))?))
        .await?
        .ok_or(CscError::InvalidToken)?;
    Ok((UserId(user), token_hash))
}

/// The user behind a bearer token of either scope, and whether it is a credential token (an
/// OAuth `scope=credential` token: it only signs, as its own SAD).
pub async fn authenticate_for_signing(
    state: &AppState,
    bearer: &Secret,
) -> Result<(UserId, bool), CscError> {
    let store = state.store.clone();
    let now = state.clock.now();
    let th = token::hash(bearer.expose());
    blocking::run(move || store.with(|c| Ok(authenticate_for_signing_on(c, &th, now)))?).await
}

/// `authenticate_for_signing` on a connection the caller holds, by token hash (blocking).
pub(crate) fn authenticate_for_signing_on(
    conn: &mut DbConn,
    token_hash: &[u8],
    now: i64,
) -> Result<(UserId, bool), CscError> {
    let owner = repo::tokens::live_token(conn, token_hash, now)?.ok_or(CscError::InvalidToken)?;
    Ok((
        UserId(owner.user_id),
        owner.scope == crate::store::models::SCOPE_CREDENTIAL,
    ))
}

/// Revoke one of the caller's tokens (and the SADs issued under it).
pub async fn revoke(state: &AppState, user: &UserId, target: Secret) -> Result<(), CscError> {
    let store = state.store.clone();
    let user = user.0.clone();
    let target_hash = token::hash(target.expose());
    let revoked =
        blocking::run(move || Ok(store.with(|c| repo::tokens::revoke(c, &user, &target_hash))?))
            .await?;
    if revoked {
        tracing::info!("token revoked");
        Ok(())
    } else {
        Err(CscError::invalid("Invalid parameter token"))
    }
}

/// User name and password, the one place they are checked: unknown names cost the same argon2
/// work, a locked user is refused like a wrong password, failures are counted and audited, success
/// clears the count. Blocking.
pub(crate) fn check_password(
    st: &AppState,
    name: &str,
    pw: &Secret,
    now: i64,
) -> Result<UserRow, CscError> {
    // Before anything is read or counted: a flood of logins is turned away here, at once,
    // instead of queueing for argon2 on the blocking pool (and PIN checks go first there).
    let _admitted = password::admit_login()
        .ok_or(CscError::Busy("Too many logins at once: try again shortly"))?;
    let user = st.store.with(|c| repo::users::by_name(c, name))?;
    let Some(user) = user else {
        password::verify_dummy(pw, st.settings.hash, &st.pepper);
        return Err(CscError::AuthenticationError);
    };
    let refused = |outcome| {
        super::record(
            st,
            &super::event(now, &user.id, "login", None, outcome, serde_json::json!({})),
        )
    };
    let limit = st.settings.max_auth_failures;
    let lock = st.settings.login_lock_secs;
    if !st
        .store
        .with(|c| repo::users::reserve_login(c, &user.id, limit, now, lock))?
    {
        // Same answer as a wrong password, after the same argon2 work: a lock must not confirm
        // that the name exists, by its answer or by its time.
        password::verify_dummy(pw, st.settings.hash, &st.pepper);
        tracing::warn!("login refused: user locked after repeated failures");
        refused("locked")?;
        return Err(CscError::AuthenticationError);
    }
    if !password::verify_for(password::Work::Login, pw, &user.password_hash, &st.pepper) {
        tracing::info!("login refused: wrong password");
        refused("failed")?;
        return Err(CscError::AuthenticationError);
    }
    st.store.with(|c| repo::users::clear_logins(c, &user.id))?;
    if let Some(new) =
        password::rehash_if_stale(pw, &user.password_hash, st.settings.hash, &st.pepper)
    {
        super::store_rehash(st, "password", |c| {
            repo::users::replace_password_hash(c, &user.id, &user.password_hash, &new)
        });
    }
    Ok(user)
}
