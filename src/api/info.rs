//! `POST info` (CSC §1): service metadata, unauthenticated.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::extract::CscJson;
use crate::crypto::{KeyType, sign_algos_for};
use crate::error::CscError;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct InfoRequest {
    #[serde(default)]
    pub lang: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SignAlgorithms {
    pub algos: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct SignatureFormats {
    pub formats: Vec<&'static str>,
    pub envelope_properties: Vec<Vec<&'static str>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoResponse {
    pub specs: &'static str,
    pub name: String,
    pub logo: String,
    pub region: String,
    pub lang: &'static str,
    pub description: &'static str,
    pub auth_type: Vec<&'static str>,
    /// RFC 8414 issuer of the OAuth 2.0 authorization server (metadata at
    /// `/.well-known/oauth-authorization-server`).
    #[serde(rename = "oauth2Issuer")]
    pub oauth2_issuer: String,
    pub methods: Vec<&'static str>,
    pub asynchronous_operation_mode: bool,
    pub validation_info: bool,
    pub sign_algorithms: SignAlgorithms,
    #[serde(rename = "signature_formats")]
    pub signature_formats: SignatureFormats,
    #[serde(rename = "conformance_levels")]
    pub conformance_levels: Vec<&'static str>,
}

/// Quill's own logo, served at [`super::LOGO`] and announced by `info` unless `--logo` is set.
pub const LOGO_PNG: &[u8] = include_bytes!("logo.png");

/// `GET /logo.png`.
pub async fn logo() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CONTENT_TYPE, "image/png"))
        .insert_header((
            actix_web::http::header::CACHE_CONTROL,
            "public, max-age=86400",
        ))
        .body(LOGO_PNG)
}

/// Every signAlgo some credential type accepts, without duplicates, in a stable order.
pub fn all_sign_algos() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for key in [KeyType::Rsa, KeyType::EcP256, KeyType::EcP384] {
        for algo in sign_algos_for(key) {
            if !out.contains(&algo.oid()) {
                out.push(algo.oid());
            }
        }
    }
    out
}

pub async fn info(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    body: CscJson<InfoRequest>,
) -> Result<HttpResponse, CscError> {
    let _ = body.0.lang;
    Ok(HttpResponse::Ok().json(InfoResponse {
        specs: "2.0.0.2",
        name: state.settings.service_name.clone(),
        logo: match &state.settings.logo {
            Some(logo) => logo.clone(),
            None => format!("{}{}", super::oauth2::issuer(&req), super::LOGO),
        },
        region: state.settings.region.clone(),
        lang: "en-US",
        description: "Quill remote signature service (CSC API v2)",
        auth_type: vec!["basic", "oauth2code", "oauth2client"],
        oauth2_issuer: super::oauth2::issuer(&req),
        methods: super::METHODS.to_vec(),
        asynchronous_operation_mode: true,
        validation_info: false,
        sign_algorithms: SignAlgorithms {
            algos: all_sign_algos(),
        },
        signature_formats: SignatureFormats {
            formats: vec!["C"],
            envelope_properties: vec![vec!["Detached", "Attached"]],
        },
        conformance_levels: vec!["Ades-B-B", "Ades-B-T"],
    }))
}
