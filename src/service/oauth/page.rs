//! The signer's authorization page: `begin` stores the request and shows the page (`submit`,
//! beside it, takes the page's answers).

use super::request::*;
use super::*;

/// What the authorization page shows and posts back.
pub struct Page {
    /// The request's handle (a hidden form field).
    pub handle: Secret,
    /// The CSRF token (a hidden form field and a cookie).
    pub csrf: Secret,
    pub params: AuthzParams,
    pub client_name: String,
    /// Credential scope: what the page shows of the credential and asks for.
    pub credential: Option<CredentialView>,
    /// A message after a failed attempt.
    pub error: Option<&'static str>,
}

/// Send the owner of an online-OTP credential its code from the page, unless one is pending
/// (nothing for an authenticator-app credential).
pub(super) async fn send_online_code(
    st: &AppState,
    cred: &CredentialRow,
) -> Result<(), OAuthError> {
    if !crate::service::challenge::is_online(cred) {
        return Ok(());
    }
    let owner = UserId(cred.user_id.clone());
    let resend = crate::service::challenge::Resend::UnlessPending;
    crate::service::challenge::send_code(st, &owner, &cred.id, "OTP", resend).await?;
    Ok(())
}

/// Which fields a credential-scope page asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A named authenticator-app credential: user name, password, PIN and code, at once.
    All,
    /// User name and password first: for an online-OTP credential, whose code is sent only once
    /// they are its owner's (opening the page, which anyone with a client ID can do, sends
    /// nothing), and for a credential picked by its qualifier, once the signer is known.
    Login,
    /// After the signer logged in on this page: PIN and code (sent now if online).
    Codes,
}

/// The credential as the page shows it.
#[derive(Debug, Clone)]
pub struct CredentialView {
    /// Its description or ID; none before a credential picked by qualifier is known.
    pub name: Option<String>,
    /// Whether its code is sent (online OTP) rather than read from an authenticator app.
    pub sends_code: bool,
    pub step: Step,
}

impl CredentialView {
    pub(super) fn of(cred: &CredentialRow, step: Step) -> CredentialView {
        CredentialView {
            name: Some(cred.description.clone().unwrap_or_else(|| cred.id.clone())),
            sends_code: crate::service::challenge::is_online(cred),
            step,
        }
    }
}

/// The live authorization request of a page, by its handle's hash.
pub(super) async fn live_request(
    st: &AppState,
    handle_hash: &[u8],
) -> Result<Option<RequestRow>, OAuthError> {
    let (store, hh, now) = (st.store.clone(), handle_hash.to_vec(), st.clock.now());
    Ok(blocking::run(move || Ok(store.with(|c| repo::oauth::request(c, &hh, now))?)).await?)
}

async fn credential_row(st: &AppState, id: &str) -> Result<Option<CredentialRow>, OAuthError> {
    let store = st.store.clone();
    let id = id.to_string();
    Ok(blocking::run(move || Ok(store.with(|c| repo::oauth::credential(c, &id))?)).await?)
}

/// The credential of a credential-scope request, usable for this request.
pub(super) async fn usable_credential(
    st: &AppState,
    p: &AuthzParams,
) -> Result<CredentialRow, OAuthError> {
    let id = p.credential_id.as_deref().unwrap_or_default();
    let cred = credential_row(st, id)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("Invalid parameter credentialID"))?;
    judge_credential(st, p, cred)
}

/// The signer's credential for a request that named only a `signatureQualifier`: the oldest
/// of `user_id`'s credentials that is usable now, makes that qualifier, allows the request's
/// signatures (picked at the page's login step).
pub(super) async fn credential_by_qualifier(
    st: &AppState,
    p: &AuthzParams,
    user_id: &str,
) -> Result<Option<CredentialRow>, OAuthError> {
    let usable = repo::credentials::UsableAt {
        now: st.clock.now(),
        max_failures: st.settings.max_auth_failures,
    };
    let (store, user_id) = (st.store.clone(), user_id.to_string());
    let rows = blocking::run(move || {
        let start = repo::credentials::Cursor::start();
        Ok(store
            .with(|c| repo::credentials::page_of_user(c, &user_id, &start, Some(usable), 1000))?)
    })
    .await?;
    for cred in rows {
        match judge_credential(st, p, cred) {
            Ok(cred) => return Ok(Some(cred)),
            // Not this one (another qualifier, too few signatures); a fault is no answer.
            Err(e) if e.status < 500 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Whether `cred` can serve the request: usable, enough signatures, the qualifier asked for.
fn judge_credential(
    st: &AppState,
    p: &AuthzParams,
    cred: CredentialRow,
) -> Result<CredentialRow, OAuthError> {
    if !crate::service::is_usable(
        &cred.status,
        cred.failed_auths,
        st.settings.max_auth_failures,
    ) {
        return Err(OAuthError::access_denied(
            "The credential is disabled or locked",
        ));
    }
    if p.num_signatures.unwrap_or(0) > i64::from(cred.multisign) {
        return Err(OAuthError::invalid_request(
            "Numbers of signatures is too high",
        ));
    }
    if let Some(wanted) = &p.signature_qualifier
        && let Some(why) = crate::service::qualifier_mismatch(&cred.cert_chain, wanted)?
    {
        return Err(OAuthError::invalid_request(why));
    }
    Ok(cred)
}

/// `GET oauth2/authorize`: validate, remember the request, and describe the page to show.
pub async fn begin(st: &AppState, p: HashMap<String, String>) -> Result<Page, AuthzFailure> {
    let client_id = p
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter client_id"))?;
    let client = load_client(st, client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("Unknown client_id"))?;
    let now = st.clock.now();
    let csrf = token::generate();
    let csrf_hash = token::hash(csrf.expose());
    let (handle, params, judged) = if let Some(uri) = p.get("request_uri") {
        let handle = uri
            .strip_prefix(REQUEST_URI_PREFIX)
            .ok_or_else(|| OAuthError::invalid_request("Invalid parameter request_uri"))?;
        let handle = Secret::new(handle);
        let handle_hash = token::hash(handle.expose());
        let store = st.store.clone();
        let (hh, ch) = (handle_hash.clone(), csrf_hash.clone());
        let cid = client.client_id.clone();
        let row = blocking::run(move || {
            let row = store.with(|c| repo::oauth::request(c, &hh, now))?;
            // A pushed request opens one page, once, and only for its own client: another
            // client's attempt must not use it up.
            let bound = match &row {
                Some(r) if r.pushed && r.client_id == cid => {
                    store.with(|c| repo::oauth::bind_csrf(c, &hh, &ch, now + PAGE_TTL))?
                }
                _ => false,
            };
            Ok(row.map(|r| (bound, r)))
        })
        .await
        .map_err(OAuthError::from)?;
        let row = match row {
            Some((_, r)) if r.pushed && r.client_id != client.client_id => {
                return Err(
                    OAuthError::invalid_request("request_uri belongs to another client").into(),
                );
            }
            Some((true, r)) => r,
            _ => {
                return Err(
                    OAuthError::invalid_request("request_uri is unknown, used or expired").into(),
                );
            }
        };
        let params: AuthzParams = serde_json::from_str(&row.params)
            .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
        (handle, params, None)
    } else {
        let redirect_uri = check_redirect(&client, p.get("redirect_uri"))?;
        let redirect = |error| AuthzFailure::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: p.get("state").cloned(),
            error,
        };
        let params = parse_authz(&p, &client, redirect_uri.clone()).map_err(redirect)?;
        // The credential is judged before anything is stored: a request for an unknown or
        // unusable credential leaves no row behind.
        let cred = match params.is_credential() && params.credential_id.is_some() {
            true => Some(usable_credential(st, &params).await.map_err(redirect)?),
            false => None,
        };
        let handle = token::generate();
        let row = RequestRow {
            handle_hash: token::hash(handle.expose()),
            client_id: client.client_id.clone(),
            params: serde_json::to_string(&params)
                .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?,
            csrf_hash: Some(csrf_hash),
            pushed: false,
            expires_at: now + PAGE_TTL,
            created_at: now,
            signer_id: None,
        };
        let store = st.store.clone();
        blocking::run(move || Ok(store.with(|c| repo::oauth::insert_request(c, &row))?))
            .await
            .map_err(OAuthError::from)?;
        (handle, params, cred)
    };
    let redirect = |error| AuthzFailure::Redirect {
        redirect_uri: params.redirect_uri.clone(),
        state: params.state.clone(),
        error,
    };
    let credential = if params.is_credential() && params.credential_id.is_none() {
        // Picked by its qualifier once the signer has logged in.
        Some(CredentialView {
            name: None,
            sends_code: false,
            step: Step::Login,
        })
    } else if params.is_credential() {
        let cred = match judged {
            Some(cred) => cred,
            None => usable_credential(st, &params).await.map_err(redirect)?,
        };
        // An online code is sent once the signer has logged in, not when anyone opens the page.
        let step = match crate::service::challenge::is_online(&cred) {
            true => Step::Login,
            false => Step::All,
        };
        Some(CredentialView::of(&cred, step))
    } else {
        None
    };
    Ok(Page {
        handle,
        csrf,
        client_name: client.name,
        params,
        credential,
        error: None,
    })
}
