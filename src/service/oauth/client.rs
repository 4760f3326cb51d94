//! The client's endpoints: `token` (authorization_code with PKCE, refresh_token,
//! client_credentials), PAR (`push`) and revocation (`revoke`).

use super::page::*;
use super::request::*;
use super::*;
/// Client credentials as presented: HTTP Basic, or `client_id` (+ `client_secret`) in the form.
pub struct ClientAuth {
    pub basic: Option<(String, Secret)>,
}

/// Authenticate the client of a token, PAR or revocation request.
async fn authenticate_client(
    st: &AppState,
    auth: &ClientAuth,
    p: &HashMap<String, String>,
) -> Result<ClientRow, OAuthError> {
    let (id, secret) = match (&auth.basic, p.get("client_id"), p.get("client_secret")) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "Use one client authentication method, not two",
            ));
        }
        (Some((id, secret)), body_id, None) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            (id.clone(), Some(secret.clone()))
        }
        (None, Some(id), secret) => (id.clone(), secret.map(Secret::new)),
        (None, None, _) => return Err(OAuthError::invalid_client("Missing client authentication")),
    };
    let client = load_client(st, &id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("Client authentication failed"))?;
    match (&client.secret_hash, secret) {
        (Some(stored), Some(given)) if bool::from(token::hash(given.expose()).ct_eq(stored)) => {
            Ok(client)
        }
        (None, None) => Ok(client),
        _ => Err(OAuthError::invalid_client("Client authentication failed")),
    }
}

/// A successful token response (RFC 6749 §5.1 plus CSC's `credentialID` and RAR echo).
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    #[serde(rename = "credentialID", skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<serde_json::Value>,
}

/// `POST oauth2/token`.
pub async fn token_endpoint(
    st: &AppState,
    auth: ClientAuth,
    p: HashMap<String, String>,
) -> Result<TokenResponse, OAuthError> {
    let client = authenticate_client(st, &auth, &p).await?;
    let grant = p
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter grant_type"))?;
    let now = st.clock.now();
    match grant.as_str() {
        "authorization_code" => authorization_code(st, &client, &p, now).await,
        "refresh_token" => {
            let refresh = p
                .get("refresh_token")
                .ok_or_else(|| OAuthError::invalid_request("Missing parameter refresh_token"))?;
            let store = st.store.clone();
            let (hash, cid) = (token::hash(refresh), client.client_id.clone());
            let rotated = blocking::run(move || {
                Ok(store.with(|c| repo::oauth::rotate_refresh(c, &hash, &cid, now))?)
            })
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("Invalid or expired refresh_token"))?;
            let origin = Origin::Rotated(rotated.grant_hash);
            service_tokens(st, &client, &rotated.user_id, origin, now, "refresh_token").await
        }
        "client_credentials" => {
            let user = client.service_user_id.clone().ok_or_else(|| {
                OAuthError::new(
                    400,
                    "unauthorized_client",
                    "This client may not use client_credentials",
                )
            })?;
            if p.get("scope").is_some_and(|s| s != SCOPE_SERVICE) {
                return Err(OAuthError::new(
                    400,
                    "invalid_scope",
                    "client_credentials gives scope service only",
                ));
            }
            let mut response =
                service_tokens(st, &client, &user, Origin::None, now, "client_credentials").await?;
            // A service account gets no refresh token: it can ask again.
            response.refresh_token = None;
            Ok(response)
        }
        _ => Err(OAuthError::new(
            400,
            "unsupported_grant_type",
            "grant_type must be authorization_code, refresh_token or client_credentials",
        )),
    }
}

/// The answer to a code presented twice: whatever it gave is revoked (RFC 6749 §4.1.2).
fn code_replayed() -> OAuthError {
    tracing::warn!("authorization code presented twice; its token is revoked");
    OAuthError::invalid_grant("Code already used")
}

async fn authorization_code(
    st: &AppState,
    client: &ClientRow,
    p: &HashMap<String, String>,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let code = p
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter code"))?;
    let verifier = p
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter code_verifier (PKCE)"))?;
    let code_hash = token::hash(code);
    let store = st.store.clone();
    let ch = code_hash.clone();
    let redeemed =
        blocking::run(move || Ok(store.with(|c| repo::oauth::redeem_code(c, &ch, now))?)).await?;
    let row = match redeemed {
        Redeemed::Fresh(row) => row,
        Redeemed::Invalid => return Err(OAuthError::invalid_grant("Invalid or expired code")),
        Redeemed::Replayed => return Err(code_replayed()),
    };
    if row.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "Code was issued to another client",
        ));
    }
    let params: AuthzParams = serde_json::from_str(&row.params)
        .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?;
    if p.get("redirect_uri") != Some(&params.redirect_uri) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    if !valid_pkce_value(verifier) || !pkce_ok(verifier, &params.code_challenge) {
        return Err(OAuthError::invalid_grant("PKCE verification failed"));
    }
    if let Some(details) = p.get("authorization_details") {
        let given: serde_json::Value = serde_json::from_str(details)
            .map_err(|_| OAuthError::invalid_request("authorization_details is not JSON"))?;
        if params.authorization_details.as_ref() != Some(&given) {
            return Err(OAuthError::invalid_grant(
                "authorization_details differ from the authorization request",
            ));
        }
    }
    if params.is_credential() {
        credential_token(st, client, &row, &params, now).await
    } else {
        service_tokens(
            st,
            client,
            &row.user_id,
            Origin::Code(&code_hash),
            now,
            "authorization_code",
        )
        .await
    }
}

/// Where a service token pair comes from: an authorization code (its hash names the grant), the
/// rotation of a refresh token (whose grant it continues), or no grant (client_credentials).
enum Origin<'a> {
    Code(&'a [u8]),
    Rotated(Option<Vec<u8>>),
    None,
}

async fn service_tokens(
    st: &AppState,
    client: &ClientRow,
    user_id: &str,
    origin: Origin<'_>,
    now: i64,
    grant: &'static str,
) -> Result<TokenResponse, OAuthError> {
    let (code_hash, grant_hash) = match origin {
        Origin::Code(code) => (Some(code), Some(code.to_vec())),
        Origin::Rotated(grant) => (None, grant),
        Origin::None => (None, None),
    };
    let access = token::generate();
    let refresh = token::generate();
    let expires_in = st.settings.access_token_ttl;
    let access_row = AccessTokenRow {
        token_hash: token::hash(access.expose()),
        user_id: user_id.to_string(),
        expires_at: now + expires_in,
        revoked: false,
        created_at: now,
        scope: SCOPE_SERVICE.into(),
    };
    let refresh_row = RefreshRow {
        token_hash: token::hash(refresh.expose()),
        client_id: client.client_id.clone(),
        user_id: user_id.to_string(),
        access_token_hash: access_row.token_hash.clone(),
        revoked: false,
        expires_at: now + REFRESH_TTL,
        created_at: now,
        grant_hash,
    };
    let event = crate::service::event(
        now,
        user_id,
        "oauth_token",
        None,
        "ok",
        serde_json::json!({"client_id": client.client_id, "grant": grant, "scope": "service"}),
    );
    let store = st.store.clone();
    let code = code_hash.map(<[u8]>::to_vec);
    let issued = blocking::run(move || {
        Ok(store.with(|c| {
            repo::oauth::issue_tokens(
                c,
                &Issue {
                    code_hash: code.as_deref(),
                    access: &access_row,
                    refresh: Some(&refresh_row),
                    sad: None,
                    event: &event,
                },
            )
        })?)
    })
    .await?;
    if !issued {
        return Err(code_replayed());
    }
    Ok(TokenResponse {
        access_token: access.expose().to_string(),
        token_type: "Bearer",
        expires_in,
        refresh_token: Some(refresh.expose().to_string()),
        scope: SCOPE_SERVICE.into(),
        credential_id: None,
        authorization_details: None,
    })
}

async fn credential_token(
    st: &AppState,
    client: &ClientRow,
    code: &CodeRow,
    params: &AuthzParams,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let (alg, digests) = check_digests(params)?;
    let cred_id = params.credential_id.clone().unwrap_or_default();
    let n = params.num_signatures.unwrap_or(0);
    let access = token::generate();
    let expires_in = st.settings.sad_ttl;
    let token_hash = token::hash(access.expose());
    let access_row = AccessTokenRow {
        token_hash: token_hash.clone(),
        user_id: code.user_id.clone(),
        expires_at: now + expires_in,
        revoked: false,
        created_at: now,
        scope: SCOPE_CREDENTIAL.into(),
    };
    // The token is the SAD: same row, same checks, same spending as credentials/authorize's.
    let sad = NewSad {
        sad_hash: token_hash.clone(),
        token_hash,
        user_id: code.user_id.clone(),
        credential_id: cred_id.clone(),
        hash_algo: alg.name().to_string(),
        num_signatures: i32::try_from(n).unwrap_or(1),
        expires_at: now + expires_in,
        created_at: now,
        digests,
    };
    let event = crate::service::event(
        now,
        &code.user_id,
        "oauth_token",
        Some(&cred_id),
        "ok",
        serde_json::json!({
            "client_id": client.client_id,
            "grant": "authorization_code",
            "scope": "credential",
            "num_signatures": n,
            "hash_algo": sad.hash_algo,
            "hashes": sad.digests.iter().map(hex::encode).collect::<Vec<_>>(),
        }),
    );
    let store = st.store.clone();
    let code_hash = code.code_hash.clone();
    let issued = blocking::run(move || {
        Ok(store.with(|c| {
            repo::oauth::issue_tokens(
                c,
                &Issue {
                    code_hash: Some(&code_hash),
                    access: &access_row,
                    refresh: None,
                    sad: Some(&sad),
                    event: &event,
                },
            )
        })?)
    })
    .await?;
    if !issued {
        return Err(code_replayed());
    }
    // RAR: echo the details with what the AS filled in (EUDI clients require these fields).
    let details = params.authorization_details.as_ref().map(|_| {
        serde_json::json!([{
            "type": "credential",
            "credentialID": cred_id,
            "numSignatures": n,
            "hashAlgorithmOID": params.hash_oid,
            "documentDigests": params.digests.iter().zip(
                params.labels.iter().map(Some).chain(std::iter::repeat(None))
            ).map(|(h, l)| match l {
                Some(l) if !l.is_empty() => serde_json::json!({"hash": h, "label": l}),
                _ => serde_json::json!({"hash": h}),
            }).collect::<Vec<_>>(),
        }])
    });
    Ok(TokenResponse {
        access_token: access.expose().to_string(),
        token_type: "Bearer",
        expires_in,
        refresh_token: None,
        scope: SCOPE_CREDENTIAL.into(),
        credential_id: Some(cred_id),
        authorization_details: details,
    })
}

/// `POST oauth2/pushed_authorize` (PAR): store the request; its `request_uri` and lifetime.
pub async fn push(
    st: &AppState,
    auth: ClientAuth,
    mut p: HashMap<String, String>,
) -> Result<(String, i64), OAuthError> {
    let client = authenticate_client(st, &auth, &p).await?;
    p.remove("client_secret");
    if p.contains_key("request_uri") {
        return Err(OAuthError::invalid_request(
            "request_uri is not allowed in a pushed request",
        ));
    }
    let redirect_uri = check_redirect(&client, p.get("redirect_uri"))?;
    let params = parse_authz(&p, &client, redirect_uri)?;
    if params.is_credential() && params.credential_id.is_some() {
        usable_credential(st, &params).await?;
    }
    let now = st.clock.now();
    let handle = token::generate();
    let row = RequestRow {
        handle_hash: token::hash(handle.expose()),
        client_id: client.client_id,
        params: serde_json::to_string(&params)
            .map_err(|e| OAuthError::from(CscError::Internal(e.to_string())))?,
        csrf_hash: None,
        pushed: true,
        expires_at: now + PAR_TTL,
        created_at: now,
        signer_id: None,
    };
    let store = st.store.clone();
    blocking::run(move || Ok(store.with(|c| repo::oauth::insert_request(c, &row))?)).await?;
    Ok((format!("{REQUEST_URI_PREFIX}{}", handle.expose()), PAR_TTL))
}

/// `POST oauth2/revoke` (RFC 7009): a token of this client stops working; an unknown token is
/// not an error.
pub async fn revoke(
    st: &AppState,
    auth: ClientAuth,
    p: HashMap<String, String>,
) -> Result<(), OAuthError> {
    let client = authenticate_client(st, &auth, &p).await?;
    let t = p
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter token"))?;
    let store = st.store.clone();
    let hash = token::hash(t);
    let revoked = blocking::run(move || {
        Ok(store.with(|c| repo::oauth::revoke_for_client(c, &hash, &client.client_id))?)
    })
    .await?;
    tracing::info!(revoked, "oauth token revocation");
    Ok(())
}
