//! HTTP side of the OAuth 2.0 authorization server: query and form parsing, the page's cookie
//! and headers, redirects, JSON errors (RFC 6749 §5.2) and RFC 8414 metadata. The decisions are
//! in `service::oauth`.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;

use super::oauth_page;
use crate::secret::Secret;
use crate::service::oauth::{self, AuthzFailure, ClientAuth, OAuthError, Outcome, Page};
use crate::state::AppState;

const CSRF_COOKIE: &str = "quill_csrf";

fn json_error(e: &OAuthError) -> HttpResponse {
    let mut r = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(e.status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    );
    r.insert_header((header::CACHE_CONTROL, "no-store"));
    if e.status == 401 {
        r.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"quill\""));
    }
    r.json(serde_json::json!({"error": e.error, "error_description": e.description}))
}

fn parse_pairs(raw: &str) -> Result<HashMap<String, String>, OAuthError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|_| OAuthError::invalid_request("Malformed form or query string"))?;
    oauth::single_params(pairs)
}

/// The raw body of a form POST: over the size limit or unreadable, an OAuth error (413 or 400)
/// instead of actix's plain-text answer.
fn body_bytes(body: Result<web::Bytes, actix_web::Error>) -> Result<web::Bytes, OAuthError> {
    body.map_err(|e| {
        if super::extract::is_overflow(&e) {
            OAuthError::payload_too_large()
        } else if super::deadline::is_timeout(&e) {
            OAuthError::request_timeout()
        } else {
            OAuthError::invalid_request("Unreadable request body")
        }
    })
}

/// A client's form POST to the token, PAR or revocation endpoint: its parameters and its
/// (optional) HTTP Basic client authentication.
fn client_post(
    req: &HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<(HashMap<String, String>, ClientAuth), OAuthError> {
    let p = form(req, &body_bytes(body)?)?;
    Ok((p, basic(req)?))
}

fn form(req: &HttpRequest, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.split(';').next().is_some_and(|m| {
        m.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    }) {
        return Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("The form is not UTF-8"))?;
    parse_pairs(text)
}

/// HTTP Basic client credentials (RFC 6749 §2.3.1: each part form-urlencoded).
fn basic(req: &HttpRequest) -> Result<ClientAuth, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(ClientAuth { basic: None });
    };
    let bad = || OAuthError::invalid_client("Malformed Basic client credentials");
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> Result<String, OAuthError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&format!("v={s}")).map_err(|_| bad())?;
        pairs.into_iter().next().map(|(_, v)| v).ok_or_else(bad)
    };
    Ok(ClientAuth {
        basic: Some((unescape(id)?, Secret::new(unescape(secret)?))),
    })
}

fn page_headers(r: &mut actix_web::HttpResponseBuilder, redirect_uri: Option<&str>) {
    r.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            oauth_page::csp(redirect_uri),
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
}

fn texts_for(req: &HttpRequest, lang: Option<&str>) -> &'static oauth_page::Texts {
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    oauth_page::texts(lang, accept)
}

fn show_page(req: &HttpRequest, page: &Page) -> HttpResponse {
    let t = texts_for(req, page.params.lang.as_deref());
    let secure = req.connection_info().scheme() == "https";
    let cookie = actix_web::cookie::Cookie::build(CSRF_COOKIE, page.csrf.expose().to_string())
        .path("/oauth2")
        .http_only(true)
        .secure(secure)
        .same_site(actix_web::cookie::SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(oauth::PAGE_TTL))
        .finish();
    let mut r = HttpResponse::Ok();
    page_headers(&mut r, Some(&page.params.redirect_uri));
    r.cookie(cookie).body(oauth_page::render(page, t))
}

/// The authorization response: `pairs` and this server's issuer (`iss`, RFC 9207, so that a
/// client talking to several authorization servers can tell which one answered: mix-up attacks).
fn redirect_to(req: &HttpRequest, redirect_uri: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
                q.append_pair("iss", &issuer(req));
            }
            HttpResponse::Found()
                .insert_header((header::LOCATION, url.as_str()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        Err(_) => {
            let mut r = HttpResponse::BadRequest();
            page_headers(&mut r, None);
            r.body(oauth_page::render_error(
                oauth_page::texts(None, None),
                "Invalid redirect URI",
            ))
        }
    }
}

fn failure(req: &HttpRequest, f: AuthzFailure) -> HttpResponse {
    match f {
        AuthzFailure::Page(e) => {
            let mut r = HttpResponse::build(
                actix_web::http::StatusCode::from_u16(e.status)
                    .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
            );
            page_headers(&mut r, None);
            r.body(oauth_page::render_error(
                texts_for(req, None),
                &e.description,
            ))
        }
        AuthzFailure::Redirect {
            redirect_uri,
            state,
            error,
        } => {
            let mut pairs = vec![
                ("error", error.error),
                ("error_description", error.description.as_str()),
            ];
            if let Some(s) = state.as_deref() {
                pairs.push(("state", s));
            }
            redirect_to(req, &redirect_uri, &pairs)
        }
    }
}

/// `GET /oauth2/authorize`.
pub async fn authorize_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = match parse_pairs(req.query_string()) {
        Ok(p) => p,
        Err(e) => return failure(&req, AuthzFailure::Page(e)),
    };
    match oauth::begin(&state, params).await {
        Ok(page) => show_page(&req, &page),
        Err(f) => failure(&req, f),
    }
}

/// `POST /oauth2/authorize`: the page's form.
pub async fn authorize_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let mut p = match body_bytes(body).and_then(|body| form(&req, &body)) {
        Ok(p) => p,
        Err(e) => return failure(&req, AuthzFailure::Page(e)),
    };
    let (Some(handle), Some(csrf)) = (p.remove("handle"), p.remove("csrf")) else {
        return failure(
            &req,
            AuthzFailure::Page(OAuthError::invalid_request("Invalid form submission")),
        );
    };
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let submission = oauth::Submission {
        handle: Secret::new(handle),
        csrf_form: Secret::new(csrf),
        csrf_cookie: req.cookie(CSRF_COOKIE).map(|c| Secret::new(c.value())),
        cancel: p.get("action").map(String::as_str) == Some("cancel"),
        username: nonempty(p.remove("username")),
        password: nonempty(p.remove("password")).map(Secret::new),
        pin: nonempty(p.remove("pin")).map(Secret::new),
        otp: nonempty(p.remove("otp")).map(Secret::new),
    };
    match oauth::submit(&state, submission).await {
        Ok(Outcome::Code {
            redirect_uri,
            code,
            state,
        }) => {
            let mut pairs = vec![("code", code.expose())];
            if let Some(s) = state.as_deref() {
                pairs.push(("state", s));
            }
            redirect_to(&req, &redirect_uri, &pairs)
        }
        Ok(Outcome::Page(page)) => show_page(&req, &page),
        Err(f) => failure(&req, f),
    }
}

/// `POST /oauth2/token`.
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let run = async {
        let (p, auth) = client_post(&req, body)?;
        oauth::token_endpoint(&state, auth, p).await
    };
    match run.await {
        Ok(t) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(t),
        Err(e) => json_error(&e),
    }
}

/// `POST /oauth2/pushed_authorize` (RFC 9126).
pub async fn pushed_authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let run = async {
        let (p, auth) = client_post(&req, body)?;
        oauth::push(&state, auth, p).await
    };
    match run.await {
        Ok((request_uri, expires_in)) => HttpResponse::Created()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({"request_uri": request_uri, "expires_in": expires_in})),
        Err(e) => json_error(&e),
    }
}

/// `POST /oauth2/revoke` (RFC 7009).
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let run = async {
        let (p, auth) = client_post(&req, body)?;
        oauth::revoke(&state, auth, p).await
    };
    match run.await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => json_error(&e),
    }
}

/// The issuer identifier: `--public-url`, or else this server's origin as the request names it
/// (Host and forwarding headers: fine for development, not for production).
pub fn issuer(req: &HttpRequest) -> String {
    if let Some(url) = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.settings.public_url.clone())
    {
        return url;
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn metadata(req: HttpRequest) -> HttpResponse {
    let iss = issuer(&req);
    HttpResponse::Ok().json(serde_json::json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}{}", super::OAUTH_AUTHORIZE),
        "token_endpoint": format!("{iss}{}", super::OAUTH_TOKEN),
        "pushed_authorization_request_endpoint": format!("{iss}{}", super::OAUTH_PUSHED_AUTHORIZE),
        "revocation_endpoint": format!("{iss}{}", super::OAUTH_REVOKE),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "scopes_supported": ["service", "credential"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "authorization_details_types_supported": ["credential"],
        "require_pushed_authorization_requests": false,
        "authorization_response_iss_parameter_supported": true,
        "ui_locales_supported": ["en", "bg"],
    }))
}
