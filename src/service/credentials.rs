//! `credentials/list` and `credentials/info` (CSC §3.1, §3.2): what a credential's key,
//! certificate and authorization look like, in domain terms; `api::credentials` shapes the JSON.

use crate::blocking;
use crate::crypto::{KeyType, SignAlgo, sign_algos_for};
use crate::error::CscError;
use crate::pki::{self, CertInfo};
use crate::state::AppState;
use crate::store::models::{CredentialRow, UserId};
use crate::store::repo;

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
    pub cert_valid_now: bool,
    pub multisign: i32,
    pub otp_online: bool,
}

impl CredentialView {
    /// Usable for signing right now (`onlyValid`).
    pub fn is_valid(&self) -> bool {
        self.enabled && self.cert_valid_now
    }

    /// `max_failures`: a credential at the PIN/OTP failure limit shows as disabled.
    pub fn from_row(
        row: &CredentialRow,
        now: i64,
        max_failures: i32,
    ) -> Result<CredentialView, CscError> {
        let key_type = super::key_type_of(row)?;
        let chain = pki::split_chain(&row.cert_chain)?;
        let ee = chain
            .first()
            .ok_or_else(|| CscError::Internal("credential without certificate".into()))?;
        let cert = pki::parse(ee)?;
        Ok(CredentialView {
            id: row.id.clone(),
            description: row.description.clone(),
            enabled: row.status == super::STATUS_ENABLED && row.failed_auths < max_failures,
            key_type,
            key_bits: row.key_bits,
            sign_algos: sign_algos_for(key_type),
            cert_valid_now: cert.not_before <= now && now < cert.not_after,
            chain,
            cert,
            multisign: row.multisign,
            otp_online: super::challenge::is_online(row),
        })
    }
}

/// The caller's credentials, optionally only those usable now.
pub async fn list(
    state: &AppState,
    user: &UserId,
    only_valid: bool,
) -> Result<Vec<CredentialView>, CscError> {
    let store = state.store.clone();
    let user = user.0.clone();
    let rows =
        blocking::run(move || Ok(store.with(|c| repo::credentials::of_user(c, &user))?)).await?;
    let now = state.clock.now();
    let mut views = Vec::with_capacity(rows.len());
    for row in &rows {
        let view = CredentialView::from_row(row, now, state.settings.max_auth_failures)?;
        if !only_valid || view.is_valid() {
            views.push(view);
        }
    }
    Ok(views)
}

/// One of the caller's credentials.
pub async fn info(state: &AppState, user: &UserId, id: &str) -> Result<CredentialView, CscError> {
    let row = super::owned_credential(state, user, id).await?;
    CredentialView::from_row(&row, state.clock.now(), state.settings.max_auth_failures)
}
