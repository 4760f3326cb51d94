//! The OAuth 2.0 authorization server over HTTP against a real `quill serve`: the page (CSRF,
//! PIN + OTP, password, cancel, languages), PKCE, PAR, RAR, the token endpoint's grants and
//! every error the issue lists, and credential tokens signing through signHash under SAD rules.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::*;

pub const ES256: &str = "1.2.840.10045.4.3.2";
pub const REDIRECT: &str = "http://127.0.0.1:9/cb";

pub struct OClient {
    pub id: String,
    pub secret: Option<String>,
}

pub fn add_client(env: &Env, extra: &[&str]) -> OClient {
    let args = [
        &[
            "client",
            "add",
            "--redirect-uri",
            REDIRECT,
            "--name",
            "Acme Bank",
        ],
        extra,
    ]
    .concat();
    let v: Value = serde_json::from_str(&env.quill_ok(&args)).unwrap();
    OClient {
        id: v["client_id"].as_str().unwrap().to_string(),
        secret: v["client_secret"].as_str().map(str::to_string),
    }
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A client that does not follow redirects (the test reads `Location`).
pub fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn get_authorize(app: &TestApp, query: &[(&str, &str)]) -> Response {
    browser()
        .get(format!("{}/oauth2/authorize", app.base))
        .query(query)
        .send()
        .unwrap()
}

/// The hidden fields and CSRF cookie of a rendered page.
pub struct Form {
    pub handle: String,
    pub csrf: String,
    pub cookie: String,
    pub html: String,
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

pub fn page(r: Response) -> Form {
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("quill_csrf="))
        .expect("CSRF cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("quill_csrf=")
        .to_string();
    let html = r.text().unwrap();
    Form {
        handle: hidden(&html, "handle"),
        csrf: hidden(&html, "csrf"),
        cookie,
        html,
    }
}

/// The credential page's fields as signer `s` fills them, with this PIN and OTP.
pub fn signer_fields<'a>(s: &'a Signer, pin: &'a str, otp: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("username", &s.user),
        ("password", &s.password),
        ("pin", pin),
        ("otp", otp),
        ("action", "approve"),
    ]
}

/// Log in on a page that asks for the password first (an online-OTP credential, or one picked
/// by its qualifier): the next page asks for PIN and code, and no longer for the password.
pub fn log_in_on_page(app: &TestApp, f: &Form, s: &Signer) -> Form {
    let next = page(submit(
        app,
        f,
        &[
            ("username", &s.user),
            ("password", &s.password),
            ("action", "approve"),
        ],
    ));
    assert!(!next.html.contains("name=\"password\""), "{}", next.html);
    assert!(next.html.contains("name=\"pin\""), "{}", next.html);
    assert!(next.html.contains("name=\"otp\""), "{}", next.html);
    next
}

pub fn submit(app: &TestApp, f: &Form, fields: &[(&str, &str)]) -> Response {
    let mut form: Vec<(&str, &str)> = vec![("handle", &f.handle), ("csrf", &f.csrf)];
    form.extend_from_slice(fields);
    browser()
        .post(format!("{}/oauth2/authorize", app.base))
        .header("Cookie", format!("quill_csrf={}", f.cookie))
        .form(&form)
        .send()
        .unwrap()
}

/// The query of a redirect to the client.
pub fn redirected(r: &Response) -> std::collections::HashMap<String, String> {
    assert_eq!(r.status(), 302, "not a redirect");
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    url::Url::parse(loc)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// POST `form` to an OAuth endpoint, with HTTP Basic client credentials if given, and check the
/// exchange against schema/ (`schemas::check_oauth_exchange`): the status and the JSON body
/// (`Null` for none).
pub fn post_form(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, Option<&str>)>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = browser().post(format!("{}{path}", app.base));
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, secret);
    }
    let r = req.form(form).send().unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().unwrap();
    let sent: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    crate::schemas::check_oauth_exchange(path, Some(&sent), status, content_type.as_deref(), &text);
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
    };
    (status, body)
}

/// POST a form body announced as 2 MiB (and not sent: the server refuses it from its
/// Content-Length) to `path`; asserts a 413 and returns its Content-Type and body.
fn oversize(app: &TestApp, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let addr = app.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        2 << 20
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{path}: {head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (content_type, body.to_string())
}

/// A token request as client `c` (Basic for a confidential client, client_id for a public one).
pub fn token(app: &TestApp, c: &OClient, form: &[(&str, &str)]) -> (u16, Value) {
    let mut form = form.to_vec();
    let basic = match &c.secret {
        Some(s) => Some((c.id.as_str(), Some(s.as_str()))),
        None => {
            form.push(("client_id", &c.id));
            None
        }
    };
    post_form(app, "/oauth2/token", basic, &form)
}

/// Authorize `hashes` for `cred` through the page and exchange the code: the token response.
pub fn credential_token(
    app: &TestApp,
    client: &OClient,
    s: &Signer,
    cred: &str,
    hashes: &[Vec<u8>],
) -> Value {
    let (f, verifier) = credential_page(
        app,
        client,
        cred,
        hashes,
        &[("description", "Loan contract")],
    );
    assert!(f.html.contains("Loan contract") && f.html.contains("Acme Bank"));
    approve_and_exchange(app, client, &f, s, &s.next_otp(cred), &verifier)
}

/// The authorization page for a `scope=credential` request over `hashes` (state `st-1`), and
/// the PKCE verifier to exchange its code with.
pub fn credential_page(
    app: &TestApp,
    client: &OClient,
    cred: &str,
    hashes: &[Vec<u8>],
    extra: &[(&str, &str)],
) -> (Form, String) {
    let (verifier, challenge) = pkce();
    let joined = hashes
        .iter()
        .map(|h| URL_SAFE_NO_PAD.encode(h))
        .collect::<Vec<_>>()
        .join(",");
    let n = hashes.len().to_string();
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "credential"),
        ("credentialID", cred),
        ("numSignatures", &n),
        ("hashes", &joined),
        ("hashAlgorithmOID", SHA256),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", "st-1"),
    ];
    query.extend_from_slice(extra);
    (page(get_authorize(app, &query)), verifier)
}

/// Exchange an authorization code (`extra`: more token-request fields); asserts 200, returns
/// the token answer.
pub fn exchange_code(
    app: &TestApp,
    client: &OClient,
    code: &str,
    verifier: &str,
    extra: &[(&str, &str)],
) -> Value {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    form.extend_from_slice(extra);
    let (status, body) = token(app, client, &form);
    assert_eq!(status, 200, "{body}");
    body
}

/// signHash one digest with an OAuth credential token as the bearer (its own SAD), and verify
/// the P-256 signature against the credential's certificate.
pub fn sign_verified_with_credential_token(
    app: &TestApp,
    s: &Signer,
    cred: &str,
    credential_token: &str,
    h: &[u8],
) {
    let r = app.sign_hash_raw(
        credential_token,
        json!({"credentialID": cred, "hashes": [b64(h)], "signAlgo": ES256}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let service = app.login(&s.user, &s.password);
    verify_p256(
        &p256_key(app, &service, cred),
        h,
        r.body["signatures"][0].as_str().unwrap(),
    );
}

/// Approve the credential page as signer `s` (user name, password, PIN) with `otp`, follow
/// the redirect, exchange the code: the token answer.
pub fn approve_and_exchange(
    app: &TestApp,
    client: &OClient,
    f: &Form,
    s: &Signer,
    otp: &str,
    verifier: &str,
) -> Value {
    let q = redirected(&submit(app, f, &signer_fields(s, &s.pin, otp)));
    assert_eq!(q["state"], "st-1");
    exchange_code(app, client, &q["code"], verifier, &[])
}

fn sign_with(app: &TestApp, bearer: &str, cred: &str, sad: Option<&str>, h: &[u8]) -> Resp {
    let mut body = json!({"credentialID": cred, "hashes": [b64(h)], "signAlgo": ES256});
    if let Some(sad) = sad {
        body["SAD"] = json!(sad);
    }
    app.sign_hash_raw(bearer, body)
}

fn list_status(app: &TestApp, bearer: &str) -> u16 {
    app.client
        .post(format!("{}/csc/v2/credentials/list", app.base))
        .bearer_auth(bearer)
        .json(&json!({}))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn hashes(tag: &str, n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| digest(SHA256, format!("{tag}-{i}").as_bytes()))
        .collect()
}

#[test]
fn credential_token_signs_as_its_own_sad_and_nothing_else() {
    let env = Env::new();
    let s = signer("quinn");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let hs = hashes("doc", 2);
    let t = credential_token(&app, &client, &s, &cred, &hs);
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["credentialID"], cred);
    assert_eq!(t["scope"], "credential");
    assert!(t.get("refresh_token").is_none());
    let ctoken = t["access_token"].as_str().unwrap();
    let service = app.login(&s.user, &s.password);
    let key = p256_key(&app, &service, &cred);

    // The credential token in the header is the SAD …
    let r = sign_with(&app, ctoken, &cred, None, &hs[0]);
    assert_eq!(r.status, 200, "{}", r.body);
    verify_p256(&key, &hs[0], r.body["signatures"][0].as_str().unwrap());
    // … or it goes in SAD with a service token in the header.
    let other = digest(SHA256, b"not authorized");
    sign_with(&app, &service, &cred, Some(ctoken), &other).assert_error(400, "invalid_request");
    let r = sign_with(&app, &service, &cred, Some(ctoken), &hs[1]);
    assert_eq!(r.status, 200, "{}", r.body);
    verify_p256(&key, &hs[1], r.body["signatures"][0].as_str().unwrap());
    // The count is spent; the token opens nothing else.
    sign_with(&app, ctoken, &cred, None, &hs[0]).assert_error(400, "invalid_request");
    assert_eq!(list_status(&app, ctoken), 401);
    // credentials/info takes it (CSC §0), for its own credential only: the certificate it
    // needs to build the signed document.
    let info = |bearer: &str, id: &str| {
        app.post(
            "/csc/v2/credentials/info",
            Some(bearer),
            &json!({"credentialID": id, "certificates": "chain"}),
        )
    };
    let mine = info(ctoken, &cred);
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body, info(&service, &cred).body);
    let sibling = env.enroll(&s, "ec-p256").credential_id;
    assert_eq!(info(&service, &sibling).status, 200);
    let r = info(ctoken, &sibling);
    r.assert_error(400, "invalid_request");
    assert_eq!(
        r.description(),
        info(&service, "no-such-credential").description()
    );
    assert_eq!(
        app.post(
            "/csc/v2/credentials/authorize",
            Some(ctoken),
            &json!({"credentialID": cred, "numSignatures": 1}),
        )
        .status,
        401
    );
    assert_eq!(
        env.db_i64(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log WHERE action = 'oauth_token'"
        ),
        1
    );
    audit_verifies(&env);
}

#[test]
fn service_scope_code_refresh_rotation_and_revocation() {
    let env = Env::new();
    let s = signer("rhea");
    env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let public = add_client(&env, &["--public"]);
    assert!(public.secret.is_none());
    let (verifier, challenge) = pkce();
    let f = page(get_authorize(
        &app,
        &[
            ("response_type", "code"),
            ("client_id", &public.id),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "xyz"),
        ],
    ));
    assert!(f.html.contains("name=\"password\""));
    // A wrong password shows the page again with an alert; the right one redirects.
    let again = submit(&app, &f, &[("username", &s.user), ("password", "nope")]);
    assert_eq!(again.status(), 200);
    assert!(again.text().unwrap().contains("role=\"alert\""));
    let q = redirected(&submit(
        &app,
        &f,
        &[("username", &s.user), ("password", &s.password)],
    ));
    assert_eq!(q["state"], "xyz");
    assert_eq!(
        q["iss"], app.base,
        "RFC 9207: the response names its issuer"
    );
    let t = exchange_code(&app, &public, &q["code"], &verifier, &[]);
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(list_status(&app, &access), 200);

    // Refresh rotates: the old pair dies, the old refresh token is refused.
    let (status, t2) = token(
        &app,
        &public,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_eq!(status, 200, "{t2}");
    assert_eq!(list_status(&app, &access), 401);
    let access2 = t2["access_token"].as_str().unwrap().to_string();
    assert_eq!(list_status(&app, &access2), 200);
    let (status, e) = token(
        &app,
        &public,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));

    // Revoking the refresh token kills its access token too.
    let (status, _) = post_form(
        &app,
        "/oauth2/revoke",
        None,
        &[
            ("token", t2["refresh_token"].as_str().unwrap()),
            ("client_id", &public.id),
        ],
    );
    assert_eq!(status, 204);
    assert_eq!(list_status(&app, &access2), 401);
    // No token: invalid_request (an empty one is no token either).
    for form in [
        vec![("client_id", public.id.as_str())],
        vec![("client_id", public.id.as_str()), ("token", "")],
    ] {
        let (status, e) = post_form(&app, "/oauth2/revoke", None, &form);
        assert_eq!(
            (status, e["error"].as_str()),
            (400, Some("invalid_request"))
        );
    }
}

#[test]
fn authorize_errors_redirect_only_to_a_registered_uri() {
    let env = Env::new();
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let (_, challenge) = pkce();
    let base = [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s9"),
    ];
    let with = |k: &str, v: &str| -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = base
            .iter()
            .filter(|(bk, _)| *bk != k)
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        if !v.is_empty() {
            q.push((k.to_string(), v.to_string()));
        }
        q
    };
    let get = |q: Vec<(String, String)>| {
        browser()
            .get(format!("{}/oauth2/authorize", app.base))
            .query(&q)
            .send()
            .unwrap()
    };
    // Not trusted yet: an error page, never a redirect.
    for q in [
        with("client_id", "no-such-client"),
        with("redirect_uri", "http://127.0.0.1:9/evil"),
        with("client_id", ""),
    ] {
        let r = get(q);
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
        assert!(r.text().unwrap().contains("role=\"alert\""));
    }
    // Trusted client and URI: the error goes back to the client, with the state.
    for (q, error) in [
        (with("code_challenge", ""), "invalid_request"),
        (with("code_challenge_method", "plain"), "invalid_request"),
        (with("response_type", "token"), "unsupported_response_type"),
        (with("scope", "everything"), "invalid_scope"),
        (
            {
                let mut q = with("scope", "credential");
                q.push(("credentialID".into(), "no-such-credential".into()));
                q.push(("numSignatures".into(), "1".into()));
                q.push(("hashes".into(), URL_SAFE_NO_PAD.encode([7u8; 32])));
                q.push(("hashAlgorithmOID".into(), SHA256.into()));
                q
            },
            "invalid_request",
        ),
        // Credential parameters without scope=credential are refused, not ignored …
        (
            {
                let mut q = with("scope", "");
                q.push(("credentialID".into(), "some-credential".into()));
                q
            },
            "invalid_request",
        ),
        // … and so are both names of the hashes.
        (
            {
                let h = URL_SAFE_NO_PAD.encode([7u8; 32]);
                let mut q = with("scope", "credential");
                q.push(("credentialID".into(), "some-credential".into()));
                q.push(("numSignatures".into(), "1".into()));
                q.push(("hashes".into(), h.clone()));
                q.push(("hash".into(), h));
                q.push(("hashAlgorithmOID".into(), SHA256.into()));
                q
            },
            "invalid_request",
        ),
    ] {
        let r = get(q);
        let got = redirected(&r);
        assert_eq!(got["error"], error, "{got:?}");
        assert_eq!(got["state"], "s9");
        assert_eq!(got["iss"], app.base, "error responses name the issuer too");
    }
    // A state of 512 characters is fine however many bytes they take.
    let r = get(with("state", &"é".repeat(512)));
    assert_eq!(r.status(), 200);
    // Other methods: 405 naming the two this resource has.
    let r = browser()
        .put(format!("{}/oauth2/authorize", app.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    let text = r.text().unwrap();
    crate::schemas::check_error("/oauth2/authorize", 405, Some(&content_type), &text);
}

#[test]
fn token_endpoint_errors_pkce_code_reuse_expiry_client_auth_redirect() {
    let env = Env::new();
    let s = signer("sven");
    env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let code_for = |verifier_challenge: &str| {
        let f = page(get_authorize(
            &app,
            &[
                ("response_type", "code"),
                ("client_id", &client.id),
                ("code_challenge", verifier_challenge),
                ("code_challenge_method", "S256"),
            ],
        ));
        redirected(&submit(
            &app,
            &f,
            &[("username", &s.user), ("password", &s.password)],
        ))["code"]
            .clone()
    };
    let exchange = |c: &OClient, code: &str, verifier: &str, redirect: &str| {
        token(
            &app,
            c,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
            ],
        )
    };
    let err = |(status, body): (u16, Value)| (status, body["error"].as_str().unwrap().to_string());

    let (verifier, challenge) = pkce();
    let (other_verifier, _) = pkce();
    // PKCE mismatch (the code is burnt by the attempt).
    let code = code_for(&challenge);
    assert_eq!(
        err(exchange(&client, &code, &other_verifier, REDIRECT)),
        (400, "invalid_grant".into())
    );
    // redirect_uri mismatch.
    let code = code_for(&challenge);
    assert_eq!(
        err(exchange(
            &client,
            &code,
            &verifier,
            "http://127.0.0.1:9/other"
        )),
        (400, "invalid_grant".into())
    );
    // Wrong client secret, unknown client: 401 invalid_client.
    let code = code_for(&challenge);
    let wrong = OClient {
        id: client.id.clone(),
        secret: Some("wrong".into()),
    };
    assert_eq!(
        err(exchange(&wrong, &code, &verifier, REDIRECT)),
        (401, "invalid_client".into())
    );
    let unknown = OClient {
        id: "nobody".into(),
        secret: Some("x".into()),
    };
    assert_eq!(
        err(exchange(&unknown, &code, &verifier, REDIRECT)),
        (401, "invalid_client".into())
    );
    // The code still works for its client (client errors do not burn it) … once.
    let (status, t) = exchange(&client, &code, &verifier, REDIRECT);
    assert_eq!(status, 200, "{t}");
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(list_status(&app, access), 200);
    // Reuse: refused, and the token it gave is revoked.
    assert_eq!(
        err(exchange(&client, &code, &verifier, REDIRECT)),
        (400, "invalid_grant".into())
    );
    assert_eq!(list_status(&app, access), 401);
    // Expired code.
    let code = code_for(&challenge);
    env.db_execute("UPDATE oauth_codes SET expires_at = 0 WHERE used = FALSE");
    assert_eq!(
        err(exchange(&client, &code, &verifier, REDIRECT)),
        (400, "invalid_grant".into())
    );
    // Unsupported grant, missing parameters, client_credentials not allowed for this client.
    assert_eq!(
        err(token(&app, &client, &[("grant_type", "password")])),
        (400, "unsupported_grant_type".into())
    );
    assert_eq!(
        err(token(
            &app,
            &client,
            &[("grant_type", "authorization_code")]
        )),
        (400, "invalid_request".into())
    );
    assert_eq!(
        err(token(
            &app,
            &client,
            &[("grant_type", "client_credentials")]
        )),
        (400, "unauthorized_client".into())
    );
    // A service client may use client_credentials.
    let service = add_client(&env, &["--service-user", &s.user]);
    let (status, t) = token(&app, &service, &[("grant_type", "client_credentials")]);
    assert_eq!(status, 200, "{t}");
    assert_eq!(list_status(&app, t["access_token"].as_str().unwrap()), 200);
    // Not a form: invalid_request as JSON.
    let r = browser()
        .post(format!("{}/oauth2/token", app.base))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"], "invalid_request");
    // Over the size limit: 413 as OAuth JSON (the page's form: an HTML page), not the
    // framework's plain text.
    for path in [
        "/oauth2/token",
        "/oauth2/pushed_authorize",
        "/oauth2/revoke",
    ] {
        let (content_type, body) = oversize(&app, path);
        crate::schemas::check_error(path, 413, Some(&content_type), &body);
    }
    let (content_type, body) = oversize(&app, "/oauth2/authorize");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("role=\"alert\""), "{body}");
}

#[test]
fn page_csrf_wrong_pin_cancel_and_language() {
    let env = Env::new();
    let s = signer("tara");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let (_, challenge) = pkce();
    let h = URL_SAFE_NO_PAD.encode(digest(SHA256, b"x"));
    let q = [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("scope", "credential"),
        ("credentialID", cred.as_str()),
        ("numSignatures", "1"),
        ("hashes", h.as_str()),
        ("hashAlgorithmOID", SHA256),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("lang", "bg"),
    ];
    let f = page(get_authorize(&app, &q));
    assert!(
        f.html.contains("lang=\"bg\"") && f.html.contains("Подпиши"),
        "{}",
        f.html
    );
    // No cookie, or another page's token: refused, nothing counted.
    let r = browser()
        .post(format!("{}/oauth2/authorize", app.base))
        .form(&[("handle", &f.handle), ("csrf", &f.csrf), ("pin", &s.pin)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let forged = Form {
        csrf: "forged".into(),
        cookie: "forged".into(),
        handle: f.handle.clone(),
        html: String::new(),
    };
    assert_eq!(submit(&app, &forged, &[("pin", &s.pin)]).status(), 400);
    // A wrong PIN is counted (the page comes back with an alert).
    let r = submit(&app, &f, &signer_fields(&s, "000000", "123456"));
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("role=\"alert\""));
    assert_eq!(
        env.db_i64(&format!(
            "SELECT CAST(failed_auths AS BIGINT) AS n FROM credentials WHERE id = '{cred}'"
        )),
        1
    );
    // Cancel: access_denied to the client; the page cannot be used again.
    let got = redirected(&submit(&app, &f, &[("action", "cancel")]));
    assert_eq!(got["error"], "access_denied");
    assert_eq!(submit(&app, &f, &[("pin", &s.pin)]).status(), 400);
    // English from Accept-Language.
    let r = browser()
        .get(format!("{}/oauth2/authorize", app.base))
        .query(&q[..9])
        .header("Accept-Language", "de-DE, en;q=0.8")
        .send()
        .unwrap();
    let html = page(r).html;
    assert!(
        html.contains("lang=\"en\"") && html.contains(">Sign<"),
        "{html}"
    );
}

#[test]
fn pushed_rich_authorization_request_and_metadata() {
    let env = Env::new();
    let s = signer("uma");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let (verifier, challenge) = pkce();
    let h = digest(SHA256, b"contract.pdf");
    let details = json!([{
        "type": "credential",
        "credentialID": cred,
        "documentDigests": [{"hash": b64(&h), "label": "Contract 42"}],
        "hashAlgorithmOID": SHA256,
    }])
    .to_string();
    let par = |form: &[(&str, &str)]| {
        post_form(
            &app,
            "/oauth2/pushed_authorize",
            Some((&client.id, client.secret.as_deref())),
            form,
        )
    };
    let (status, v) = par(&[
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("authorization_details", &details),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", "par-state"),
    ]);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["expires_in"], 90);
    let request_uri = v["request_uri"].as_str().unwrap().to_string();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    // A bad pushed request is a JSON error, not a redirect.
    let (status, bad) = par(&[
        ("response_type", "code"),
        ("redirect_uri", "http://127.0.0.1:9/evil"),
    ]);
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // RAR names the credential and its hashes: scope=credential parameters beside it are
    // refused, as are credential parameters without scope=credential.
    let pkce_params = [
        ("response_type", "code"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for extra in [
        vec![
            ("authorization_details", details.as_str()),
            ("credentialID", cred.as_str()),
        ],
        vec![("credentialID", cred.as_str())],
        vec![("scope", "service"), ("numSignatures", "1")],
    ] {
        let form: Vec<(&str, &str)> = pkce_params.iter().copied().chain(extra).collect();
        let (status, e) = par(&form);
        assert_eq!(
            (status, e["error"].as_str()),
            (400, Some("invalid_request")),
            "{form:?}"
        );
    }
    // Error descriptions never quote what the request said: not a wrongly typed RAR value, not
    // the name of a repeated parameter that is no parameter name.
    let odd_details = json!([{
        "type": "credential",
        "credentialID": cred,
        "documentDigests": "not-a-list-QUOTED",
        "hashAlgorithmOID": SHA256,
    }])
    .to_string();
    let odd_name = "x-QUOTED ".repeat(20);
    for form in [
        pkce_params
            .iter()
            .copied()
            .chain([("authorization_details", odd_details.as_str())])
            .collect::<Vec<_>>(),
        pkce_params
            .iter()
            .copied()
            .chain([(odd_name.as_str(), "1"), (odd_name.as_str(), "2")])
            .collect(),
    ] {
        let (status, e) = par(&form);
        assert_eq!(
            (status, e["error"].as_str()),
            (400, Some("invalid_request")),
            "{e}"
        );
        assert!(
            !e["error_description"].as_str().unwrap().contains("QUOTED"),
            "{e}"
        );
    }

    let open = || {
        get_authorize(
            &app,
            &[("client_id", &client.id), ("request_uri", &request_uri)],
        )
    };
    // Another client cannot open it, nor use it up for its own.
    let intruder = add_client(&env, &[]);
    let r = get_authorize(
        &app,
        &[("client_id", &intruder.id), ("request_uri", &request_uri)],
    );
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("belongs to another client"));
    let f = page(open());
    assert!(f.html.contains("Contract 42"), "{}", f.html);
    // One page per request_uri.
    assert_eq!(open().status(), 400);
    let otp = s.next_otp(&cred);
    let q = redirected(&submit(&app, &f, &signer_fields(&s, &s.pin, &otp)));
    assert_eq!(q["state"], "par-state");
    let t = exchange_code(
        &app,
        &client,
        &q["code"],
        &verifier,
        &[("authorization_details", &details)],
    );
    let echo = &t["authorization_details"][0];
    assert_eq!(echo["credentialID"], cred);
    assert_eq!(echo["numSignatures"], 1);
    assert_eq!(echo["hashAlgorithmOID"], SHA256);
    assert_eq!(echo["documentDigests"][0]["hash"], b64(&h));
    let r = sign_with(&app, t["access_token"].as_str().unwrap(), &cred, None, &h);
    assert_eq!(r.status, 200, "{}", r.body);

    // Discovery: info names the issuer, whose metadata names the endpoints.
    let info = app.post("/csc/v2/info", None, &json!({}));
    let auth_types = info.body["authType"].as_array().unwrap();
    assert!(auth_types.contains(&json!("oauth2code")));
    let issuer = info.body["oauth2Issuer"].as_str().unwrap();
    assert_eq!(issuer, app.base);
    let r = browser()
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    let text = r.text().unwrap();
    crate::schemas::check_oauth_exchange(
        "/.well-known/oauth-authorization-server",
        None,
        status,
        Some(&content_type),
        &text,
    );
    let meta: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(meta["issuer"], issuer);
    assert_eq!(meta["token_endpoint"], format!("{issuer}/oauth2/token"));
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
}

/// A pushed request for a credential that failed PIN/OTP attempts have locked is refused at
/// once (`access_denied`), as for one the operator disabled, not only when the page is submitted.
#[test]
fn a_locked_credential_is_refused_at_the_pushed_request() {
    let env = Env::new();
    let s = signer("vera");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let (_, challenge) = pkce();
    let h = URL_SAFE_NO_PAD.encode(digest(SHA256, b"deed"));
    let par = || {
        post_form(
            &app,
            "/oauth2/pushed_authorize",
            Some((&client.id, client.secret.as_deref())),
            &[
                ("response_type", "code"),
                ("redirect_uri", REDIRECT),
                ("scope", "credential"),
                ("credentialID", &cred),
                ("numSignatures", "1"),
                ("hashes", &h),
                ("hashAlgorithmOID", SHA256),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
    };
    assert_eq!(par().0, 201);
    let token = app.login(&s.user, &s.password);
    for _ in 0..5 {
        let r = app.post(
            "/csc/v2/credentials/authorize",
            Some(&token),
            &json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(&digest(SHA256, b"x"))],
                    "hashAlgorithmOID": SHA256,
                    "authData": [{"id": "PIN", "value": "000999"}, {"id": "OTP", "value": totp_now(&s.totp_secret)}]}),
        );
        r.assert_error(400, "invalid_authentication_data");
    }
    let (status, v) = par();
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("access_denied")),
        "{v}"
    );
    env.quill_ok(&["credential", "unblock", "--credential", &cred]);
    assert_eq!(par().0, 201);
}

/// A service-scope grant through the page (password login): its access and refresh tokens.
fn service_grant(app: &TestApp, client: &OClient, s: &Signer) -> (String, String) {
    let (code, verifier) = service_code(app, client, s);
    let t = exchange_code(app, client, &code, &verifier, &[]);
    let field = |k: &str| t[k].as_str().unwrap().to_string();
    (field("access_token"), field("refresh_token"))
}

/// A service-scope authorization code through the page, with its PKCE verifier.
fn service_code(app: &TestApp, client: &OClient, s: &Signer) -> (String, String) {
    let (verifier, challenge) = pkce();
    let f = page(get_authorize(
        app,
        &[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    ));
    let q = redirected(&submit(
        app,
        &f,
        &[("username", &s.user), ("password", &s.password)],
    ));
    (q["code"].clone(), verifier)
}

/// RFC 6749 §4.1.2: a code presented twice revokes every token of its grant, the pairs its
/// refresh token rotated into included; another grant of the same user is untouched.
#[test]
fn a_replayed_code_revokes_its_whole_grant() {
    let env = Env::new();
    let s = signer("yara");
    env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let (code, verifier) = service_code(&app, &client, &s);
    let t = exchange_code(&app, &client, &code, &verifier, &[]);
    let refresh = |r: &str| {
        token(
            &app,
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", r)],
        )
    };
    let (status, rotated) = refresh(t["refresh_token"].as_str().unwrap());
    assert_eq!(status, 200, "{rotated}");
    let (other_access, other_refresh) = service_grant(&app, &client, &s);

    let (status, e) = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        list_status(&app, rotated["access_token"].as_str().unwrap()),
        401
    );
    let (status, e) = refresh(rotated["refresh_token"].as_str().unwrap());
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    assert_eq!(list_status(&app, &other_access), 200);
    assert_eq!(refresh(&other_refresh).0, 200);
}

/// CSC §2.2 `auth/revoke` (RFC 7009): a refresh token is revoked with the access token of its
/// grant; an access token alone, leaving its refresh token alive; another user's token not at all.
#[test]
fn auth_revoke_takes_refresh_tokens_with_their_grant() {
    let env = Env::new();
    let s = signer("wanda");
    env.enroll(&s, "ec-p256");
    let other = signer("xena");
    env.enroll(&other, "ec-p256");
    let app = env.spawn();
    let client = add_client(&env, &["--public"]);
    let revoke = |bearer: &str, token: &str, hint: Option<&str>| {
        let mut body = json!({"token": token});
        if let Some(h) = hint {
            body["token_type_hint"] = json!(h);
        }
        app.post("/csc/v2/auth/revoke", Some(bearer), &body)
    };
    let refresh_with = |refresh: &str| {
        token(
            &app,
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
    };
    let login = app.login(&s.user, &s.password);

    // A refresh token, with or without the hint: it and its grant's access token die.
    for hint in [Some("refresh_token"), None] {
        let (access, refresh) = service_grant(&app, &client, &s);
        let r = revoke(&login, &refresh, hint);
        assert_eq!(r.status, 204, "{}", r.body);
        assert_eq!(list_status(&app, &access), 401);
        let (status, e) = refresh_with(&refresh);
        assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    }

    // An access token: its refresh token still works.
    let (access, refresh) = service_grant(&app, &client, &s);
    assert_eq!(revoke(&login, &access, Some("access_token")).status, 204);
    assert_eq!(list_status(&app, &access), 401);
    let (status, t) = refresh_with(&refresh);
    assert_eq!(status, 200, "{t}");

    // Another user's refresh token: not found, and it keeps working.
    let (_, theirs) = service_grant(&app, &client, &other);
    let r = revoke(&login, &theirs, Some("refresh_token"));
    r.assert_error(400, "invalid_request");
    assert_eq!(r.description(), "Invalid parameter token");
    assert_eq!(refresh_with(&theirs).0, 200);
}

/// With `--public-url` the issuer and the endpoints of the metadata (and `info.oauth2Issuer`)
/// are that URL whatever Host or X-Forwarded-Host a client sends; without it they follow the
/// request (development).
#[test]
fn public_url_fixes_the_issuer_against_forged_host_headers() {
    let env = Env::new();
    let forged = |app: &TestApp| {
        let get = |path: &str| -> Value {
            app.client
                .get(format!("{}{path}", app.base))
                .header("Host", "evil.example")
                .header("X-Forwarded-Host", "evil.example")
                .header("X-Forwarded-Proto", "https")
                .send()
                .unwrap()
                .json()
                .unwrap()
        };
        let meta = get("/.well-known/oauth-authorization-server");
        let info: Value = app
            .client
            .post(format!("{}/csc/v2/info", app.base))
            .header("X-Forwarded-Host", "evil.example")
            .json(&json!({}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        (meta, info)
    };
    let app = env.spawn_with(&["--public-url", "https://sign.example.com/"]);
    let (meta, info) = forged(&app);
    assert_eq!(meta["issuer"], "https://sign.example.com");
    assert_eq!(
        meta["token_endpoint"],
        "https://sign.example.com/oauth2/token"
    );
    assert_eq!(info["oauth2Issuer"], "https://sign.example.com");
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    // the authorization response's iss (RFC 9207) is the fixed issuer too
    let client = add_client(&env, &[]);
    let r = browser()
        .get(format!("{}/oauth2/authorize", app.base))
        .query(&[
            ("response_type", "token"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .header("X-Forwarded-Host", "evil.example")
        .send()
        .unwrap();
    let q = redirected(&r);
    assert_eq!(q["error"], "unsupported_response_type", "{q:?}");
    assert_eq!(q["iss"], "https://sign.example.com");
    drop(app);
    let app = env.spawn();
    let (meta, _) = forged(&app);
    assert_eq!(
        meta["issuer"], "https://evil.example",
        "the request decides without it"
    );
}

/// RFC 9700 §4.14.2: a refresh token presented again after its rotation is taken for a stolen
/// copy, and the pair it was rotated into is revoked with it; another grant is untouched.
#[test]
fn a_reused_refresh_token_revokes_its_grant() {
    let env = Env::new();
    let s = signer("zora");
    env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let client = add_client(&env, &["--public"]);
    let refresh = |r: &str| {
        token(
            &app,
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", r)],
        )
    };
    let (_, first) = service_grant(&app, &client, &s);
    let (other_access, _) = service_grant(&app, &client, &s);
    let (status, t) = refresh(&first);
    assert_eq!(status, 200, "{t}");
    let (access, rotated) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(list_status(&app, access), 200);

    let (status, e) = refresh(&first);
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(list_status(&app, access), 401);
    let (status, e) = refresh(rotated);
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    assert_eq!(list_status(&app, &other_access), 200);

    // A grant from before grants were recorded (a refresh token an older Quill issued, or
    // rotated: no grant_hash) is linked from its first rotation on: that token presented
    // again revokes the pair it turned into.
    let (_, old) = service_grant(&app, &client, &s);
    env.db_execute("UPDATE oauth_refresh_tokens SET grant_hash = NULL");
    let (status, t) = refresh(&old);
    assert_eq!(status, 200, "{t}");
    let (access, rotated) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    let (status, _) = refresh(&old);
    assert_eq!(status, 400);
    assert_eq!(list_status(&app, access), 401);
    assert_eq!(refresh(rotated).0, 400);
}

/// `quill client add` takes only callback URIs: https, http on loopback, or a native app's
/// private-use scheme (RFC 8252); never a fragment, credentials, or a scheme a browser would run
/// or read locally.
#[test]
fn client_redirect_uris_are_callbacks_only() {
    let env = Env::new();
    let add = |uri: &str| {
        env.quill()
            .args(["client", "add", "--name", "x", "--redirect-uri", uri])
            .output()
            .unwrap()
    };
    for good in [
        "https://rp.example/cb",
        "http://127.0.0.1:8765/cb",
        "com.example.wallet:/oauth",
    ] {
        let out = add(good);
        assert!(
            out.status.success(),
            "{good}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for bad in [
        "https://rp.example/cb#frag",
        "http://rp.example/cb",
        "javascript:alert(document.domain)//",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "https://user:pw@rp.example/cb",
    ] {
        let out = add(bad);
        assert!(!out.status.success(), "{bad} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error:"), "{bad}: {err}");
    }
}

/// The credential page checks the signer's user name and password before the PIN and OTP:
/// someone who only knows a credential ID (or is another user) gets "wrong password" and cannot
/// count a single failure against the credential, so cannot lock it.
#[test]
fn only_the_credentials_owner_can_spend_its_pin_attempts_on_the_page() {
    let env = Env::new();
    let s = signer("abel");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let mallory = signer("mallory");
    env.enroll(&mallory, "ec-p256");
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let (f, _) = credential_page(&app, &client, &cred, &[digest(SHA256, b"x")], &[]);
    let failures = || {
        env.db_i64(&format!(
            "SELECT CAST(failed_auths AS BIGINT) AS n FROM credentials WHERE id = '{cred}'"
        ))
    };
    let mut f = f;
    for _ in 0..6 {
        // Another user's own, correct password; or the owner's name with a guessed one.
        for (user, password) in [
            (&mallory.user, &mallory.password),
            (&s.user, &"guess".to_string()),
        ] {
            let fields = [
                ("username", user.as_str()),
                ("password", password.as_str()),
                ("pin", "000000"),
                ("otp", "123456"),
                ("action", "approve"),
            ];
            let r = submit(&app, &f, &fields);
            assert_eq!(r.status(), 200);
            f = page(r);
            assert!(f.html.contains("role=\"alert\""), "{}", f.html);
        }
    }
    assert_eq!(failures(), 0, "no PIN was tried");
    // The owner (whose login the guesses locked, as auth/login would) is refused too until
    // unblocked, then signs.
    env.quill_ok(&["user", "unblock", "--user", &s.user]);
    let otp = s.next_otp(&cred);
    let q = redirected(&submit(&app, &f, &signer_fields(&s, &s.pin, &otp)));
    assert!(q.contains_key("code"), "{q:?}");
}

/// `signatureQualifier` beside `credentialID` must be what the credential makes (its
/// `credentials/info` value); the authorization server does not pick a credential by it.
#[test]
fn a_signature_qualifier_must_be_the_credentials() {
    let env = Env::new();
    let s = signer("nora");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let h = digest(SHA256, b"q");
    let service = app.login(&s.user, &s.password);
    let made = app.credential_info(&service, &cred)["signatureQualifier"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(made, "eu_eidas_aes");
    // the credential's own qualifier: the page opens
    let (f, _) = credential_page(
        &app,
        &client,
        &cred,
        std::slice::from_ref(&h),
        &[("signatureQualifier", &made)],
    );
    assert!(f.html.contains("name=\"pin\""));
    // another: refused back to the client, naming what the credential makes
    let (_, challenge) = pkce();
    let hashes = URL_SAFE_NO_PAD.encode(&h);
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "credential"),
        ("credentialID", cred.as_str()),
        ("numSignatures", "1"),
        ("hashes", hashes.as_str()),
        ("hashAlgorithmOID", SHA256),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("signatureQualifier", "eu_eidas_qes"),
    ];
    let q = redirected(&get_authorize(&app, &query));
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].contains("eu_eidas_aes"), "{q:?}");
    // In place of credentialID (CSC §8: the AS picks): the page asks who signs, and the
    // signer's usable credential that makes the qualifier and allows the signatures asked for
    // is authorized and named in the token response. The signer's second credential allows
    // one signature, and two are asked for: it is not picked (whichever is older; both were
    // enrolled within a second); another user's never is.
    let second = env
        .try_enroll_signer(&s, "ec-p256", &["--multisign", "1"])
        .unwrap()
        .credential_id;
    let other = signer("omar");
    env.enroll(&other, "ec-p256");
    query.retain(|(k, _)| *k != "credentialID");
    let (verifier, challenge) = pkce();
    let two = format!("{hashes},{}", URL_SAFE_NO_PAD.encode(digest(SHA256, b"q2")));
    let by_qualifier = |qualifier: &'static str| {
        let mut q = query.clone();
        q.retain(|(k, _)| {
            !matches!(
                *k,
                "signatureQualifier" | "code_challenge" | "numSignatures" | "hashes"
            )
        });
        q.extend([
            ("signatureQualifier", qualifier),
            ("code_challenge", challenge.as_str()),
            ("numSignatures", "2"),
            ("hashes", two.as_str()),
        ]);
        page(get_authorize(&app, &q))
    };
    let f = by_qualifier("eu_eidas_aes");
    assert!(!f.html.contains("name=\"pin\""), "the signer first");
    let f = log_in_on_page(&app, &f, &s);
    assert!(
        f.html.contains(&cred),
        "the page names the picked credential"
    );
    let otp = s.next_otp(&cred);
    let q = redirected(&submit(&app, &f, &signer_fields(&s, &s.pin, &otp)));
    let t = exchange_code(&app, &client, &q["code"], &verifier, &[]);
    assert_eq!(t["credentialID"], cred.as_str(), "{t}");
    assert_ne!(t["credentialID"], second.as_str());
    sign_verified_with_credential_token(&app, &s, &cred, t["access_token"].as_str().unwrap(), &h);
    // A qualifier none of the signer's credentials makes: refused once the signer is known.
    let f = by_qualifier("eu_eidas_qes");
    let q = redirected(&submit(
        &app,
        &f,
        &[
            ("username", &s.user),
            ("password", &s.password),
            ("action", "approve"),
        ],
    ));
    assert_eq!(q["error"], "access_denied", "{q:?}");
    assert!(
        q["error_description"].contains("signatureQualifier"),
        "{q:?}"
    );
    // Neither given: refused.
    query.retain(|(k, _)| *k != "signatureQualifier");
    let q = redirected(&get_authorize(&app, &query));
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].contains("credentialID"), "{q:?}");
}

/// What an authorization request leaves in the database before anyone has logged in is
/// bounded: a language tag of at most 35 characters, labels of at most 500, at most 1000
/// digests and 256 KiB in all; a request for an unknown credential stores nothing. (A public
/// client's pushed request, or any page GET, wrote whatever `lang` said, a megabyte a call.)
#[test]
fn authorization_requests_are_bounded_before_they_are_stored() {
    let env = Env::new();
    let s = signer("lena");
    let cred = env
        .try_enroll_signer(&s, "ec-p256", &["--multisign", "1000"])
        .unwrap()
        .credential_id;
    let app = env.spawn();
    let public = add_client(&env, &["--public"]);
    let (_, challenge) = pkce();
    let stored = || env.db_i64("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM oauth_requests");
    let base = [
        ("response_type", "code"),
        ("client_id", public.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let par = |extra: &[(&str, &str)]| {
        let form: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
        post_form(&app, "/oauth2/pushed_authorize", None, &form)
    };
    let h = b64(&digest(SHA256, b"bounded"));
    let details = |label: &str, n: usize| {
        let digests: Vec<Value> = (0..n)
            .map(|i| json!({"hash": b64(&digest(SHA256, &i.to_be_bytes())), "label": label}))
            .collect();
        json!([{"type": "credential", "credentialID": cred, "documentDigests": digests,
            "hashAlgorithmOID": SHA256}])
        .to_string()
    };
    let long_lang = "x".repeat(36);
    let long_label = details(&"l".repeat(501), 1);
    let many = details("d", 1001);
    let big = details(&"b".repeat(450), 600);
    for (extra, why) in [
        (vec![("lang", long_lang.as_str())], "Invalid parameter lang"),
        (vec![("lang", "en<script>")], "Invalid parameter lang"),
        (
            vec![("authorization_details", long_label.as_str())],
            "label is longer",
        ),
        (
            vec![("authorization_details", many.as_str())],
            "Too many hashes",
        ),
        (vec![("authorization_details", big.as_str())], "too large"),
    ] {
        let (status, e) = par(&extra);
        assert_eq!(
            (status, e["error"].as_str()),
            (400, Some("invalid_request")),
            "{e}"
        );
        assert!(
            e["error_description"].as_str().unwrap().contains(why),
            "{e}"
        );
    }
    assert_eq!(stored(), 0);
    // Within the bounds it is stored: a tag, and 1000 digests with labels.
    let fits = details("Contract", 1000);
    assert_eq!(
        par(&[("lang", "bg-BG"), ("authorization_details", &fits)]).0,
        201
    );
    assert_eq!(stored(), 1);
    // The page GET: the credential is judged before anything is stored.
    let get = |credential: &str, lang: &str| {
        let mut query: Vec<(&str, &str)> = base.to_vec();
        query.extend([
            ("scope", "credential"),
            ("credentialID", credential),
            ("numSignatures", "1"),
            ("hashes", h.as_str()),
            ("hashAlgorithmOID", SHA256),
            ("lang", lang),
        ]);
        get_authorize(&app, &query)
    };
    let q = redirected(&get("no-such-credential", "en"));
    assert_eq!(q["error"], "invalid_request", "{q:?}");
    let q = redirected(&get(&cred, &"y".repeat(5000)));
    assert_eq!(q["error"], "invalid_request", "{q:?}");
    assert_eq!(stored(), 1);
    assert_eq!(get(&cred, "en").status(), 200);
    assert_eq!(stored(), 2);
}
