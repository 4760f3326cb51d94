//! Row types, and the `UserId` newtype the layers above use for the authenticated user.

use diesel::prelude::*;

use super::schema::{access_tokens, credentials, users};

/// `credentials.status` of a credential that may authorize and sign. Any other value (the
/// scale-test seed writes `scale-test`) shows as `key.status: "disabled"` and is refused.
pub const STATUS_ENABLED: &str = "enabled";
/// `credentials.status` of a credential an operator suspended (`quill credential disable`).
pub const STATUS_DISABLED: &str = "disabled";
/// `credentials.status` of the rows `quill admin seed` writes for scale tests.
pub const STATUS_SCALE_TEST: &str = "scale-test";

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

/// What signHash needs of a credential: no certificate chain, PIN hash or OTP secret is read
/// on the signing path.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = credentials)]
pub struct SigningCredential {
    pub id: String,
    pub key_id: Vec<u8>,
    pub key_type: String,
    pub key_bits: i32,
    pub not_before: i64,
    pub not_after: i64,
    pub status: String,
    pub multisign: i32,
    pub failed_auths: i32,
}

/// A credential row by reference, for multi-row inserts (`repo::credentials::insert_many`):
/// the scale-test seed writes a million rows that share one certificate chain without copying
/// it a million times. `None` is written as NULL (never DEFAULT), which lets SQLite take every
/// row of a batch in one statement.
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = credentials, treat_none_as_null = true)]
pub struct CredentialRef<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub key_id: &'a [u8],
    pub key_type: &'a str,
    pub key_bits: i32,
    pub cert_chain: &'a [u8],
    pub not_before: i64,
    pub not_after: i64,
    pub pin_hash: &'a str,
    pub otp_kind: &'a str,
    pub otp_secret: Option<&'a [u8]>,
    pub status: &'a str,
    pub multisign: i32,
    pub description: Option<&'a str>,
    pub failed_auths: i32,
    pub last_otp_step: Option<i64>,
    pub created_at: i64,
}

impl CredentialRow {
    /// This row by reference, for `insert_many`.
    pub fn as_ref(&self) -> CredentialRef<'_> {
        CredentialRef {
            id: &self.id,
            user_id: &self.user_id,
            key_id: &self.key_id,
            key_type: &self.key_type,
            key_bits: self.key_bits,
            cert_chain: &self.cert_chain,
            not_before: self.not_before,
            not_after: self.not_after,
            pin_hash: &self.pin_hash,
            otp_kind: &self.otp_kind,
            otp_secret: self.otp_secret.as_deref(),
            status: &self.status,
            multisign: self.multisign,
            description: self.description.as_deref(),
            failed_auths: self.failed_auths,
            last_otp_step: self.last_otp_step,
            created_at: self.created_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_tokens)]
pub struct AccessTokenRow {
    pub token_hash: Vec<u8>,
    pub user_id: String,
    pub expires_at: i64,
    pub revoked: bool,
    pub created_at: i64,
    /// `SCOPE_SERVICE` (the API) or `SCOPE_CREDENTIAL` (signs once through its SAD, nothing else).
    pub scope: String,
}

/// `access_tokens.scope` of a token that may call the API (auth/login, OAuth scope=service).
pub const SCOPE_SERVICE: &str = "service";
/// `access_tokens.scope` of an OAuth scope=credential token: it is the SAD of one authorization.
pub const SCOPE_CREDENTIAL: &str = "credential";

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
