//! The schema check in `helpers::send_checked` bites: real responses pass, the same responses
//! with a required field deleted or a type changed fail, and so does a request the schema
//! refuses but the server accepted.

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
        "/cert/status",
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
