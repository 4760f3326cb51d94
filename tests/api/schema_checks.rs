//! The schema checks bite (`helpers::send_checked` for CSC, `schemas::check_oauth_exchange` for
//! the OAuth 2.0 endpoints): real responses pass, the same responses with a required field
//! deleted or a type changed fail, and so does a request the schema refuses but the server
//! accepted.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::schemas::{check_exchange, validate};

/// `f` panics (the check refused the exchange).
fn refused(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
    std::panic::catch_unwind(f).is_err()
}

fn without(v: &Value, pointer: &str) -> Value {
    let mut v = v.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let removed = v
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key);
    assert!(removed.is_some(), "{pointer} not in {v}");
    v
}

fn with(v: &Value, pointer: &str, value: Value) -> Value {
    let mut v = v.clone();
    *v.pointer_mut(pointer).unwrap() = value;
    v
}

#[test]
fn the_schema_check_bites() {
    let env = Env::new();
    let s = signer("sara");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let info = app.credential_info(&token, &cred);
    let file = "credentials-info.response.json";
    validate(file, &info).unwrap();

    for pointer in [
        "/multisign",
        "/SCAL",
        "/key",
        "/key/algo",
        "/key/status",
        "/key/curve",
        "/cert/validTo",
        "/auth",
        "/auth/objects",
    ] {
        let broken = without(&info, pointer);
        assert!(
            validate(file, &broken).is_err(),
            "deleting {pointer} went unnoticed"
        );
    }
    for (pointer, value) in [
        ("/SCAL", json!(2)),
        ("/multisign", json!("5")),
        ("/key/algo/0", json!("sha256WithRSAEncryption")),
        ("/key/status", json!("locked")),
        // Absent while the certificate is not yet valid, but never another word.
        ("/cert/status", json!("not yet valid")),
        ("/cert/certificates/0", json!("not base64!")),
        ("/cert/validFrom", json!("2025-01-01T00:00:00Z")),
    ] {
        let broken = with(&info, pointer, value.clone());
        assert!(
            validate(file, &broken).is_err(),
            "{pointer} = {value} went unnoticed"
        );
    }
    let mut extra = info.clone();
    extra["surprise"] = json!(1);
    assert!(validate(file, &extra).is_err(), "undocumented field");

    // The chokepoint itself: a broken 200 body, an error that is not a CSC error, and a request
    // the schema refuses that the server answered with 200 are all refused.
    let path = "/csc/v2/credentials/info";
    let request = json!({"credentialID": cred}).to_string();
    let ok = info.to_string();
    let json_type = Some("application/json");
    check_exchange(path, &request, 200, json_type, &ok);
    let broken = without(&info, "/multisign").to_string();
    assert!(refused(|| check_exchange(
        path, &request, 200, json_type, &broken
    )));
    assert!(refused(|| check_exchange(path, &request, 200, None, &ok)));
    assert!(refused(|| check_exchange(
        path,
        &request,
        400,
        json_type,
        r#"{"message": "no"}"#
    )));
    assert!(refused(|| check_exchange(path, "{}", 200, json_type, &ok)));
    assert!(refused(|| check_exchange(
        "/csc/v2/auth/revoke",
        r#"{"token": 42}"#,
        204,
        None,
        ""
    )));
    // … while the same request refused with a 4xx is what the schema predicts.
    check_exchange(
        path,
        "{}",
        400,
        json_type,
        r#"{"error": "invalid_request", "error_description": "Missing credentialID"}"#,
    );
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The same for the OAuth 2.0 endpoints: real token, PAR and metadata answers pass and broken
/// ones fail, and a form the request schema refuses must not have been accepted.
#[test]
fn the_oauth_schema_check_bites() {
    use crate::oauth::{add_client, post_form, token};
    use crate::schemas::{check_oauth_exchange, form_as_json};

    let env = Env::new();
    let s = signer("olga");
    env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let client = add_client(&env, &["--service-user", &s.user]);
    let json_type = Some("application/json");

    let (status, t) = token(&app, &client, &[("grant_type", "client_credentials")]);
    assert_eq!(status, 200, "{t}");
    let file = "oauth2-token.response.json";
    validate(file, &t).unwrap();
    for pointer in ["/access_token", "/token_type", "/expires_in", "/scope"] {
        assert!(
            validate(file, &without(&t, pointer)).is_err(),
            "deleting {pointer} went unnoticed"
        );
    }
    for (pointer, value) in [
        ("/token_type", json!("MAC")),
        ("/expires_in", json!("3600")),
        ("/scope", json!("everything")),
    ] {
        assert!(
            validate(file, &with(&t, pointer, value.clone())).is_err(),
            "{pointer} = {value} went unnoticed"
        );
    }
    let mut extra = t.clone();
    extra["id_token"] = json!("x");
    assert!(validate(file, &extra).is_err(), "undocumented field");

    // The chokepoint: forms the schema refuses, answered with 200, are refused; the same forms
    // answered with a 400 are what the schema predicts.
    let path = "/oauth2/token";
    let ok = t.to_string();
    check_oauth_exchange(
        path,
        Some(&form(&[("grant_type", "client_credentials")])),
        200,
        json_type,
        &ok,
    );
    for bad in [
        form(&[("grant_type", "password")]),
        form(&[
            ("grant_type", "client_credentials"),
            ("scope", "credential"),
        ]),
        form(&[("grant_type", "authorization_code"), ("code", "c")]),
        form(&[("grant_type", "refresh_token")]),
        form(&[("scope", "service")]),
    ] {
        assert!(
            refused(|| check_oauth_exchange(path, Some(&bad), 200, json_type, &ok)),
            "{bad:?}"
        );
        check_oauth_exchange(
            path,
            Some(&bad),
            400,
            json_type,
            r#"{"error": "invalid_request", "error_description": "x"}"#,
        );
    }
    let broken = without(&t, "/scope").to_string();
    assert!(refused(|| check_oauth_exchange(
        path, None, 200, json_type, &broken
    )));
    assert!(refused(|| check_oauth_exchange(
        path,
        None,
        413,
        Some("text/plain"),
        "A payload reached size limit."
    )));

    // PAR: integers in a form read as integers; a repeated field is no JSON object.
    let par = "oauth2-pushedAuthorize.request.json";
    let pkce = [
        ("response_type", "code"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
    ];
    let with_n = |n: &str| {
        let mut f = form(&pkce);
        f.push(("numSignatures".into(), n.into()));
        form_as_json(par, &f).unwrap()
    };
    validate(par, &with_n("2")).unwrap();
    assert!(validate(par, &with_n("two")).is_err());
    assert!(validate(par, &with_n("0")).is_err());
    assert!(form_as_json(par, &form(&[("state", "a"), ("state", "b")])).is_none());
    let (status, pushed) = post_form(
        &app,
        "/oauth2/pushed_authorize",
        Some((&client.id, client.secret.as_deref())),
        &pkce,
    );
    assert_eq!(status, 201, "{pushed}");
    let file = "oauth2-pushedAuthorize.response.json";
    validate(file, &pushed).unwrap();
    assert!(validate(file, &without(&pushed, "/request_uri")).is_err());
    assert!(
        validate(
            file,
            &with(&pushed, "/request_uri", json!("https://x.example/r"))
        )
        .is_err()
    );

    // The metadata document.
    let meta: Value = reqwest::blocking::get(format!(
        "{}/.well-known/oauth-authorization-server",
        app.base
    ))
    .unwrap()
    .json()
    .unwrap();
    let file = "oauth2-metadata.response.json";
    validate(file, &meta).unwrap();
    assert!(validate(file, &without(&meta, "/token_endpoint")).is_err());
    assert!(
        validate(
            file,
            &with(&meta, "/code_challenge_methods_supported", json!(["plain"]))
        )
        .is_err()
    );
}
