//! Keys spread over two tokens (issue 8: multi-slot/multi-token): `--token-label a,b` with one
//! PIN per token; enrolment alternates the tokens, and `quill serve` signs with every key,
//! each signature verified against its certificate. (Which token got which key is checked in
//! the unit test `qscd::tests::token_set_spreads_keys_and_finds_them_in_any_order`.)

use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::*;

const SECOND_PIN: &str = "8642-second";

fn token_flags() -> Vec<&'static str> {
    vec![
        "--token-label",
        "quill-test,quill-test-2",
        "--token-pin",
        TOKEN_PIN,
        "--token-pin",
        SECOND_PIN,
    ]
}

#[test]
fn two_tokens_with_their_own_pins_sign_for_every_credential() {
    let env = Env::new();
    let status = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "quill-test-2"])
        .args(["--pin", SECOND_PIN, "--so-pin", "5678-so"])
        .env("SOFTHSM2_CONF", &env.conf)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let s = signer("multi");
    let mut creds = Vec::new();
    for _ in 0..4 {
        let e = env.try_enroll_signer(&s, "ec-p256", &token_flags());
        creds.push(e.unwrap().credential_id);
    }
    // The second token's PIN is checked: the first token's PIN alone does not open it.
    let one_pin = ["--token-label", "quill-test,quill-test-2"];
    let err = env.try_enroll_signer(&s, "ec-p256", &one_pin).unwrap_err();
    assert!(
        err.contains("login to token \"quill-test-2\" failed"),
        "{err}"
    );
    // PINs must match the labels one to one (or be one for all).
    let mut three = token_flags();
    three.extend(["--token-pin", "x"]);
    let err = env.try_enroll_signer(&s, "ec-p256", &three).unwrap_err();
    assert!(err.contains("one per --token-label"), "{err}");

    let app = env.spawn_with(&token_flags());
    let token = app.login(&s.user, &s.password);
    let listed = app.post("/csc/v2/credentials/list", Some(&token), &json!({}));
    assert_eq!(listed.body["credentialIDs"].as_array().unwrap().len(), 4);
    for (i, cred) in creds.iter().enumerate() {
        let info = app.credential_info(&token, cred);
        let (ee, ca) = chain(&info);
        assert_issued_by(&ee, &ca);
        let h = digest(SHA256, format!("document {i}").as_bytes());
        let sad = app.authorize(&token, &s, cred, std::slice::from_ref(&h), SHA256);
        let r = app.sign_hash_raw(
            &token,
            json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": "1.2.840.10045.4.3.2"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        verify_p256(
            &p256_key(&app, &token, cred),
            &h,
            r.body["signatures"][0].as_str().unwrap(),
        );
    }
    let ready = app.get("/readyz");
    assert_eq!(ready.status(), 200);
}
