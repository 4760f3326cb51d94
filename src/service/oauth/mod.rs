//! The OAuth 2.0 authorization server of CSC v2 (§8): `oauth2/authorize` (a page where the
//! signer proves sole control), `oauth2/pushed_authorize` (PAR, RFC 9126), `oauth2/token`
//! (authorization_code with PKCE S256, refresh_token, client_credentials for clients given a
//! service user) and `oauth2/revoke` (RFC 7009). `scope=service` yields an API token;
//! `scope=credential` (or RAR `authorization_details` of type `credential`) yields a token that
//! *is* a SAD: stored as a SAD row keyed by the token's hash, bound to the user, credential,
//! digest algorithm, digests and count, and spent by the same code as any SAD.
//!
//! `request` parses and bounds an authorization request, `page` shows the signer's page (begin),
//! `submit` takes its answers (password, PIN and OTP, then the code), `client` runs the client's
//! endpoints (token, PAR, revocation).

mod client;
mod page;
mod request;
mod submit;

pub use client::{ClientAuth, TokenResponse, push, revoke, token_endpoint};
pub use page::{CredentialView, Page, Step, begin};
pub use request::AuthzParams;
pub use submit::{Outcome, Submission, submit};

use std::collections::HashMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::token;
use crate::blocking;
use crate::crypto::HashAlg;
use crate::error::CscError;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::{
    AccessTokenRow, CredentialRow, NewSad, SCOPE_CREDENTIAL, SCOPE_SERVICE, UserId,
};
use crate::store::repo;
use crate::store::repo::oauth::{ClientRow, CodeRow, Issue, Redeemed, RefreshRow, RequestRow};

/// How long the signer has to complete the page.
pub const PAGE_TTL: i64 = 600;
/// Lifetime of a pushed request_uri (RFC 9126 suggests short).
pub const PAR_TTL: i64 = 90;
/// Lifetime of an authorization code.
pub const CODE_TTL: i64 = 60;
/// Lifetime of a refresh token.
pub const REFRESH_TTL: i64 = 30 * 86_400;
/// Prefix of pushed request URIs.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// An OAuth error (RFC 6749 §5.2 shape: `error`, `error_description`).
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, d: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: d.into(),
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(401, "invalid_client", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", d)
    }
    pub fn access_denied(d: impl Into<String>) -> Self {
        Self::new(400, "access_denied", d)
    }
    pub fn payload_too_large() -> Self {
        Self::new(413, "invalid_request", "Request body too large")
    }
    pub fn request_timeout() -> Self {
        Self::new(408, "invalid_request", "Request body not received in time")
    }
}

impl From<CscError> for OAuthError {
    fn from(e: CscError) -> Self {
        match e {
            CscError::Unavailable(_) | CscError::NotReady(_) => Self::new(
                503,
                "temporarily_unavailable",
                "Service temporarily unavailable",
            ),
            CscError::Busy(why) => Self::new(503, "temporarily_unavailable", why),
            CscError::Internal(cause) => {
                tracing::error!(cause = %cause, "oauth request failed");
                Self::new(500, "server_error", "Internal server error")
            }
            other => Self::invalid_request(other.to_string()),
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        CscError::from(e).into()
    }
}

/// Form or query parameters; a repeated parameter is an error (RFC 6749 §3.1). The error names
/// the parameter only when the name looks like one (it is request text, possibly a lot of it).
pub fn single_params(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>, OAuthError> {
    let mut map = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if map.contains_key(&k) {
            let named = (1..=40).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            return Err(OAuthError::invalid_request(if named {
                format!("Parameter {k} given more than once")
            } else {
                "A parameter is given more than once".to_string()
            }));
        }
        map.insert(k, v);
    }
    Ok(map)
}
/// Where a failed authorization request goes: to the client (redirect with `error`) once the
/// client and redirect URI are known good, else to the user (an error page, never a redirect).
#[derive(Debug)]
pub enum AuthzFailure {
    Page(OAuthError),
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

impl From<OAuthError> for AuthzFailure {
    fn from(e: OAuthError) -> Self {
        AuthzFailure::Page(e)
    }
}

fn client_redirects(client: &ClientRow) -> Vec<String> {
    serde_json::from_str(&client.redirect_uris).unwrap_or_default()
}

/// The client and its exact registered redirect URI (the only one may be omitted).
fn check_redirect(client: &ClientRow, given: Option<&String>) -> Result<String, OAuthError> {
    let registered = client_redirects(client);
    match given {
        Some(uri) if registered.iter().any(|r| r == uri) => Ok(uri.clone()),
        Some(_) => Err(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        )),
        None => match registered.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(OAuthError::invalid_request(
                "Missing parameter redirect_uri",
            )),
        },
    }
}

async fn load_client(st: &AppState, client_id: &str) -> Result<Option<ClientRow>, OAuthError> {
    let store = st.store.clone();
    let id = client_id.to_string();
    Ok(blocking::run(move || Ok(store.with(|c| repo::oauth::client(c, &id))?)).await?)
}

fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

fn valid_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A new client: its id and (confidential clients) secret, shown once.
pub struct NewClient {
    pub client_id: String,
    pub client_secret: Option<Secret>,
}

/// Register a client (`quill client add`).
pub fn register_client(
    st: &crate::store::Store,
    name: &str,
    redirect_uris: &[String],
    public: bool,
    service_user: Option<&str>,
    now: i64,
) -> anyhow::Result<NewClient> {
    anyhow::ensure!(
        !redirect_uris.is_empty(),
        "at least one --redirect-uri is needed"
    );
    for uri in redirect_uris {
        let parsed = url::Url::parse(uri).map_err(|e| anyhow::anyhow!("{uri}: {e}"))?;
        anyhow::ensure!(
            parsed.fragment().is_none(),
            "{uri}: a redirect URI has no fragment"
        );
        // Schemes a browser would run or read locally, never a client's callback (RFC 8252
        // private-use schemes such as `com.example.app:/cb` stay allowed), and no credentials.
        anyhow::ensure!(
            !matches!(
                parsed.scheme(),
                "javascript" | "data" | "file" | "vbscript" | "blob" | "about"
            ),
            "{uri}: not a redirect URI scheme"
        );
        anyhow::ensure!(
            parsed.username().is_empty() && parsed.password().is_none(),
            "{uri}: a redirect URI has no user or password"
        );
        anyhow::ensure!(
            parsed.scheme() == "https"
                || parsed
                    .host_str()
                    .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]")
                || !matches!(parsed.scheme(), "http"),
            "{uri}: use https (http only for loopback)"
        );
    }
    let service_user_id = match service_user {
        Some(name) => Some(
            st.with(|c| repo::users::by_name(c, name))?
                .ok_or_else(|| anyhow::anyhow!("no user named {name}"))?
                .id,
        ),
        None => None,
    };
    let client_id = token::random_id(16);
    let secret = (!public).then(token::generate);
    let row = ClientRow {
        client_id: client_id.clone(),
        secret_hash: secret.as_ref().map(|s| token::hash(s.expose())),
        name: name.to_string(),
        redirect_uris: serde_json::to_string(redirect_uris)?,
        service_user_id,
        created_at: now,
    };
    st.with(|c| repo::oauth::insert_client(c, &row))?;
    Ok(NewClient {
        client_id,
        client_secret: secret,
    })
}
