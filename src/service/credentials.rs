//! `credentials/list` and `credentials/info` (CSC §3.1, §3.2): what a credential's key,
//! certificate and authorization look like, in domain terms; `api::credentials` shapes the JSON.
//! Lists come a page at a time (keyset on (created_at, id), see `paging`).

use crate::blocking;
use crate::crypto::{KeyType, SignAlgo, sign_algos_for};
use crate::error::CscError;
use crate::pki::{self, CertInfo};
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::models::{CredentialRow, UserId};
use crate::store::repo;
use crate::store::repo::credentials::{Cursor, UsableAt};

use super::paging;

/// Everything `credentials/info` can say about one credential.
pub struct CredentialView {
    pub id: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub key_type: KeyType,
    pub key_bits: i32,
    pub sign_algos: &'static [SignAlgo],
    /// DER certificates, end-entity first.
    pub chain: Vec<Vec<u8>>,
    pub cert: CertInfo,
    /// The certificate's validity at the time of the request.
    pub cert_validity: pki::Validity,
    pub multisign: i32,
    pub otp_online: bool,
}

impl CredentialView {
    /// Usable for signing right now (`onlyValid`).
    pub fn is_valid(&self) -> bool {
        self.enabled && self.cert_validity == pki::Validity::Valid
    }

    /// `max_failures`: a credential at the PIN/OTP failure limit shows as disabled.
    pub fn from_row(
        row: &CredentialRow,
        now: i64,
        max_failures: i32,
    ) -> Result<CredentialView, CscError> {
        let key_type = super::key_type_of(&row.key_type)?;
        let chain = pki::split_chain(&row.cert_chain)?;
        let ee = chain
            .first()
            .ok_or_else(|| CscError::Internal("credential without certificate".into()))?;
        let cert = pki::parse(ee)?;
        Ok(CredentialView {
            id: row.id.clone(),
            description: row.description.clone(),
            enabled: super::is_usable(&row.status, row.failed_auths, max_failures),
            key_type,
            key_bits: row.key_bits,
            sign_algos: sign_algos_for(key_type),
            cert_validity: pki::Validity::at(cert.not_before, cert.not_after, now),
            chain,
            cert,
            multisign: row.multisign,
            otp_online: super::challenge::is_online(row),
        })
    }
}

/// One page of the caller's credentials.
pub struct CredentialPage {
    /// The credential IDs, in order.
    pub ids: Vec<String>,
    /// Their details, when asked for (same order).
    pub views: Option<Vec<CredentialView>>,
    /// Present exactly when more credentials follow this page.
    pub next_page_token: Option<String>,
}

/// The caller's credentials, oldest first, one page of at most `limit` (1..=`MAX_PAGE`)
/// after `after` (from a page token); with `only_valid`, only those usable now — decided in the
/// page query from the stored status, failure count and certificate validity dates (the same
/// rule as `CredentialView::is_valid`), so a page is short only when nothing usable follows.
/// With `details`, each credential's certificate is parsed into a `CredentialView`; a list of
/// IDs parses nothing.
pub async fn list(
    state: &AppState,
    user: &UserId,
    only_valid: bool,
    details: bool,
    limit: u32,
    after: Option<Cursor>,
) -> Result<CredentialPage, CscError> {
    let limit = limit.clamp(1, paging::MAX_PAGE);
    let now = state.clock.now();
    let max_failures = state.settings.max_auth_failures;
    let usable = only_valid.then_some(UsableAt { now, max_failures });
    let store = state.store.clone();
    let user_id = user.0.clone();
    let after = after.unwrap_or_else(Cursor::start);
    // One row more than the page tells whether another page follows.
    let mut rows = blocking::run(move || {
        Ok(store.with(|c| {
            repo::credentials::page_of_user(c, &user_id, &after, usable, i64::from(limit) + 1)
        })?)
    })
    .await?;
    let page = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > page;
    rows.truncate(page);
    let next_page_token = if more {
        rows.last()
            .map(|last| paging::encode(&user.0, &Cursor::of(last)))
    } else {
        None
    };
    let views = if details {
        Some(
            rows.iter()
                .map(|row| CredentialView::from_row(row, now, max_failures))
                .collect::<Result<Vec<_>, _>>()?,
        )
    } else {
        None
    };
    Ok(CredentialPage {
        ids: rows.into_iter().map(|r| r.id).collect(),
        views,
        next_page_token,
    })
}

/// One of the caller's credentials.
/// `credentials/info` for a service token, or for an OAuth credential token (CSC §0: "service
/// or credential-scoped token"), which shows only the credential it was issued for: any other
/// id gets the unknown-credential answer.
pub async fn info(
    state: &AppState,
    user: &UserId,
    credential_token: Option<&Secret>,
    id: &str,
) -> Result<CredentialView, CscError> {
    let store = state.store.clone();
    let hash = credential_token.map(|t| crate::auth::token::hash(t.expose()));
    let (user, id) = (user.clone(), id.to_string());
    // One trip to the blocking pool and one connection for both lookups.
    let row = blocking::run(move || {
        store.with(|c| {
            if let Some(hash) = &hash
                && repo::sads::credential_of(c, hash)?.as_deref() != Some(id.as_str())
            {
                return Ok(Err(super::unknown_credential()));
            }
            Ok(super::owned_credential_on(c, &user, &id))
        })?
    })
    .await?;
    CredentialView::from_row(&row, state.clock.now(), state.settings.max_auth_failures)
}
