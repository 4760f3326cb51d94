//! `credentials/extendTransaction`: a live SAD is traded for a new one within the same budget;
//! the old one dies.

use serde_json::json;

use crate::helpers::*;

#[test]
fn extend_transaction_keeps_the_budget_and_kills_the_old_sad() {
    let env = Env::new();
    let s = signer("liam");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let (h1, h2, h3) = (
        digest(SHA256, b"1"),
        digest(SHA256, b"2"),
        digest(SHA256, b"3"),
    );
    let sad = app.authorize(&token, &s, &cred, &[h1.clone(), h2.clone()], SHA256);
    let sign = |sad: &str, h: &[u8]| {
        app.sign_hash_raw(
            &token,
            json!({"credentialID": cred, "SAD": sad, "hashes": [b64(h)], "signAlgo": "1.2.840.10045.4.3.2"}),
        )
    };
    assert_eq!(sign(&sad, &h1).status, 200);

    // extend without new hashes: the unused digest carries over
    let ext = |body: serde_json::Value| {
        app.post("/csc/v2/credentials/extendTransaction", Some(&token), &body)
    };
    let r = ext(json!({"credentialID": cred, "SAD": sad}));
    assert_eq!(r.status, 200, "{}", r.body);
    let sad2 = r.body["SAD"].as_str().unwrap().to_string();
    assert!(r.body["expiresIn"].as_i64().unwrap() > 0);
    assert_ne!(sad2, sad);
    assert_eq!(
        sign(&sad, &h2).description(),
        "Invalid parameter SAD: not enough signatures left"
    );
    assert_eq!(
        sign(&sad2, &h1).status,
        400,
        "an already signed digest does not come back"
    );

    // rebind to a new digest: allowed within the one signature left, not beyond
    let r = ext(
        json!({"credentialID": cred, "SAD": sad2, "hashes": [b64(&h3), b64(&h1)], "hashAlgorithmOID": SHA256}),
    );
    r.assert_error(400, "invalid_request");
    let r = ext(
        json!({"credentialID": cred, "SAD": sad2, "hashes": [b64(&h3)], "hashAlgorithmOID": SHA256}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sad3 = r.body["SAD"].as_str().unwrap().to_string();
    assert_eq!(
        sign(&sad3, &h2).description(),
        "Hash is not authorized by the SAD"
    );
    assert_eq!(sign(&sad3, &h3).status, 200);
    // spent: nothing left to extend
    ext(json!({"credentialID": cred, "SAD": sad3})).assert_error(400, "invalid_request");

    // errors
    ext(json!({"credentialID": cred})).assert_error(400, "invalid_request");
    ext(json!({"credentialID": cred, "SAD": "made-up"})).assert_error(400, "invalid_request");
    ext(json!({"credentialID": "other", "SAD": sad2})).assert_error(400, "invalid_request");
    ext(json!({"credentialID": cred, "SAD": sad2, "hashes": [b64(&h3)]}))
        .assert_error(400, "invalid_request");
    app.post("/csc/v2/credentials/extendTransaction", None, &json!({}))
        .assert_error(401, "invalid_token");
}

/// Binding new hashes does not bring back one already signed under the authorization, however
/// many extensions lie between (one PIN + OTP signed the same digest twice before), nor switch
/// the digest algorithm the signer authorized.
#[test]
fn an_extension_never_signs_a_digest_twice() {
    let env = Env::new();
    let s = signer("mira");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let hs: Vec<Vec<u8>> = (0..3u8).map(|i| digest(SHA256, &[i])).collect();
    let sad = app.authorize(&token, &s, &cred, &hs, SHA256);
    let sign = |sad: &str, h: &[u8]| {
        app.sign_hash_raw(
            &token,
            json!({"credentialID": cred, "SAD": sad, "hashes": [b64(h)], "signAlgo": "1.2.840.10045.4.3.2"}),
        )
    };
    let ext = |body: serde_json::Value| {
        app.post("/csc/v2/credentials/extendTransaction", Some(&token), &body)
    };
    assert_eq!(sign(&sad, &hs[0]).status, 200);
    // rebinding the signed digest itself: refused, and the SAD lives on
    let r = ext(
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&hs[0])],
        "hashAlgorithmOID": SHA256}),
    );
    r.assert_error(400, "invalid_request");
    assert!(r.description().contains("already signed"), "{}", r.body);
    // through a plain extension first: the history goes along
    let sad2 = ext(json!({"credentialID": cred, "SAD": sad})).body["SAD"]
        .as_str()
        .unwrap()
        .to_string();
    let r = ext(
        json!({"credentialID": cred, "SAD": sad2, "hashes": [b64(&hs[0])],
        "hashAlgorithmOID": SHA256}),
    );
    assert!(r.description().contains("already signed"), "{}", r.body);
    // another digest algorithm than the one authorized: refused
    let other = digest(SHA384, b"x");
    let r = ext(
        json!({"credentialID": cred, "SAD": sad2, "hashes": [b64(&other)],
        "hashAlgorithmOID": SHA384}),
    );
    r.assert_error(400, "invalid_request");
    assert!(
        r.description().contains("another digest algorithm"),
        "{}",
        r.body
    );
    // a new digest in its place signs; the signed one still does not
    let fresh = digest(SHA256, b"fresh");
    let r = ext(
        json!({"credentialID": cred, "SAD": sad2, "hashes": [b64(&fresh)],
        "hashAlgorithmOID": SHA256}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sad3 = r.body["SAD"].as_str().unwrap().to_string();
    assert_eq!(sign(&sad3, &hs[0]).status, 400);
    assert_eq!(sign(&sad3, &fresh).status, 200);
}
