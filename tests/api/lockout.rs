//! Retry limits: wrong PIN/OTP attempts lock a credential, wrong passwords lock a login, the
//! counters survive restarts and hold under parallel guessing, and the operator unblocks.

use serde_json::json;

use crate::helpers::*;

fn wrong_pin(app: &TestApp, token: &str, s: &Signer, cred: &str) -> Resp {
    let h = digest(SHA256, b"x");
    app.post(
        "/csc/v2/credentials/authorize",
        Some(token),
        &json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(&h)], "hashAlgorithmOID": SHA256,
                "authData": [{"id": "PIN", "value": "000999"}, {"id": "OTP", "value": totp_now(&s.totp_secret)}]}),
    )
}

fn key_status(app: &TestApp, token: &str, cred: &str) -> String {
    app.credential_info(token, cred)["key"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn credential_locks_after_five_failures_until_unblocked() {
    let env = Env::new();
    let s = signer("ivan");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"doc");

    // a success clears earlier failures
    for _ in 0..4 {
        wrong_pin(&app, &token, &s, &cred).assert_error(400, "invalid_authentication_data");
    }
    app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    for _ in 0..5 {
        wrong_pin(&app, &token, &s, &cred).assert_error(400, "invalid_authentication_data");
    }
    // now even the right PIN and OTP are refused
    let r = app.authorize_raw(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    r.assert_error(400, "invalid_request");
    assert_eq!(r.description(), "Credential locked");
    assert_eq!(key_status(&app, &token, &cred), "disabled");
    let valid = app.post(
        "/csc/v2/credentials/list",
        Some(&token),
        &json!({"onlyValid": true}),
    );
    assert_eq!(valid.body["credentialIDs"], json!([]));

    // the lock survives a restart
    drop(app);
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let r = app.authorize_raw(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    assert_eq!(r.description(), "Credential locked");

    // operator unblocks while the server runs
    env.quill_ok(&["credential", "unblock", "--credential", &cred]);
    let unknown = env
        .quill()
        .args(["credential", "unblock", "--credential", "nope"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    // Only the real unblock is in the audit log, none for the unknown id.
    let unblocks = "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log WHERE action = 'unblock'";
    assert_eq!(env.db_i64(unblocks), 1);
    assert_eq!(key_status(&app, &token, &cred), "enabled");
    app.authorize(&token, &s, &cred, &[h], SHA256);
}

#[test]
fn parallel_wrong_guesses_cannot_exceed_the_limit() {
    let env = Env::new();
    let s = signer("judy");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = std::sync::Arc::new(env.spawn());
    let token = app.login(&s.user, &s.password);
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (app, token, s, cred) = (app.clone(), token.clone(), s.clone(), cred.clone());
            std::thread::spawn(move || wrong_pin(&app, &token, &s, &cred))
        })
        .collect();
    let results: Vec<Resp> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let checked = results
        .iter()
        .filter(|r| r.body["error"] == "invalid_authentication_data")
        .count();
    let locked = results
        .iter()
        .filter(|r| r.description() == "Credential locked")
        .count();
    assert_eq!(checked, 5, "exactly the limit of guesses was checked");
    assert_eq!(locked, 15);
}

#[test]
fn login_locks_after_five_wrong_passwords() {
    let env = Env::new();
    let s = signer("kim");
    env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let bad = format!("Basic {}", b64(format!("{}:nope-nope", s.user).as_bytes()));
    for _ in 0..5 {
        app.login_raw(Some(&bad))
            .assert_error(400, "authentication_error");
    }
    let good = format!(
        "Basic {}",
        b64(format!("{}:{}", s.user, s.password).as_bytes())
    );
    app.login_raw(Some(&good))
        .assert_error(400, "authentication_error");
    let out = env
        .quill()
        .args(["user", "unblock", "--user", &s.user])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.login(&s.user, &s.password);
}

/// A login lock lifts `--login-lock-secs` after the last wrong password (anyone who knows a
/// user name can set one): then one attempt is allowed, and a wrong one locks again at once.
/// Parallel attempts on a lifted lock get one attempt between them.
#[test]
fn a_login_lock_lifts_after_its_time() {
    let env = Env::new();
    let s = signer("lior");
    env.enroll(&s, "ec-p256");
    let app = env.spawn_with(&["--login-lock-secs", "2"]);
    let bad = format!("Basic {}", b64(format!("{}:nope-nope", s.user).as_bytes()));
    let good = format!(
        "Basic {}",
        b64(format!("{}:{}", s.user, s.password).as_bytes())
    );
    let failures = || {
        env.db_i64(&format!(
            "SELECT CAST(failed_logins AS BIGINT) AS n FROM users WHERE name = '{}'",
            s.user
        ))
    };
    for _ in 0..5 {
        app.login_raw(Some(&bad))
            .assert_error(400, "authentication_error");
    }
    app.login_raw(Some(&good))
        .assert_error(400, "authentication_error");
    assert_eq!(failures(), 5, "a refusal while locked reserves nothing");
    std::thread::sleep(std::time::Duration::from_millis(3100));
    // Lifted: of four wrong passwords at once, one is judged; the lock is back.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                app.login_raw(Some(&bad))
                    .assert_error(400, "authentication_error");
            });
        }
    });
    assert_eq!(failures(), 6, "one attempt between them");
    app.login_raw(Some(&good))
        .assert_error(400, "authentication_error");
    std::thread::sleep(std::time::Duration::from_millis(3100));
    app.login(&s.user, &s.password);
    assert_eq!(failures(), 0, "a good password clears the count");
}

/// CSC §11: a credential whose `key.status` is "disabled" never signs. A SAD issued before the
/// credential was locked (or disabled) is refused by signHash and signDoc, cannot be extended,
/// and no code is sent for it; the refusals spend nothing, so once unblocked the same SAD signs.
#[test]
fn a_lock_or_a_disable_stops_sads_issued_before_it() {
    let env = Env::new();
    let s = signer("nora");
    let cred = env
        .try_enroll_signer(&s, "ec-p256", &["--multisign", "3"])
        .unwrap()
        .credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let hs: Vec<Vec<u8>> = [b"1", b"2", b"3"]
        .iter()
        .map(|d| digest(SHA256, *d))
        .collect();
    let sad = app.authorize(&token, &s, &cred, &hs, SHA256);
    let sign = |h: &[u8]| {
        app.sign_hash_raw(
            &token,
            json!({"credentialID": cred, "SAD": sad, "hashes": [b64(h)], "signAlgo": "1.2.840.10045.4.3.2"}),
        )
    };
    let sign_doc = |h: &[u8]| {
        app.post(
            "/csc/v2/signatures/signDoc",
            Some(&token),
            &json!({"credentialID": cred, "SAD": sad, "documentDigests": [{
                "hashes": [b64(h)], "hashAlgorithmOID": SHA256, "signature_format": "C",
                "conformance_level": "Ades-B-B", "signAlgo": "1.2.840.10045.4.3.2",
                "signed_envelope_property": "Detached"}]}),
        )
    };
    let extend = || {
        app.post(
            "/csc/v2/credentials/extendTransaction",
            Some(&token),
            &json!({"credentialID": cred, "SAD": sad}),
        )
    };
    let challenge = || {
        app.post(
            "/csc/v2/credentials/getChallenge",
            Some(&token),
            &json!({"credentialID": cred, "authObjectID": "OTP"}),
        )
    };
    let refused = |r: Resp, why: &str| {
        r.assert_error(400, "invalid_request");
        assert_eq!(r.description(), why);
    };
    assert_eq!(sign(&hs[0]).status, 200);

    for _ in 0..5 {
        wrong_pin(&app, &token, &s, &cred).assert_error(400, "invalid_authentication_data");
    }
    assert_eq!(key_status(&app, &token, &cred), "disabled");
    refused(sign(&hs[1]), "Credential locked");
    refused(sign_doc(&hs[1]), "Credential locked");
    refused(extend(), "Credential locked");
    refused(challenge(), "Credential locked");

    env.quill_ok(&["credential", "unblock", "--credential", &cred]);
    assert_eq!(sign(&hs[1]).status, 200, "the refusals spent nothing");

    env.quill_ok(&["credential", "disable", "--credential", &cred]);
    let disabled = "The credential identified by credentialID is disabled";
    refused(sign(&hs[2]), disabled);
    refused(sign_doc(&hs[2]), disabled);
    refused(extend(), disabled);
    refused(challenge(), disabled);
    env.quill_ok(&["credential", "enable", "--credential", &cred]);
    let r = sign_doc(&hs[2]);
    assert_eq!(r.status, 200, "{}", r.body);
}
