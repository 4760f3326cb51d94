//! Negative tests: every refusal is a CSC error JSON with the right status, and no signature.

use serde_json::{Value, json};

use crate::helpers::*;

struct World {
    env: Env,
    app: TestApp,
    s: Signer,
    token: String,
    rsa: String,
    ec: String,
}

fn world() -> World {
    let env = Env::new();
    let s = signer("erin");
    let rsa = env.enroll(&s, "rsa-2048").credential_id;
    let ec = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    World {
        env,
        app,
        s,
        token,
        rsa,
        ec,
    }
}

impl World {
    fn sad_for(&self, cred: &str, hashes: &[Vec<u8>]) -> String {
        self.app
            .authorize(&self.token, &self.s, cred, hashes, SHA256)
    }

    fn sign(&self, cred: &str, sad: &str, hashes: &[Vec<u8>], algo: &str) -> Resp {
        self.app.sign_hash_raw(
            &self.token,
            json!({"credentialID": cred, "SAD": sad, "signAlgo": algo,
                   "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>()}),
        )
    }
}

fn no_signature(r: &Resp) {
    assert!(
        r.body.get("signatures").is_none(),
        "no signature may come back: {}",
        r.body
    );
}

#[test]
fn sign_hash_input_errors() {
    let w = world();
    let h = digest(SHA256, b"doc");
    let sad = w.sad_for(&w.rsa, std::slice::from_ref(&h));
    let base = json!({"credentialID": w.rsa, "SAD": sad, "hashes": [b64(&h)], "signAlgo": "1.2.840.113549.1.1.11"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v;
        }
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (with("SAD", Value::Null), "SAD"),
        (with("credentialID", Value::Null), "credentialID"),
        (with("hashes", Value::Null), "hashes"),
        (with("hashes", json!([])), "Empty hash array"),
        (with("hashes", json!(["***not base64***"])), "Base64"),
        (
            with("hashes", json!([b64(&[1u8; 20])])),
            "digest value length",
        ),
        (with("hashes", json!("not-an-array")), "Invalid type"),
        (with("hashes", json!([b64(&h), b64(&h)])), "Duplicate"),
        (with("hash", json!([b64(&h)])), "both"),
        (with("signAlgo", Value::Null), "signAlgo"),
        (with("signAlgo", json!("1.2.3.4")), "signAlgo"),
        (with("signAlgo", json!("1.2.840.10045.4.3.2")), "signAlgo"),
        (with("signAlgo", json!("1.2.840.113549.1.1.5")), "signAlgo"),
        (with("hashAlgorithmOID", json!(SHA384)), "contradicts"),
        (with("hashAlgorithmOID", json!("1.3.14.3.2.26")), "SHA-1"),
        (
            with("signAlgo", json!("1.2.840.113549.1.1.1")),
            "hashAlgorithmOID",
        ),
        (
            with("signAlgo", json!("1.2.840.113549.1.1.10")),
            "signAlgoParams",
        ),
        (with("signAlgoParams", json!("%%%")), "signAlgoParams"),
        (
            with("credentialID", json!("no-such-credential")),
            "credentialID",
        ),
        (with("credentialID", json!(42)), "Invalid type"),
        (with("operationMode", json!("X")), "operationMode"),
    ];
    for (body, needle) in cases {
        let r = w.app.sign_hash_raw(&w.token, body.clone());
        r.assert_error(400, "invalid_request");
        assert!(
            r.description().contains(needle),
            "{body} → {} (wanted {needle})",
            r.body
        );
        no_signature(&r);
    }
    // PSS parameters with SHA-1 (empty SEQUENCE = all defaults) are refused.
    let r = w
        .app
        .sign_hash_raw(&w.token, with("signAlgoParams", json!(b64(&[0x30, 0x00]))));
    r.assert_error(400, "invalid_request");
    // Malformed JSON body
    w.app
        .post_raw("/csc/v2/signatures/signHash", Some(&w.token), "{\"SAD\": ")
        .assert_error(400, "invalid_request");
    // A bad token is 401 whatever the body: malformed, naming no credential, or naming the
    // caller's real credential (found by the same statement that judges the token).
    for body in [
        "{\"SAD\": ".to_string(),
        with("credentialID", Value::Null).to_string(),
        base.to_string(),
    ] {
        w.app
            .post_raw("/csc/v2/signatures/signHash", Some("not-a-token"), &body)
            .assert_error(401, "invalid_token");
    }
    // After all those refusals the SAD is intact and signs once.
    assert_eq!(
        w.sign(
            &w.rsa,
            &sad,
            std::slice::from_ref(&h),
            "1.2.840.113549.1.1.11"
        )
        .status,
        200
    );
}

#[test]
fn sad_binding_errors() {
    let w = world();
    let h1 = digest(SHA256, b"one");
    let h2 = digest(SHA256, b"two");
    let sad = w.sad_for(&w.ec, std::slice::from_ref(&h1));

    // a hash the SAD does not cover
    let r = w.sign(
        &w.ec,
        &sad,
        std::slice::from_ref(&h2),
        "1.2.840.10045.4.3.2",
    );
    r.assert_error(400, "invalid_request");
    assert!(r.description().contains("not authorized"), "{}", r.body);
    // the SAD of another credential
    let r = w.sign(
        &w.rsa,
        &sad,
        std::slice::from_ref(&h1),
        "1.2.840.113549.1.1.11",
    );
    r.assert_error(400, "invalid_request");
    assert_eq!(r.description(), "Invalid parameter SAD");
    // a made-up SAD
    let r = w.sign(
        &w.ec,
        "made-up-sad",
        std::slice::from_ref(&h1),
        "1.2.840.10045.4.3.2",
    );
    assert_eq!(r.description(), "Invalid parameter SAD");
    // the digest algorithm the SAD was issued for: a SHA-384 digest of the right length for
    // ecdsa-with-SHA384 reaches the SAD, which was issued for SHA-256
    let r = w.sign(
        &w.ec,
        &sad,
        &[digest(SHA384, b"one")],
        "1.2.840.10045.4.3.3",
    );
    r.assert_error(400, "invalid_request");
    assert!(
        r.description().contains("another digest algorithm"),
        "{}",
        r.body
    );
    no_signature(&r);
    // right use works once, then the same hash cannot be signed again
    let ok = w.sign(
        &w.ec,
        &sad,
        std::slice::from_ref(&h1),
        "1.2.840.10045.4.3.2",
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let again = w.sign(
        &w.ec,
        &sad,
        std::slice::from_ref(&h1),
        "1.2.840.10045.4.3.2",
    );
    again.assert_error(400, "invalid_request");
    no_signature(&again);

    // another user's SAD and credential
    let mallory = signer("mallory");
    let m_cred = w.env.enroll(&mallory, "ec-p256").credential_id;
    let m_token = w.app.login(&mallory.user, &mallory.password);
    let sad2 = w.sad_for(&w.ec, std::slice::from_ref(&h2));
    let r = w.app.sign_hash_raw(
        &m_token,
        json!({"credentialID": w.ec, "SAD": sad2, "hashes": [b64(&h2)], "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    r.assert_error(400, "invalid_request");
    let unknown = w.app.sign_hash_raw(
        &m_token,
        json!({"credentialID": "0000", "SAD": sad2, "hashes": [b64(&h2)], "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    assert_eq!(
        r.description(),
        unknown.description(),
        "another user's credential looks unknown"
    );
    let r = w.app.sign_hash_raw(
        &m_token,
        json!({"credentialID": m_cred, "SAD": sad2, "hashes": [b64(&h2)], "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    assert_eq!(
        r.description(),
        "Invalid parameter SAD",
        "a SAD is bound to its user"
    );
    // mallory cannot see or authorize erin's credential
    let r = w.app.post(
        "/csc/v2/credentials/info",
        Some(&m_token),
        &json!({"credentialID": w.ec}),
    );
    r.assert_error(400, "invalid_request");
    let list = w
        .app
        .post("/csc/v2/credentials/list", Some(&m_token), &json!({}));
    assert_eq!(list.body["credentialIDs"], json!([m_cred]));
    w.app
        .authorize_raw(&m_token, &w.s, &w.ec, std::slice::from_ref(&h2), SHA256)
        .assert_error(400, "invalid_request");
    // erin's SAD2 is still good for erin
    assert_eq!(
        w.sign(&w.ec, &sad2, &[h2], "1.2.840.10045.4.3.2").status,
        200
    );
}

#[test]
fn expired_sad_and_revoked_token() {
    let env = Env::new();
    let s = signer("frank");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn_with(&["--sad-ttl", "1"]);
    let token = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"late");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    r.assert_error(400, "invalid_request");
    assert_eq!(r.description(), "SAD expired");

    // revoking the token kills its SADs
    let token2 = app.login(&s.user, &s.password);
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    let r = app.post(
        "/csc/v2/auth/revoke",
        Some(&token2),
        &json!({"token": token}),
    );
    assert_eq!(r.status, 204);
    // Both SADs issued under the revoked token are retired in the revocation itself (not only
    // refused while its row says revoked): no refund can bring them back.
    assert_eq!(
        env.db_i64("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM sads WHERE remaining <> -1"),
        0
    );
    let r = app.sign_hash_raw(
        &token2,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    r.assert_error(400, "invalid_request");
    assert_eq!(r.description(), "Invalid parameter SAD");
    no_signature(&r);
}

/// A SAD's expiry is judged when the spend holds the write lock, not when the call arrived: a
/// signHash that waits for the lock past the expiry signs nothing and spends nothing.
#[test]
fn a_sad_that_expires_while_its_call_waits_signs_nothing() {
    let env = Env::new();
    let s = signer("wanda");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn_with(&["--sad-ttl", "2"]);
    let token = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"waited");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    let holder = env.hold_write_lock(std::time::Duration::from_millis(3200));
    let sent = std::time::Instant::now();
    let r = app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    let waited = sent.elapsed();
    holder.join().unwrap();
    r.assert_error(400, "invalid_request");
    assert_eq!(r.description(), "SAD expired");
    no_signature(&r);
    assert!(
        waited >= std::time::Duration::from_secs(2),
        "the call waited for the lock ({waited:?})"
    );
    assert_eq!(env.used_digests("1 = 1"), 0);
}

#[test]
fn authorize_errors() {
    let w = world();
    let h = digest(SHA256, b"contract");
    let otp = w.s.next_otp(&w.ec);
    let base = json!({"credentialID": w.ec, "numSignatures": 1, "hashes": [b64(&h)],
        "hashAlgorithmOID": SHA256, "authData": [{"id": "PIN", "value": w.s.pin}, {"id": "OTP", "value": otp}]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v;
        }
        b
    };
    let wrong_otp = if otp == "000000" { "111111" } else { "000000" };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with("credentialID", Value::Null),
            "invalid_request",
            "credentialID",
        ),
        (
            with("credentialID", json!("unknown")),
            "invalid_request",
            "credentialID",
        ),
        (
            with("numSignatures", Value::Null),
            "invalid_request",
            "numSignatures",
        ),
        (
            with("numSignatures", json!(0)),
            "invalid_request",
            "numSignatures",
        ),
        (
            with("numSignatures", json!(2)),
            "invalid_request",
            "number of hashes",
        ),
        (
            with("numSignatures", json!(101)),
            "invalid_request",
            "too high",
        ),
        (with("hashes", Value::Null), "invalid_request", "hashes"),
        (with("hashes", json!([])), "invalid_request", "Empty"),
        (with("hashes", json!(["@@@"])), "invalid_request", "Base64"),
        (
            with("hashAlgorithmOID", Value::Null),
            "invalid_request",
            "hashAlgorithmOID",
        ),
        (
            with("hashAlgorithmOID", json!("1.3.14.3.2.26")),
            "invalid_request",
            "SHA-1",
        ),
        (
            with("hashAlgorithmOID", json!(SHA512)),
            "invalid_request",
            "length",
        ),
        (
            with("authData", Value::Null),
            "invalid_request",
            "PIN and OTP",
        ),
        (
            with("authData", json!([{"id": "PIN", "value": w.s.pin}])),
            "invalid_request",
            "PIN and OTP",
        ),
        (
            with(
                "authData",
                json!([{"id": "PIN", "value": "999999"}, {"id": "OTP", "value": otp}]),
            ),
            "invalid_authentication_data",
            "authentication data",
        ),
        (
            with(
                "authData",
                json!([{"id": "PIN", "value": w.s.pin}, {"id": "OTP", "value": wrong_otp}]),
            ),
            "invalid_authentication_data",
            "authentication data",
        ),
        (
            with(
                "authData",
                json!([{"id": "PIN", "value": w.s.pin}, {"id": "OTP", "value": "12"}]),
            ),
            "invalid_authentication_data",
            "authentication data",
        ),
        // authData items are objects, not positional arrays (the right PIN and OTP, too).
        (
            with("authData", json!([["PIN", w.s.pin], ["OTP", otp]])),
            "invalid_request",
            "Invalid type",
        ),
        // hashes and its v1 name hash together are ambiguous.
        (with("hash", json!([b64(&h)])), "invalid_request", "both"),
    ];
    for (body, code, needle) in cases {
        let r = w
            .app
            .post("/csc/v2/credentials/authorize", Some(&w.token), &body);
        r.assert_error(400, code);
        assert!(
            r.description().contains(needle),
            "{body} → {} (wanted {needle})",
            r.body
        );
        assert!(r.body.get("SAD").is_none());
    }
    // without a token
    w.app
        .post("/csc/v2/credentials/authorize", None, &base)
        .assert_error(401, "invalid_token");
    // and the valid request works
    assert_eq!(
        w.app
            .post("/csc/v2/credentials/authorize", Some(&w.token), &base)
            .status,
        200
    );
}

#[test]
fn list_and_info_errors() {
    let w = world();
    let list = |b: Value| w.app.post("/csc/v2/credentials/list", Some(&w.token), &b);
    list(json!({"userID": "someone"})).assert_error(400, "invalid_request");
    list(json!({"certificates": "all"})).assert_error(400, "invalid_request");
    list(json!({"credentialInfo": "yes"})).assert_error(400, "invalid_request");
    let info = |b: Value| w.app.post("/csc/v2/credentials/info", Some(&w.token), &b);
    info(json!({})).assert_error(400, "invalid_request");
    info(json!({"credentialID": w.rsa, "certificates": "bogus"}))
        .assert_error(400, "invalid_request");
    info(json!({"credentialID": "x".repeat(10_000)})).assert_error(400, "invalid_request");
}

#[test]
fn replayed_otp_is_refused() {
    let env = Env::new();
    let s = signer("olga");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let body = |otp: &str, doc: &[u8]| {
        json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(&digest(SHA256, doc))],
               "hashAlgorithmOID": SHA256, "authData": [{"id": "PIN", "value": s.pin}, {"id": "OTP", "value": otp}]})
    };
    let secret = quill::auth::otp::parse_secret(&s.totp_secret).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let code_now = quill::auth::otp::generate(&secret, now).unwrap();
    let code_before = quill::auth::otp::generate(&secret, now - 30).unwrap();
    let r = app.post(
        "/csc/v2/credentials/authorize",
        Some(&token),
        &body(&code_now, b"a"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // the same code again, even for other hashes, and the neighbouring older code: refused
    let again = app.post(
        "/csc/v2/credentials/authorize",
        Some(&token),
        &body(&code_now, b"b"),
    );
    again.assert_error(400, "invalid_authentication_data");
    assert!(again.body.get("SAD").is_none());
    if code_before != code_now {
        app.post(
            "/csc/v2/credentials/authorize",
            Some(&token),
            &body(&code_before, b"c"),
        )
        .assert_error(400, "invalid_authentication_data");
    }
    // the next code works
    let code_next = quill::auth::otp::generate(&secret, now + 30).unwrap();
    if code_next != code_now {
        let r = app.post(
            "/csc/v2/credentials/authorize",
            Some(&token),
            &body(&code_next, b"d"),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[test]
fn concurrent_sign_hash_cannot_double_spend() {
    let env = Env::new();
    let s = signer("quinn");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = std::sync::Arc::new(env.spawn());
    let token = app.login(&s.user, &s.password);
    let hashes = vec![digest(SHA256, b"first"), digest(SHA256, b"second")];
    let sad = app.authorize(&token, &s, &cred, &hashes, SHA256);
    let handles: Vec<_> = (0..24)
        .map(|i| {
            let (app, token, sad, cred) = (app.clone(), token.clone(), sad.clone(), cred.clone());
            let h = hashes[i % 2].clone();
            std::thread::spawn(move || {
                app.sign_hash_raw(
                    &token,
                    json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": "1.2.840.10045.4.3.2"}),
                )
            })
        })
        .collect();
    let results: Vec<Resp> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let signed = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(signed, 2, "exactly numSignatures signatures come out");
    for r in results.iter().filter(|r| r.status != 200) {
        r.assert_error(400, "invalid_request");
        no_signature(r);
    }
}
