//! Asynchronous signHash and signDoc (`operationMode: "A"`) and `signatures/signPolling`: the
//! call is answered with a responseID, runs as it would have synchronously, and its answer
//! (success or CSC error) is polled by the same user within its validity period; the
//! signatures are real (verified against the certificate), a refused SAD is refused there too,
//! and a `response_uri` among `--async-callback-origins` is told when the answer is ready.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

const ES256: &str = "1.2.840.10045.4.3.2";

fn poll(app: &TestApp, token: &str, id: &str) -> Resp {
    app.post(
        "/csc/v2/signatures/signPolling",
        Some(token),
        &json!({ "requestID": id }),
    )
}

/// Poll until the call has its answer (bounded: 10 s).
fn answer(app: &TestApp, token: &str, id: &str) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = poll(app, token, id);
        if r.status != 202 {
            return r;
        }
        assert_eq!(r.body["error"], "accepted_request", "{}", r.body);
        assert!(Instant::now() < deadline, "no answer within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A binary literal of the test database's SQL.
fn hex_blob(hex: &str) -> String {
    if test_pg_url().is_some() {
        format!("decode('{hex}', 'hex')")
    } else {
        format!("X'{hex}'")
    }
}

fn accepted(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("signatures").is_none(), "{}", r.body);
    r.body["responseID"].as_str().unwrap().to_string()
}

#[test]
fn sign_hash_async_is_polled_by_its_user_and_verifies() {
    let env = Env::new();
    let s = signer("ada");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let other = signer("ben");
    env.enroll(&other, "ec-p256");
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let info = app.post("/csc/v2/info", None, &json!({})).body;
    assert_eq!(info["asynchronousOperationMode"], true);
    assert!(
        info["methods"]
            .as_array()
            .unwrap()
            .contains(&"signatures/signPolling".into())
    );
    let key = p256_key(&app, &token, &cred);
    let hs: Vec<Vec<u8>> = (0..3)
        .map(|i| digest(SHA256, format!("async {i}").as_bytes()))
        .collect();
    let sad = app.authorize(&token, &s, &cred, &hs, SHA256);
    let body = |hashes: &[Vec<u8>], sad: &str| {
        json!({"credentialID": cred, "SAD": sad, "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
               "signAlgo": ES256, "operationMode": "A", "validity_period": 60000})
    };
    let id = accepted(&app.sign_hash_raw(&token, body(&hs[..2], &sad)));
    let r = answer(&app, &token, &id);
    assert_eq!(r.status, 200, "{}", r.body);
    let sigs = r.body["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2);
    for (h, sig) in hs.iter().zip(sigs) {
        verify_p256(&key, h, sig.as_str().unwrap());
    }
    // Kept: asked again, the same answer.
    assert_eq!(poll(&app, &token, &id).body, r.body);
    // The spend was real: the same hashes again are refused, in the answer of their call.
    let again = accepted(&app.sign_hash_raw(&token, body(&hs[..1], &sad)));
    answer(&app, &token, &again).assert_error(400, "invalid_request");
    // The third hash is still there for a synchronous call.
    let r = app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&hs[2])], "signAlgo": ES256, "operationMode": "S"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    verify_p256(&key, &hs[2], r.body["signatures"][0].as_str().unwrap());
    // A made-up SAD: accepted as a call, refused in its answer.
    let made_up = accepted(&app.sign_hash_raw(&token, body(&hs[..1], "no-such-sad")));
    let r = answer(&app, &token, &made_up);
    r.assert_error(400, "invalid_request");

    // Another user's token, an unknown or missing requestID, a wrong userID: refused.
    let ben = app.login(&other.user, &other.password);
    poll(&app, &ben, &id).assert_error(400, "invalid_request");
    poll(&app, &token, "not-a-request").assert_error(400, "invalid_request");
    app.post("/csc/v2/signatures/signPolling", Some(&token), &json!({}))
        .assert_error(400, "invalid_request");
    // userID is for tokens that name no user; Quill's always name one.
    let r = app.post(
        "/csc/v2/signatures/signPolling",
        Some(&token),
        &json!({"requestID": id, "userID": "someone-else"}),
    );
    assert_eq!(r.body, poll(&app, &token, &id).body);
    poll(&app, "not-a-token", &id).assert_error(401, "invalid_token");
    // The responseID is stored only as its hash.
    let clear =
        format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM sign_jobs WHERE result LIKE '%{id}%'");
    assert_eq!(env.db_i64(&clear), 0);
    assert_eq!(
        env.db_i64("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM sign_jobs"),
        3
    );
    // Every answer is kept sealed for its caller (service::sign_jobs::seal), none in clear.
    assert_eq!(
        env.db_i64(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM sign_jobs \
             WHERE sealed_result IS NOT NULL AND result IS NULL"
        ),
        3
    );
}

#[test]
fn async_fields_are_checked_before_anything_runs() {
    let env = Env::new();
    let s = signer("cy");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"fields");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    let with = |extra: Value| {
        let mut b =
            json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": ES256});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        app.sign_hash_raw(&token, b)
    };
    for (extra, words) in [
        (json!({"operationMode": "X"}), "operationMode"),
        (json!({"operationMode": 1}), "operationMode"),
        (
            json!({"operationMode": "A", "validity_period": 999}),
            "Out of bounds parameter validity_period",
        ),
        (
            json!({"operationMode": "A", "validity_period": 3_600_001}),
            "Out of bounds parameter validity_period",
        ),
        (
            json!({"operationMode": "A", "validity_period": "60000"}),
            "validity_period",
        ),
        (
            json!({"operationMode": "A", "response_uri": "http://127.0.0.1:9/cb"}),
            "response_uri",
        ),
        (json!({"validity_period": 60000}), "validity_period"),
        (
            json!({"operationMode": "S", "response_uri": "http://127.0.0.1:9/cb"}),
            "response_uri",
        ),
    ] {
        let r = with(extra.clone());
        r.assert_error(400, "invalid_request");
        assert!(r.description().contains(words), "{extra}: {}", r.body);
    }
    // The token first: a bad token with async fields is a 401.
    let r = app.sign_hash_raw(
        "not-a-token",
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": ES256, "operationMode": "A"}),
    );
    r.assert_error(401, "invalid_token");
    // Nothing was accepted, nothing spent: the SAD still signs.
    assert_eq!(
        env.db_i64("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM sign_jobs"),
        0
    );
    app.sign_p256_verified(&token, &s, &cred, &digest(SHA256, b"fields 2"));
    let r = with(json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// An accepted call's answer is 202 `accepted_request` while it runs (a job row without an
/// answer, as the accepting instance leaves it until the signing is done), and the call is gone
/// once its validity period is over.
#[test]
fn a_running_call_is_accepted_request_and_an_expired_one_is_gone() {
    let env = Env::new();
    let s = signer("dee");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let users = env.db_i64("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM users WHERE name = 'dee'");
    assert_eq!(users, 1);
    // The SHA-256 of "running-call", as Quill stores a responseID.
    let blob = hex_blob(&hex::encode(digest(SHA256, b"running-call")));
    env.db_execute(&format!(
        "INSERT INTO sign_jobs (id_hash, user_id, status, result, expires_at, created_at) \
         SELECT {blob}, id, NULL, NULL, 4102444800, 0 FROM users WHERE name = 'dee'"
    ));
    let r = poll(&app, &token, "running-call");
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["error"], "accepted_request");
    // An answer an older version wrote in clear is still given; one whose sealed bytes were
    // changed is not (a fault of the row: 500, and nothing of it).
    let row = |id: &[u8], result: &str, sealed: &str| {
        env.db_execute(&format!(
            "INSERT INTO sign_jobs (id_hash, user_id, status, result, sealed_result, expires_at, \
             created_at) SELECT {}, id, 200, {result}, {sealed}, 4102444800, 0 FROM users \
             WHERE name = 'dee'",
            hex_blob(&hex::encode(digest(SHA256, id)))
        ));
    };
    row(
        b"answered-in-clear",
        "'{\"signatures\":[\"bGVnYWN5\"]}'",
        "NULL",
    );
    let r = poll(&app, &token, "answered-in-clear");
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"signatures": ["bGVnYWN5"]}))
    );
    row(b"bent", "NULL", &hex_blob(&"ab".repeat(40)));
    let r = poll(&app, &token, "bent");
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.get("signatures").is_none(), "{}", r.body);

    let h = digest(SHA256, b"short-lived");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    let id = accepted(&app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": ES256,
               "operationMode": "A", "validity_period": 1000}),
    ));
    // Kept at least validity_period from when the answer exists, then gone.
    assert_eq!(answer(&app, &token, &id).status, 200);
    std::thread::sleep(Duration::from_millis(950));
    assert_eq!(poll(&app, &token, &id).status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    poll(&app, &token, &id).assert_error(400, "invalid_request");
}

/// SIGTERM while an accepted call runs: the server finishes the call (its SAD is spent) before
/// it exits, and the answer is there for polling after a restart.
#[test]
fn a_stopping_server_finishes_its_asynchronous_calls() {
    let env = Env::new();
    let s = signer("gil");
    let cred = env
        .try_enroll_signer(&s, "rsa-3072", &["--multisign", "200"])
        .unwrap()
        .credential_id;
    let mut app = env.spawn();
    let token = app.login(&s.user, &s.password);
    // 200 RSA-3072 signatures: far longer than a stop without calls in flight takes.
    let hashes: Vec<Vec<u8>> = (0..200u32)
        .map(|i| digest(SHA256, &i.to_be_bytes()))
        .collect();
    let sad = app.authorize(&token, &s, &cred, &hashes, SHA256);
    let (ee, _) = chain(&app.credential_info(&token, &cred));
    // On a connection closed after the answer: nothing is in flight when the signal comes.
    let body = json!({"credentialID": cred, "SAD": sad, "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
               "hashAlgorithmOID": SHA256, "signAlgo": "1.2.840.113549.1.1.11", "operationMode": "A"});
    let req = app
        .client
        .post(format!("{}/csc/v2/signatures/signHash", app.base))
        .bearer_auth(&token)
        .header("Connection", "close");
    let id = accepted(&send_checked(
        "/csc/v2/signatures/signHash",
        req,
        &body.to_string(),
    ));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &app.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = app
        .wait_exit(Duration::from_secs(40))
        .expect("the server exits");
    assert!(exit.success(), "{exit:?}");
    assert!(
        env.server_log()
            .contains("waiting for asynchronous signing calls"),
        "{}",
        env.server_log()
    );
    let app = env.spawn_named("restarted", &[]);
    let r = poll(&app, &token, &id);
    assert_eq!(r.status, 200, "{}", r.body);
    let sigs = r.body["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 200);
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_der(&spki_der(&ee)).unwrap();
    for i in [0, 199] {
        key.verify(
            rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            &hashes[i],
            &unb64(sigs[i].as_str().unwrap()),
        )
        .unwrap();
    }
}

/// An OAuth credential token's asynchronous call: it polls that call (and the user's service
/// tokens may), but no other call of its user.
#[test]
fn a_credential_token_polls_only_its_own_calls() {
    use crate::oauth::*;
    let env = Env::new();
    let s = signer("hal");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let other = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let client = add_client(&env, &[]);
    let service = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"credential token, async");
    let (f, verifier) = credential_page(&app, &client, &cred, std::slice::from_ref(&h), &[]);
    let t = approve_and_exchange(&app, &client, &f, &s, &s.next_otp(&cred), &verifier);
    let ctoken = t["access_token"].as_str().unwrap();
    let mine = accepted(&app.sign_hash_raw(
        ctoken,
        json!({"credentialID": cred, "hashes": [b64(&h)], "signAlgo": ES256, "operationMode": "A"}),
    ));
    let r = answer(&app, ctoken, &mine);
    assert_eq!(r.status, 200, "{}", r.body);
    verify_p256(
        &p256_key(&app, &service, &cred),
        &h,
        r.body["signatures"][0].as_str().unwrap(),
    );
    assert_eq!(poll(&app, &service, &mine).body, r.body);
    // The user's call with a service token, on another credential: not the credential token's.
    let h2 = digest(SHA256, b"service token, async");
    let sad = app.authorize(&service, &s, &other, std::slice::from_ref(&h2), SHA256);
    let theirs = accepted(&app.sign_hash_raw(
        &service,
        json!({"credentialID": other, "SAD": sad, "hashes": [b64(&h2)], "signAlgo": ES256, "operationMode": "A"}),
    ));
    assert_eq!(answer(&app, &service, &theirs).status, 200);
    poll(&app, ctoken, &theirs).assert_error(400, "invalid_request");
}

/// A `response_uri` among `--async-callback-origins` gets `{"responseID"}` once the answer is
/// ready (and nothing else: the signatures are only given to signPolling).
#[test]
fn response_uri_is_told_when_the_answer_is_ready() {
    let env = Env::new();
    let s = signer("eve");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = env.spawn_with(&["--async-callback-origins", &origin]);
    let token = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"callback");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    let catcher = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        (request_line, String::from_utf8(body).unwrap())
    });
    let id = accepted(&app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": ES256,
               "operationMode": "A", "response_uri": format!("{origin}/csc-done?x=1")}),
    ));
    let (request_line, body) = catcher.join().unwrap();
    assert!(
        request_line.starts_with("POST /csc-done?x=1 "),
        "{request_line}"
    );
    let told: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(told, json!({ "responseID": id }));
    let r = poll(&app, &token, &id);
    assert_eq!(
        r.status, 200,
        "the answer is ready when the callback comes: {}",
        r.body
    );
    verify_p256(
        &p256_key(&app, &token, &cred),
        &h,
        r.body["signatures"][0].as_str().unwrap(),
    );
}

#[test]
fn sign_doc_async_answers_as_the_synchronous_call() {
    let env = Env::new();
    let s = signer("fay");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let (cert, _) = chain(&app.credential_info(&token, &cred));
    let d = digest(SHA256, b"an asynchronous CAdES");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&d), SHA256);
    let request = |sad: &str, mode: &str| {
        app.post(
            "/csc/v2/signatures/signDoc",
            Some(&token),
            &json!({"credentialID": cred, "SAD": sad, "operationMode": mode,
                    "documentDigests": [{"hashes": [b64(&d)], "hashAlgorithmOID": SHA256,
                        "signature_format": "C", "signAlgo": ES256,
                        "signed_envelope_property": "Detached"}]}),
        )
    };
    // A malformed request is refused at once, not accepted.
    app.post(
        "/csc/v2/signatures/signDoc",
        Some(&token),
        &json!({"credentialID": cred, "SAD": sad, "operationMode": "A", "documentDigests": []}),
    )
    .assert_error(400, "invalid_request");
    let id = accepted(&request(&sad, "A"));
    let r = answer(&app, &token, &id);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["DocumentWithSignature"], json!([]));
    let cms = unb64(r.body["SignatureObject"][0].as_str().unwrap());
    let sd = crate::sign_doc::signed_data(&cms);
    crate::sign_doc::check_with_rustcrypto(&sd, "ecdsa", &spki_der(&cert), &d, 0);
    // Spent: the synchronous call with the same SAD is refused, and so is the answer of an
    // asynchronous one, with the same error.
    let sync = request(&sad, "S");
    assert!(sync.status >= 400, "{}", sync.body);
    let again = answer(&app, &token, &accepted(&request(&sad, "A")));
    assert_eq!((again.status, &again.body), (sync.status, &sync.body));
}

/// A body the synchronous call refuses whatever its credential and SAD (bad types, OIDs,
/// base64, digest lengths, duplicates, unsupported formats) is refused at once in the
/// asynchronous mode too, with the synchronous call's answer: nothing is accepted to fail later.
#[test]
fn a_malformed_asynchronous_call_is_refused_as_the_synchronous_one() {
    let env = Env::new();
    let s = signer("hal");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"malformed");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
    // Both answers of one body: synchronous ("S") and asynchronous ("A").
    let both = |path: &str, body: &Value| {
        let mut answers = ["S", "A"].map(|mode| {
            let mut b = body.clone();
            b["operationMode"] = mode.into();
            app.post(path, Some(&token), &b)
        });
        let [sync, r#async] = &mut answers;
        assert_eq!(sync.status, 400, "{body}: {}", sync.body);
        assert_eq!(
            (r#async.status, &r#async.body),
            (sync.status, &sync.body),
            "{body}"
        );
    };
    let base = json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&h)], "signAlgo": ES256});
    let hash_bodies: Vec<Value> = vec![
        json!({"hashes": -2.741086609446957e16}),
        json!({"hashes": []}),
        json!({"hashes": ["%%%%"]}),
        json!({"hashes": [b64(&[1, 2, 3])]}),
        json!({"hashes": [b64(&h), b64(&h)]}),
        json!({"hash": [b64(&h)]}),
        json!({"signAlgo": "1.0.0.85038"}),
        json!({"hashAlgorithmOID": "0.38267*"}),
        json!({"hashAlgorithmOID": SHA384}),
        json!({"hashAlgorithmOID": SHA256, "hashAlgo": SHA256}),
        json!({"signAlgoParams": "\u{7f}not base64"}),
        json!({"signAlgoParams": b64(&[0x30, 0x00])}),
        json!({"credentialID": ""}),
        json!({"credentialID": "x".repeat(257)}),
        json!({"SAD": null}),
        json!({"SAD": ""}),
    ];
    for extra in hash_bodies {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        both("/csc/v2/signatures/signHash", &b);
    }
    let item = json!({"hashes": [b64(&h)], "hashAlgorithmOID": SHA256,
                      "signature_format": "C", "signAlgo": ES256});
    let doc_bodies: Vec<Value> = vec![
        json!({"hashAlgorithmOID": "0.38267*"}),
        json!({"signAlgo": "1.0.0.85038"}),
        json!({"signature_format": "X"}),
        json!({"signed_props": [{}]}),
        json!({"conformance_level": "Ades-B-LTA"}),
        json!({"signed_envelope_property": "Attached"}),
        json!({"hashes": ["%%%%"]}),
        json!({"hashes": [b64(&[1, 2, 3])]}),
        json!({"hashAlgorithmOID": SHA384}),
    ];
    let doc = |items: Value| json!({"credentialID": cred, "SAD": sad, "documentDigests": items});
    for extra in doc_bodies {
        let mut it = item.clone();
        for (k, v) in extra.as_object().unwrap() {
            it[k] = v.clone();
        }
        both("/csc/v2/signatures/signDoc", &doc(json!([it])));
    }
    // Across entries: the same digest twice.
    both(
        "/csc/v2/signatures/signDoc",
        &doc(json!([item.clone(), item.clone()])),
    );
    both(
        "/csc/v2/signatures/signDoc",
        &json!({"credentialID": cred, "SAD": sad, "documents": [{"document": "not base64!",
                "signature_format": "C", "signAlgo": ES256}]}),
    );
    both(
        "/csc/v2/signatures/signDoc",
        &json!({"SAD": sad, "documentDigests": [item.clone()]}),
    );
    for sad in [json!(null), json!("")] {
        let mut b = json!({"credentialID": cred, "documentDigests": [item.clone()]});
        if !sad.is_null() {
            b["SAD"] = sad;
        }
        both("/csc/v2/signatures/signDoc", &b);
    }
    assert_eq!(
        env.db_i64("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM sign_jobs"),
        0
    );
    // Nothing was spent: the SAD still signs, asynchronously.
    let id = accepted(&app.sign_hash_raw(&token, {
        let mut b = base.clone();
        b["operationMode"] = "A".into();
        b
    }));
    assert_eq!(answer(&app, &token, &id).status, 200);
}
