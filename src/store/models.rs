//! Row types, and the `UserId` newtype the layers above use for the authenticated user.

use diesel::prelude::*;

use super::schema::{access_tokens, credentials, users};

/// A user's internal id (not shown to clients).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub password_hash: String,
    pub failed_logins: i32,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = credentials)]
pub struct CredentialRow {
    pub id: String,
    pub user_id: String,
    pub key_id: Vec<u8>,
    pub key_type: String,
    pub key_bits: i32,
    pub cert_chain: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub pin_hash: String,
    pub otp_kind: String,
    pub otp_secret: Option<Vec<u8>>,
    pub status: String,
    pub multisign: i32,
    pub description: Option<String>,
    pub failed_auths: i32,
    pub last_otp_step: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_tokens)]
pub struct AccessTokenRow {
    pub token_hash: Vec<u8>,
    pub user_id: String,
    pub expires_at: i64,
    pub revoked: bool,
    pub created_at: i64,
}

/// A new SAD with the digests it authorizes.
#[derive(Debug, Clone)]
pub struct NewSad {
    pub sad_hash: Vec<u8>,
    pub token_hash: Vec<u8>,
    pub user_id: String,
    pub credential_id: String,
    pub hash_algo: String,
    pub num_signatures: i32,
    pub expires_at: i64,
    pub created_at: i64,
    pub digests: Vec<Vec<u8>>,
}
