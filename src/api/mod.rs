//! Thin HTTP handlers for the CSC API: extract, call one service function, shape the response.
//! The same handlers serve `/csc/v2/…` and `/csc/v1/…` (v1 field names are accepted on both).

pub mod auth;
pub mod credentials;
pub mod deadline;
pub mod extract;
pub mod info;
pub mod oauth2;
pub mod oauth_page;
pub mod ops;
pub mod sign_doc;
pub mod signatures;

use actix_web::{HttpRequest, HttpResponse, Route, web};

use crate::error::CscError;

/// Every CSC method Quill serves, as listed in `info.methods`.
pub const METHODS: &[&str] = &[
    "info",
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/extendTransaction",
    "credentials/getChallenge",
    "credentials/sendOTP",
    "signatures/signHash",
    "signatures/signDoc",
    "signatures/signPolling",
    "signatures/timestamp",
];

/// CSC v2 methods Quill does not offer (out-of-band authorization, credential management over
/// the API): they answer 501 whatever the HTTP method (CSC §6.1), where a path that names no CSC
/// method answers 404.
pub const NOT_IMPLEMENTED: &[&str] = &[
    "credentials/authorizeCheck",
    "credentials/create",
    "credentials/delete",
];

/// The `credentialID` every credential-scoped method requires.
fn required_credential_id(id: Option<String>) -> Result<String, CscError> {
    id.ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter credentialID"))
}

/// A 200 that carries a secret (an access token, a SAD): no cache may keep it (RFC 6749
/// §5.1 asks the same of OAuth token responses).
fn ok_no_store() -> actix_web::HttpResponseBuilder {
    let mut r = HttpResponse::Ok();
    r.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .insert_header((actix_web::http::header::PRAGMA, "no-cache"));
    r
}

/// `hashes` (v2) and `hash` (v1) name one field: a request with both is ambiguous.
fn hashes_twice() -> CscError {
    CscError::invalid("Invalid request: hashes and its v1 name hash both given")
}

async fn method_not_allowed() -> Result<HttpResponse, CscError> {
    Err(CscError::MethodNotAllowed)
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, CscError> {
    Err(CscError::NotFound(req.path().chars().take(200).collect()))
}

fn method(path: &str, route: Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(method_not_allowed))
}

/// A resource anyone may call without a token: bodies up to [`extract::OPEN_MAX_BODY`].
fn open_to_all(resource: actix_web::Resource) -> actix_web::Resource {
    resource.app_data(web::PayloadConfig::new(extract::OPEN_MAX_BODY))
}

fn csc_scope(prefix: &str) -> actix_web::Scope {
    let scope =
        NOT_IMPLEMENTED
            .iter()
            .fold(web::scope(prefix), |scope, &name| {
                scope.service(web::resource(format!("/{name}")).to(move || async move {
                    Err::<HttpResponse, _>(CscError::NotImplemented(name))
                }))
            });
    scope
        .service(open_to_all(method("/info", web::post().to(info::info))))
        .service(open_to_all(method(
            "/auth/login",
            web::post().to(auth::login),
        )))
        .service(method("/auth/revoke", web::post().to(auth::revoke)))
        .service(method(
            "/credentials/list",
            web::post().to(credentials::list),
        ))
        .service(method(
            "/credentials/info",
            web::post().to(credentials::info),
        ))
        .service(method(
            "/credentials/authorize",
            web::post().to(credentials::authorize),
        ))
        .service(method(
            "/credentials/extendTransaction",
            web::post().to(credentials::extend_transaction),
        ))
        .service(method(
            "/credentials/getChallenge",
            web::post().to(credentials::get_challenge),
        ))
        .service(method(
            "/credentials/sendOTP",
            web::post().to(credentials::send_otp),
        ))
        .service(method(
            "/signatures/signHash",
            web::post().to(signatures::sign_hash),
        ))
        .service(method(
            "/signatures/signDoc",
            web::post().to(sign_doc::sign_doc),
        ))
        .service(method(
            "/signatures/signPolling",
            web::post().to(signatures::sign_polling),
        ))
        .service(method(
            "/signatures/timestamp",
            web::post().to(sign_doc::timestamp),
        ))
}

/// Where Quill serves its own logo (the default `info.logo`).
pub const LOGO: &str = "/logo.png";

/// The OAuth 2.0 authorization server's endpoints (`oauth2`): outside `/csc/`, described in
/// openapi.yaml beside the CSC methods.
pub const OAUTH_AUTHORIZE: &str = "/oauth2/authorize";
pub const OAUTH_PUSHED_AUTHORIZE: &str = "/oauth2/pushed_authorize";
pub const OAUTH_TOKEN: &str = "/oauth2/token";
pub const OAUTH_REVOKE: &str = "/oauth2/revoke";
/// RFC 8414 authorization server metadata.
pub const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";
pub const OAUTH_PATHS: &[&str] = &[
    OAUTH_AUTHORIZE,
    OAUTH_PUSHED_AUTHORIZE,
    OAUTH_TOKEN,
    OAUTH_REVOKE,
    OAUTH_METADATA,
];

async fn get_or_post() -> Result<HttpResponse, CscError> {
    Err(CscError::GetOrPost)
}

/// The operations endpoints (`ops`), outside the CSC API.
pub const OPS_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// A GET (and HEAD) resource; other methods get a CSC 405.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(ops::get_only))
}

/// Register every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(csc_scope("/csc/v2"))
        .service(csc_scope("/csc/v1"))
        .service(get("/healthz", ops::healthz))
        .service(get("/readyz", ops::readyz))
        .service(get("/metrics", ops::metrics))
        .service(get(LOGO, info::logo))
        .service(method("/tsa", web::post().to(sign_doc::rfc3161)))
        .service(open_to_all(
            web::resource(OAUTH_AUTHORIZE)
                .route(web::get().to(oauth2::authorize_page))
                .route(web::post().to(oauth2::authorize_submit))
                .default_service(web::to(get_or_post)),
        ))
        .service(open_to_all(method(
            OAUTH_TOKEN,
            web::post().to(oauth2::token),
        )))
        .service(method(
            OAUTH_PUSHED_AUTHORIZE,
            web::post().to(oauth2::pushed_authorize),
        ))
        .service(open_to_all(method(
            OAUTH_REVOKE,
            web::post().to(oauth2::revoke),
        )))
        .service(get(OAUTH_METADATA, oauth2::metadata))
        .default_service(web::to(not_found));
}
