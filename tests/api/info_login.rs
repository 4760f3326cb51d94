//! `info`, `auth/login`, `auth/revoke`, and the error layer for routes and methods.

use std::io::{Read, Write};

use serde_json::json;

use crate::helpers::*;

/// Connect to `app` and send a POST of `path` that announces a `length`-byte body, with the
/// extra header lines `headers` (each ending in CRLF), followed by the body bytes `sent`;
/// reads wait up to `wait_s` seconds.
fn post_head(
    app: &TestApp,
    path: &str,
    content_type: &str,
    headers: &str,
    length: usize,
    sent: &[u8],
    wait_s: u64,
) -> std::net::TcpStream {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(wait_s)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         {headers}Content-Length: {length}\r\n\r\n"
    )
    .unwrap();
    stream.write_all(sent).unwrap();
    stream
}

#[test]
fn info_describes_the_service() {
    let env = Env::new();
    let app = env.spawn();
    for body in ["{}", "", r#"{"lang":"en-US"}"#] {
        let r = app.post_raw("/csc/v2/info", None, body);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["specs"], "2.0.0.2");
        assert_eq!(
            r.body["authType"],
            json!(["basic", "oauth2code", "oauth2client"])
        );
        assert_eq!(r.body["oauth2Issuer"], app.base.as_str());
        let methods = r.body["methods"].as_array().unwrap();
        for m in [
            "info",
            "auth/login",
            "auth/revoke",
            "credentials/list",
            "credentials/info",
            "credentials/authorize",
            "signatures/signHash",
        ] {
            assert!(methods.contains(&json!(m)), "{m}");
        }
        let algos = r.body["signAlgorithms"]["algos"].as_array().unwrap();
        for a in [
            "1.2.840.113549.1.1.11",
            "1.2.840.113549.1.1.10",
            "1.2.840.113549.1.1.1",
            "1.2.840.10045.4.3.2",
            "1.2.840.10045.4.3.4",
        ] {
            assert!(algos.contains(&json!(a)), "{a}");
        }
        assert!(r.body["signature_formats"]["formats"].is_array());
    }
    // Every method advertised is routed (not 404/405) on v2.
    let r = app.post_raw("/csc/v2/info", None, "{}");
    for m in r.body["methods"].as_array().unwrap() {
        let resp = app.post_raw(&format!("/csc/v2/{}", m.as_str().unwrap()), None, "{}");
        assert!(
            resp.status != 404 && resp.status != 405,
            "{m}: {}",
            resp.status
        );
    }
}

#[test]
fn routing_errors_are_csc_json() {
    let env = Env::new();
    let app = env.spawn();
    let r = app
        .client
        .get(format!("{}/csc/v2/info", app.base))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["Allow"], "POST");
    let content_type = r.headers()["Content-Type"].to_str().unwrap().to_string();
    let text = r.text().unwrap();
    crate::schemas::check_error("/csc/v2/info", 405, Some(&content_type), &text);
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], "invalid_request");
    // CSC methods Quill does not offer: 501 (CSC §6.1), on v1 and v2, whatever the verb; none
    // of them is advertised. A path that names no CSC method: 404.
    let methods = app.post("/csc/v2/info", None, &serde_json::json!({})).body["methods"].clone();
    for name in [
        "credentials/authorizeCheck",
        "credentials/create",
        "credentials/delete",
    ] {
        assert!(
            !methods.as_array().unwrap().contains(&name.into()),
            "{methods}"
        );
        for version in ["v1", "v2"] {
            let path = format!("/csc/{version}/{name}");
            let r = app.post_raw(&path, Some("whatever"), "{}");
            r.assert_error(501, "invalid_request");
            assert_eq!(
                r.description(),
                format!("Method not implemented: {name} (see info.methods)")
            );
            let r = app
                .client
                .get(format!("{}{path}", app.base))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 501);
            let content_type = r.headers()["Content-Type"].to_str().unwrap().to_string();
            crate::schemas::check_error(&path, 501, Some(&content_type), &r.text().unwrap());
        }
    }
    app.post_raw("/csc/v2/signatures/signNothing", None, "{}")
        .assert_error(404, "invalid_request");
    app.post_raw("/nope", None, "{}")
        .assert_error(404, "invalid_request");
    app.post_raw("/csc/v2/info", None, "{not json")
        .assert_error(400, "invalid_request");
    app.post_raw("/csc/v2/info", None, "[1,2]")
        .assert_error(400, "invalid_request");
    // serde would read an array positionally into a request struct: only objects are bodies.
    for body in ["[null]", "[]", "\"x\"", "1", "null"] {
        app.post_raw("/csc/v2/info", None, body)
            .assert_error(400, "invalid_request");
    }
    // An oversize body is refused from its Content-Length, before it is read: announce 2 MiB
    // and send none of it (a client still writing would see the connection closed under it).
    let mut stream = post_head(
        &app,
        "/csc/v2/info",
        "application/json",
        "Connection: close\r\n",
        2 << 20,
        b"",
        10,
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .or_else(|| head.lines().find_map(|l| l.strip_prefix("Content-Type: ")));
    crate::schemas::check_error("/csc/v2/info", 413, content_type, body);
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[test]
fn login_and_revoke() {
    let env = Env::new();
    let s = signer("dave");
    env.enroll(&s, "ec-p256");
    let app = env.spawn();

    let token = app.login(&s.user, &s.password);
    let other = app.login(&s.user, &s.password);
    assert_ne!(token, other, "every login gets a fresh token");
    let list = app.post("/csc/v2/credentials/list", Some(&token), &json!({}));
    assert_eq!(list.status, 200);

    // wrong password and unknown user look the same
    let bad = |user: &str, pw: &str| {
        let basic = b64(format!("{user}:{pw}").as_bytes());
        app.login_raw(Some(&format!("Basic {basic}")))
    };
    let a = bad(&s.user, "wrong-password");
    a.assert_error(400, "authentication_error");
    let b = bad("nobody", "wrong-password");
    b.assert_error(400, "authentication_error");
    assert_eq!(a.description(), b.description());

    app.login_raw(None).assert_error(401, "invalid_request");
    app.login_raw(Some("Basic !!!not-base64"))
        .assert_error(401, "invalid_request");
    app.login_raw(Some("Bearer abc"))
        .assert_error(401, "invalid_request");
    app.login_raw(Some(&format!("Basic {}", b64(b"no-colon"))))
        .assert_error(400, "invalid_request");

    // protected methods need a live bearer token
    app.post("/csc/v2/credentials/list", None, &json!({}))
        .assert_error(401, "invalid_token");
    app.post("/csc/v2/credentials/list", Some("made-up"), &json!({}))
        .assert_error(401, "invalid_token");

    // revoke: missing token, unknown token, then the real one
    app.post("/csc/v2/auth/revoke", Some(&token), &json!({}))
        .assert_error(400, "invalid_request");
    app.post(
        "/csc/v2/auth/revoke",
        Some(&token),
        &json!({"token": "unknown"}),
    )
    .assert_error(400, "invalid_request");
    let r = app.post(
        "/csc/v2/auth/revoke",
        Some(&token),
        &json!({"token": token, "token_type_hint": "access_token"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    app.post("/csc/v2/credentials/list", Some(&token), &json!({}))
        .assert_error(401, "invalid_token");
    // the other token is untouched
    assert_eq!(
        app.post("/csc/v2/credentials/list", Some(&other), &json!({}))
            .status,
        200
    );
}

/// A client that sends its body too slowly (`--body-timeout`, here 1 s) gets 408 as CSC or
/// OAuth error JSON and loses the connection, instead of holding it for as long as it likes; a
/// body that arrives in time in several pieces is served.
#[test]
fn a_body_sent_too_slowly_gets_408_and_the_connection_closes() {
    let env = Env::new();
    let app = env.spawn_with(&["--body-timeout", "1"]);
    // Announce `body`, send only its first `sent` bytes, and wait for the answer.
    let send = |path: &str, content_type: &str, body: &[u8], sent: usize| {
        let mut stream = post_head(&app, path, content_type, "", body.len(), &body[..sent], 20);
        let started = std::time::Instant::now();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        (response, started.elapsed())
    };
    let check = |response: &str, status: u16| -> serde_json::Value {
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
        serde_json::from_str(body).unwrap()
    };

    // Half a CSC body, then nothing: 408 after about a second, and the server closes.
    let body = br#"{"lang": "en"}"#;
    let (response, waited) = send("/csc/v2/info", "application/json", body, 5);
    let v = check(&response, 408);
    assert_eq!(v["error"], "invalid_request");
    assert_eq!(v["error_description"], "Request body not received in time");
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
    // The same for an OAuth form and for RFC 3161.
    let (response, _) = send(
        "/oauth2/token",
        "application/x-www-form-urlencoded",
        b"grant_type=client_credentials&client_id=x",
        10,
    );
    assert_eq!(check(&response, 408)["error"], "invalid_request");
    let (response, _) = send("/tsa", "application/timestamp-query", &[0x30; 40], 3);
    assert_eq!(check(&response, 408)["error"], "invalid_request");
    // A body in two pieces, in time: served.
    let mut stream = post_head(
        &app,
        "/csc/v2/info",
        "application/json",
        "Connection: close\r\n",
        body.len(),
        &body[..5],
        20,
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    stream.write_all(&body[5..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert_eq!(check(&response, 200)["name"], "Quill");
}

/// A caller whose token is not live is answered 401 before the body it announced arrives:
/// nobody without a token makes Quill wait for (and hold) up to 1 MiB. Checked with the body
/// deadline at 30 s and the answer awaited for at most 10 s.
#[test]
fn a_large_body_is_not_awaited_for_a_dead_token() {
    let env = Env::new();
    let app = env.spawn_with(&["--body-timeout", "30"]);
    let status_of = |path: &str, length: usize| -> (String, std::time::Duration) {
        let auth = "Authorization: Bearer not-a-live-token\r\n";
        let mut stream = post_head(&app, path, "application/json", auth, length, b"{", 10);
        let started = std::time::Instant::now();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        (
            String::from_utf8_lossy(&head).into_owned(),
            started.elapsed(),
        )
    };
    for path in [
        "/csc/v2/signatures/signHash",
        "/csc/v2/signatures/signDoc",
        "/csc/v2/credentials/authorize",
        "/csc/v2/credentials/list",
    ] {
        let (head, waited) = status_of(path, 1_000_000);
        assert!(
            head.starts_with("HTTP/1.1 401"),
            "{path}: {head:?} after {waited:?}"
        );
    }
    // A small one is read first and judged with the call: the same 401 once it is all there.
    let r = app.post_raw(
        "/csc/v2/signatures/signHash",
        Some("not-a-live-token"),
        r#"{"credentialID": "x"}"#,
    );
    r.assert_error(401, "invalid_token");
}

/// Methods anyone may call without a token take bodies up to 64 KiB (refused from the
/// Content-Length, before a byte is read); the others keep 1 MiB.
#[test]
fn open_methods_take_bodies_up_to_64_kib() {
    let env = Env::new();
    let s = signer("olga");
    env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let head_with = |path: &str, content_type: &str, length: usize, auth: &str| -> String {
        let headers = format!("{auth}Connection: close\r\n");
        let mut stream = post_head(&app, path, content_type, &headers, length, b"", 10);
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.lines().next().unwrap_or_default().to_string()
    };
    let head_for =
        |path: &str, content_type: &str, length: usize| head_with(path, content_type, length, "");
    let form = "application/x-www-form-urlencoded";
    for (path, content_type) in [
        ("/csc/v2/info", "application/json"),
        ("/csc/v1/info", "application/json"),
        ("/csc/v2/auth/login", "application/json"),
        ("/oauth2/token", form),
        ("/oauth2/revoke", form),
        ("/oauth2/authorize", form),
        ("/tsa", "application/timestamp-query"),
    ] {
        let head = head_for(path, content_type, (64 << 10) + 1);
        assert!(head.starts_with("HTTP/1.1 413"), "{path}: {head}");
    }
    // At the limit: not refused for its size.
    let padding = |n: usize| "x".repeat(n - r#"{"lang":"en","clientData":""}"#.len());
    let body = json!({"lang": "en", "clientData": padding(64 << 10)});
    assert_eq!(body.to_string().len(), 64 << 10);
    let r = app.post("/csc/v2/info", None, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    // A method that needs a token: up to 1 MiB.
    let r = app.post(
        "/csc/v2/credentials/list",
        Some(&token),
        &json!({"clientData": "x".repeat(512 << 10)}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let head = head_with(
        "/csc/v2/credentials/list",
        "application/json",
        (1 << 20) + 1,
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

/// Answers that carry a secret (an access token, a SAD) tell every cache not to keep them;
/// others (info) need not.
#[test]
fn answers_carrying_tokens_or_sads_are_not_cached() {
    let env = Env::new();
    let s = signer("nico");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut r = app.client.post(format!("{}{path}", app.base)).json(&body);
        r = match token {
            Some(t) => r.bearer_auth(t),
            None => r.basic_auth(&s.user, Some(&s.password)),
        };
        let r = r.send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        (h, r.json::<serde_json::Value>().unwrap())
    };
    let no_store = |h: &reqwest::header::HeaderMap| {
        h.get("cache-control")
            .map(|v| v.to_str().unwrap().to_string())
            == Some("no-store".into())
            && h.get("pragma").is_some_and(|v| v == "no-cache")
    };
    let (h, login) = post("/csc/v2/auth/login", None, json!({}));
    assert!(no_store(&h), "auth/login: {h:?}");
    let token = login["access_token"].as_str().unwrap().to_string();
    let d = digest(SHA256, b"cached?");
    let (h, granted) = post(
        "/csc/v2/credentials/authorize",
        Some(&token),
        json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(&d)],
            "hashAlgorithmOID": SHA256,
            "authData": [{"id": "PIN", "value": s.pin}, {"id": "OTP", "value": s.next_otp(&cred)}]}),
    );
    assert!(no_store(&h), "credentials/authorize: {h:?}");
    let (h, _) = post(
        "/csc/v2/credentials/extendTransaction",
        Some(&token),
        json!({"credentialID": cred, "SAD": granted["SAD"]}),
    );
    assert!(no_store(&h), "credentials/extendTransaction: {h:?}");
}
