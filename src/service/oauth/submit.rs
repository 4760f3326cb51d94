//! `POST oauth2/authorize` (CSC v2 §8.3.2): the signer's answers on the authorization page.
//! A service-scope page checks the password; a credential-scope page logs the signer in, then
//! checks PIN and OTP (sole control, counted towards the credential's lockout), in one step or
//! two. Either way it ends in an authorization code, the page shown again, or the client told.

use std::ops::ControlFlow;

use super::page::*;
use super::request::*;
use super::*;

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

/// Whose authorization the code carries (`Continue`), or how the submission ends before that.
type Signer = ControlFlow<Outcome, String>;

/// `POST oauth2/authorize`: the signer's answer.
pub async fn submit(st: &AppState, form: Submission) -> Result<Outcome, AuthzFailure> {
    let now = st.clock.now();
    let handle_hash = token::hash(form.handle.expose());
    let row = live_request(st, &handle_hash)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("This authorization page has expired"))?;
    if !csrf_ok(&form, &row) {
        return Err(
            OAuthError::invalid_request("Invalid form submission (CSRF check failed)").into(),
        );
    }
    let params: AuthzParams = serde_json::from_str(&row.params)
        .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
    let mut page = Answered {
        st,
        form,
        handle_hash,
        row,
        params,
        client_name: String::new(),
    };
    if page.form.cancel {
        page.drop_request().await.map_err(OAuthError::from)?;
        return Err(page.redirect(OAuthError::access_denied("The signer declined")));
    }
    page.client_name = load_client(st, &page.params.client_id)
        .await?
        .map(|c| c.name)
        .unwrap_or_default();
    let signer = if page.params.is_credential() {
        page.credential_signer().await?
    } else {
        page.service_user().await?
    };
    match signer {
        ControlFlow::Continue(user_id) => page.issue_code(user_id, now).await,
        ControlFlow::Break(outcome) => Ok(outcome),
    }
}

/// Double-submit CSRF check: the form's token equals the cookie's and is the one the page was
/// rendered with.
fn csrf_ok(form: &Submission, row: &RequestRow) -> bool {
    match (&form.csrf_cookie, &row.csrf_hash) {
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
    }
}

/// What the page shows of a credential-scope request's credential at `step`.
fn shown(named: &Option<CredentialRow>, step: Step) -> Option<CredentialView> {
    match named {
        Some(cred) => Some(CredentialView::of(cred, step)),
        None => Some(CredentialView {
            name: None,
            sends_code: false,
            step,
        }),
    }
}

/// A submission of a live page whose CSRF check passed.
struct Answered<'a> {
    st: &'a AppState,
    form: Submission,
    handle_hash: Vec<u8>,
    row: RequestRow,
    params: AuthzParams,
    client_name: String,
}

impl Answered<'_> {
    /// An error for the client, at its redirect URI.
    fn redirect(&self, error: OAuthError) -> AuthzFailure {
        AuthzFailure::Redirect {
            redirect_uri: self.params.redirect_uri.clone(),
            state: self.params.state.clone(),
            error,
        }
    }

    /// End the page's request.
    async fn drop_request(&self) -> Result<bool, CscError> {
        let store = self.st.store.clone();
        let hh = self.handle_hash.clone();
        blocking::run(move || Ok(store.with(|c| repo::oauth::drop_request(c, &hh))?)).await
    }

    /// The credential locked: the page ends, and the client hears access_denied.
    async fn locked(&self) -> AuthzFailure {
        match self.drop_request().await {
            Ok(_) => self.redirect(OAuthError::access_denied("Credential locked")),
            Err(e) => OAuthError::from(e).into(),
        }
    }

    /// The page again, at its next step or with a message.
    fn show(&self, error: Option<&'static str>, credential: Option<CredentialView>) -> Outcome {
        Outcome::Page(Box::new(Page {
            handle: self.form.handle.clone(),
            csrf: self.form.csrf_form.clone(),
            params: self.params.clone(),
            client_name: self.client_name.clone(),
            credential,
            error,
        }))
    }

    /// The page again after a missing or wrong answer.
    fn retry(&self, error: &'static str, credential: Option<CredentialView>) -> Signer {
        ControlFlow::Break(self.show(Some(error), credential))
    }

    /// Service scope: the password is all.
    async fn service_user(&self) -> Result<Signer, AuthzFailure> {
        let (Some(name), Some(pw)) = (self.form.username.clone(), self.form.password.clone())
        else {
            return Ok(self.retry("missing", None));
        };
        let st = self.st.clone();
        let checked = blocking::run(move || {
            let now = st.clock.now();
            crate::service::session::check_password(&st, &name, &pw, now)
        })
        .await;
        match checked {
            Ok(user) => Ok(ControlFlow::Continue(user.id)),
            Err(CscError::AuthenticationError) => Ok(self.retry("wrong_password", None)),
            Err(e) => Err(self.redirect(e.into())),
        }
    }

    /// Credential scope: the signer, then (at the login step) the credential and its code, or
    /// (with the codes) sole control of the credential.
    async fn credential_signer(&self) -> Result<Signer, AuthzFailure> {
        let named = self.named_credential().await?;
        let step = match (&named, &self.row.signer_id) {
            (_, Some(_)) => Step::Codes,
            (Some(cred), None) if !crate::service::challenge::is_online(cred) => Step::All,
            _ => Step::Login,
        };
        let signer = match &self.row.signer_id {
            // The signer logged in on this page before.
            Some(id) => id.clone(),
            None => match self.log_in(&named, step).await? {
                ControlFlow::Continue(id) => id,
                done => return Ok(done),
            },
        };
        if step == Step::Login {
            return self.login_step(named, signer).await;
        }
        self.sole_control(named, signer, step).await
    }

    /// The credential the request names, if it names one. One that can no longer serve
    /// (disabled or locked meanwhile) ends the page.
    async fn named_credential(&self) -> Result<Option<CredentialRow>, AuthzFailure> {
        if self.params.credential_id.is_none() {
            return Ok(None);
        }
        match usable_credential(self.st, &self.params).await {
            Ok(cred) => Ok(Some(cred)),
            Err(e) => {
                if e.status < 500 {
                    self.drop_request().await.map_err(OAuthError::from)?;
                }
                Err(self.redirect(e))
            }
        }
    }

    /// The signer logs in first: PIN and OTP are only tried (and only counted towards the
    /// credential's lockout) for its owner, and an online code only sent to its owner, so
    /// knowing a credential ID is not enough to lock it or to send codes. A wrong password
    /// counts towards the user's login lockout, as auth/login.
    async fn log_in(
        &self,
        named: &Option<CredentialRow>,
        step: Step,
    ) -> Result<Signer, AuthzFailure> {
        let (Some(name), Some(pw)) = (self.form.username.clone(), self.form.password.clone())
        else {
            return Ok(self.retry("missing", shown(named, step)));
        };
        if step == Step::All && (self.form.pin.is_none() || self.form.otp.is_none()) {
            return Ok(self.retry("missing", shown(named, step)));
        }
        let st = self.st.clone();
        let logged_in = blocking::run(move || {
            let now = st.clock.now();
            crate::service::session::check_password(&st, &name, &pw, now)
        })
        .await;
        match logged_in {
            Ok(user) if named.as_ref().is_none_or(|c| c.user_id == user.id) => {
                Ok(ControlFlow::Continue(user.id))
            }
            Ok(_) | Err(CscError::AuthenticationError) => {
                Ok(self.retry("wrong_password", shown(named, step)))
            }
            Err(e) => Err(self.redirect(e.into())),
        }
    }

    /// The login step passed: the credential (named, or now picked by its qualifier) is
    /// recorded with the signer, its code sent if online, and the page asks for the codes.
    async fn login_step(
        &self,
        named: Option<CredentialRow>,
        signer: String,
    ) -> Result<Signer, AuthzFailure> {
        let (cred, picked) = match named {
            Some(cred) => (cred, None),
            None => {
                let found = credential_by_qualifier(self.st, &self.params, &signer)
                    .await
                    .map_err(|e| self.redirect(e))?;
                let Some(cred) = found else {
                    self.drop_request().await.map_err(OAuthError::from)?;
                    return Err(self.redirect(OAuthError::access_denied(
                        "None of the signer's credentials makes this signatureQualifier",
                    )));
                };
                // The request now names it: the next step, the code and the token do.
                let mut p = self.params.clone();
                p.credential_id = Some(cred.id.clone());
                let p = serde_json::to_string(&p)
                    .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
                (cred, Some(p))
            }
        };
        let (st, store) = (self.st.clone(), self.st.store.clone());
        let hh = self.handle_hash.clone();
        let recorded = blocking::run(move || {
            let now = st.clock.now();
            Ok(store.with(|c| repo::oauth::log_in(c, &hh, &signer, picked.as_deref(), now))?)
        })
        .await
        .map_err(OAuthError::from)?;
        if !recorded {
            return Err(OAuthError::invalid_request(
                "This authorization page has expired or was already used",
            )
            .into());
        }
        send_online_code(self.st, &cred)
            .await
            .map_err(|e| self.redirect(e))?;
        Ok(ControlFlow::Break(
            self.show(None, Some(CredentialView::of(&cred, Step::Codes))),
        ))
    }

    /// PIN and OTP for the signer's own credential: sole control, counted towards its lockout.
    async fn sole_control(
        &self,
        named: Option<CredentialRow>,
        signer: String,
        step: Step,
    ) -> Result<Signer, AuthzFailure> {
        let (Some(pin), Some(otp)) = (self.form.pin.clone(), self.form.otp.clone()) else {
            return Ok(self.retry("missing", shown(&named, step)));
        };
        let cred = match &named {
            Some(cred) if cred.user_id == signer => cred.clone(),
            _ => {
                return Err(self.redirect(OAuthError::access_denied("Not the signer's credential")));
            }
        };
        let (c2, st) = (cred.clone(), self.st.clone());
        let checked = blocking::run(move || {
            let now = st.clock.now();
            crate::service::authorize::check_sole_control(&st, &c2.user_id, &c2, &pin, &otp, now)
        })
        .await;
        match checked {
            Ok(()) => Ok(ControlFlow::Continue(cred.user_id)),
            Err(CscError::InvalidAuthenticationData) => {
                // The same page submitted twice at once: one got the code, the other ends here
                // (its attempt counted, as a replayed OTP); no page to show again, no new code.
                if live_request(self.st, &self.handle_hash).await?.is_none() {
                    return Err(OAuthError::invalid_request(
                        "This authorization page was already used",
                    )
                    .into());
                }
                if step == Step::Codes
                    && let Err(e) = send_online_code(self.st, &cred).await
                {
                    // A code used up by its wrong tries is replaced, a pending one kept; a
                    // credential that this attempt locked gets none, and ends the page.
                    if e.status < 500 {
                        return Err(self.locked().await);
                    }
                    return Err(self.redirect(e));
                }
                Ok(self.retry("wrong_pin_otp", shown(&named, step)))
            }
            Err(CscError::InvalidRequest(_)) => Err(self.locked().await),
            Err(e) => Err(self.redirect(e.into())),
        }
    }

    /// The authorization code, stored (with the credential the signer authorized, named or
    /// picked) with its audit record; the page's request ends with it.
    async fn issue_code(self, user_id: String, now: i64) -> Result<Outcome, AuthzFailure> {
        let Answered {
            handle_hash,
            row,
            params,
            st,
            ..
        } = self;
        let code = token::generate();
        let row = CodeRow {
            code_hash: token::hash(code.expose()),
            client_id: params.client_id.clone(),
            user_id: user_id.clone(),
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
            return Err(
                OAuthError::invalid_request("This authorization page was already used").into(),
            );
        }
        tracing::info!(scope = %params.scope, "oauth authorization code issued");
        Ok(Outcome::Code {
            redirect_uri: params.redirect_uri,
            code,
            state: params.state,
        })
    }
}
