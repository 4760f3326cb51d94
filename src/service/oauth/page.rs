//! The signer's authorization page: `begin` stores the request and shows the page, `submit`
//! checks the password, PIN and OTP and issues the authorization code.

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
async fn send_online_code(st: &AppState, cred: &CredentialRow) -> Result<(), OAuthError> {
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
    fn of(cred: &CredentialRow, step: Step) -> CredentialView {
        CredentialView {
            name: Some(cred.description.clone().unwrap_or_else(|| cred.id.clone())),
            sends_code: crate::service::challenge::is_online(cred),
            step,
        }
    }
}

/// The live authorization request of a page, by its handle's hash.
async fn live_request(st: &AppState, handle_hash: &[u8]) -> Result<Option<RequestRow>, OAuthError> {
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
async fn credential_by_qualifier(
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

/// The page's form, as posted.
pub struct Submission {
    pub handle: Secret,
    pub csrf_form: Secret,
    pub csrf_cookie: Option<Secret>,
    pub cancel: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub pin: Option<Secret>,
    pub otp: Option<Secret>,
}

/// What the page's submission leads to.
pub enum Outcome {
    /// Redirect to the client with a code.
    Code {
        redirect_uri: String,
        code: Secret,
        state: Option<String>,
    },
    /// Show the page again: its next step, or the same after a wrong answer (counted).
    Page(Box<Page>),
}

/// `POST oauth2/authorize`: the signer's answer.
pub async fn submit(st: &AppState, form: Submission) -> Result<Outcome, AuthzFailure> {
    let now = st.clock.now();
    let handle_hash = token::hash(form.handle.expose());
    let row = live_request(st, &handle_hash)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("This authorization page has expired"))?;
    // Double-submit CSRF check: the form's token equals the cookie's and is the one the page
    // was rendered with.
    let csrf_ok = match (&form.csrf_cookie, &row.csrf_hash) {
        (Some(cookie), Some(stored)) => {
            let same: bool = cookie
                .expose()
                .as_bytes()
                .ct_eq(form.csrf_form.expose().as_bytes())
                .into();
            let bound: bool = token::hash(form.csrf_form.expose()).ct_eq(stored).into();
            same && bound
        }
        _ => false,
    };
    if !csrf_ok {
        return Err(
            OAuthError::invalid_request("Invalid form submission (CSRF check failed)").into(),
        );
    }
    let params: AuthzParams = serde_json::from_str(&row.params)
        .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
    let redirect = |error| AuthzFailure::Redirect {
        redirect_uri: params.redirect_uri.clone(),
        state: params.state.clone(),
        error,
    };
    let drop_request = |st: &AppState| {
        let store = st.store.clone();
        let hh = handle_hash.clone();
        blocking::run(move || Ok(store.with(|c| repo::oauth::drop_request(c, &hh))?))
    };
    // The credential locked: the page ends, and the client hears access_denied.
    let locked = |st: &AppState| {
        let ended = drop_request(st);
        let denied = redirect(OAuthError::access_denied("Credential locked"));
        async move {
            match ended.await {
                Ok(_) => denied,
                Err(e) => OAuthError::from(e).into(),
            }
        }
    };
    if form.cancel {
        drop_request(st).await.map_err(OAuthError::from)?;
        return Err(redirect(OAuthError::access_denied("The signer declined")));
    }
    let client_name = load_client(st, &params.client_id)
        .await?
        .map(|c| c.name)
        .unwrap_or_default();
    let show = |error: Option<&'static str>, credential| {
        Outcome::Page(Box::new(Page {
            handle: form.handle.clone(),
            csrf: form.csrf_form.clone(),
            params: params.clone(),
            client_name: client_name.clone(),
            credential,
            error,
        }))
    };
    let retry = |error: &'static str, credential| show(Some(error), credential);
    let st2 = st.clone();
    let user_id = if params.is_credential() {
        // Named by the request, or picked by its qualifier at this page's login step. One that
        // can no longer serve (disabled or locked meanwhile) ends the page.
        let named = match params.credential_id {
            Some(_) => match usable_credential(st, &params).await {
                Ok(cred) => Some(cred),
                Err(e) => {
                    if e.status < 500 {
                        drop_request(st).await.map_err(OAuthError::from)?;
                    }
                    return Err(redirect(e));
                }
            },
            None => None,
        };
        let step = match (&named, &row.signer_id) {
            (_, Some(_)) => Step::Codes,
            (Some(cred), None) if !crate::service::challenge::is_online(cred) => Step::All,
            _ => Step::Login,
        };
        let shown = |step| match &named {
            Some(cred) => Some(CredentialView::of(cred, step)),
            None => Some(CredentialView {
                name: None,
                sends_code: false,
                step,
            }),
        };
        let signer = match (&row.signer_id, step) {
            // The signer logged in on this page before.
            (Some(id), _) => id.clone(),
            _ => {
                let (Some(name), Some(pw)) = (form.username.clone(), form.password.clone()) else {
                    return Ok(retry("missing", shown(step)));
                };
                if step == Step::All && (form.pin.is_none() || form.otp.is_none()) {
                    return Ok(retry("missing", shown(step)));
                }
                // The signer logs in first: PIN and OTP are only tried (and only counted
                // towards the credential's lockout) for its owner, and an online code only
                // sent to its owner, so knowing a credential ID is not enough to lock it or to
                // send codes. A wrong password counts towards the user's login lockout, as
                // auth/login.
                let st3 = st.clone();
                let logged_in = blocking::run(move || {
                    let now = st3.clock.now();
                    crate::service::session::check_password(&st3, &name, &pw, now)
                })
                .await;
                match logged_in {
                    Ok(user) if named.as_ref().is_none_or(|c| c.user_id == user.id) => user.id,
                    Ok(_) | Err(CscError::AuthenticationError) => {
                        return Ok(retry("wrong_password", shown(step)));
                    }
                    Err(e) => return Err(redirect(e.into())),
                }
            }
        };
        if step == Step::Login {
            let (cred, picked) = match named {
                Some(cred) => (cred, None),
                None => {
                    let found = credential_by_qualifier(st, &params, &signer)
                        .await
                        .map_err(redirect)?;
                    let Some(cred) = found else {
                        drop_request(st).await.map_err(OAuthError::from)?;
                        return Err(redirect(OAuthError::access_denied(
                            "None of the signer's credentials makes this signatureQualifier",
                        )));
                    };
                    // The request now names it: the next step, the code and the token do.
                    let mut p = params.clone();
                    p.credential_id = Some(cred.id.clone());
                    let p = serde_json::to_string(&p)
                        .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
                    (cred, Some(p))
                }
            };
            let store = st.store.clone();
            let (hh, who) = (handle_hash.clone(), signer.clone());
            let recorded = blocking::run(move || {
                let now = st2.clock.now();
                Ok(store.with(|c| repo::oauth::log_in(c, &hh, &who, picked.as_deref(), now))?)
            })
            .await
            .map_err(OAuthError::from)?;
            if !recorded {
                return Err(OAuthError::invalid_request(
                    "This authorization page has expired or was already used",
                )
                .into());
            }
            send_online_code(st, &cred).await.map_err(redirect)?;
            return Ok(show(None, Some(CredentialView::of(&cred, Step::Codes))));
        }
        let (Some(pin), Some(otp)) = (form.pin.clone(), form.otp.clone()) else {
            return Ok(retry("missing", shown(step)));
        };
        let cred = match named.clone() {
            Some(cred) if cred.user_id == signer => cred,
            _ => {
                return Err(redirect(OAuthError::access_denied(
                    "Not the signer's credential",
                )));
            }
        };
        let c2 = cred.clone();
        let st4 = st.clone();
        let checked = blocking::run(move || {
            let now = st4.clock.now();
            crate::service::authorize::check_sole_control(&st4, &c2.user_id, &c2, &pin, &otp, now)
        })
        .await;
        match checked {
            Ok(()) => cred.user_id,
            Err(CscError::InvalidAuthenticationData) => {
                // The same page submitted twice at once: one got the code, the other ends here
                // (its attempt counted, as a replayed OTP); no page to show again, no new code.
                if live_request(st, &handle_hash).await?.is_none() {
                    return Err(OAuthError::invalid_request(
                        "This authorization page was already used",
                    )
                    .into());
                }
                if step == Step::Codes
                    && let Err(e) = send_online_code(st, &cred).await
                {
                    // A code used up by its wrong tries is replaced, a pending one kept; a
                    // credential that this attempt locked gets none, and ends the page.
                    if e.status < 500 {
                        return Err(locked(st).await);
                    }
                    return Err(redirect(e));
                }
                return Ok(retry("wrong_pin_otp", shown(step)));
            }
            Err(CscError::InvalidRequest(_)) => return Err(locked(st).await),
            Err(e) => return Err(redirect(e.into())),
        }
    } else {
        let (Some(name), Some(pw)) = (form.username.clone(), form.password.clone()) else {
            return Ok(retry("missing", None));
        };
        let checked = blocking::run(move || {
            let now = st2.clock.now();
            crate::service::session::check_password(&st2, &name, &pw, now)
        })
        .await;
        match checked {
            Ok(user) => user.id,
            Err(CscError::AuthenticationError) => return Ok(retry("wrong_password", None)),
            Err(e) => return Err(redirect(e.into())),
        }
    };
    let code = token::generate();
    let row = CodeRow {
        code_hash: token::hash(code.expose()),
        client_id: params.client_id.clone(),
        user_id: user_id.clone(),
        // With the credential the signer authorized, named or picked.
        params: row.params,
        used: false,
        token_hash: None,
        expires_at: now + CODE_TTL,
        created_at: now,
    };
    let event = crate::service::event(
        now,
        &user_id,
        "oauth_authorize",
        params.credential_id.as_deref(),
        "granted",
        serde_json::json!({
            "client_id": params.client_id,
            "scope": params.scope,
            "num_signatures": params.num_signatures,
            "hashes": params.digests,
        }),
    );
    let store = st.store.clone();
    let issued = blocking::run(move || {
        Ok(store.with(|c| repo::oauth::issue_code(c, &handle_hash, &row, &event))?)
    })
    .await
    .map_err(OAuthError::from)?;
    if !issued {
        return Err(OAuthError::invalid_request("This authorization page was already used").into());
    }
    tracing::info!(scope = %params.scope, "oauth authorization code issued");
    Ok(Outcome::Code {
        redirect_uri: params.redirect_uri,
        code,
        state: params.state,
    })
}
