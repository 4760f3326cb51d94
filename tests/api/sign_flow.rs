//! login → list → info → authorize → signHash for every key type and every signAlgo, each
//! signature verified with RustCrypto against the credential's certificate.

use der::Encode;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::pkcs8::DecodePublicKey;
use serde_json::{Value, json};

use crate::helpers::*;

/// One signing case: signAlgo, hashAlgorithmOID sent (if any), digest algorithm, PSS salt.
struct Case {
    sign_algo: &'static str,
    hash_oid_sent: Option<&'static str>,
    digest: &'static str,
    pss_salt: Option<usize>,
}

const fn c(
    sign_algo: &'static str,
    sent: Option<&'static str>,
    digest: &'static str,
    salt: Option<usize>,
) -> Case {
    Case {
        sign_algo,
        hash_oid_sent: sent,
        digest,
        pss_salt: salt,
    }
}

fn rsa_cases(modulus_bytes: usize) -> Vec<Case> {
    let max_salt_256: usize = modulus_bytes - 32 - 2;
    vec![
        c("1.2.840.113549.1.1.11", None, SHA256, None),
        c("1.2.840.113549.1.1.12", None, SHA384, None),
        c("1.2.840.113549.1.1.13", None, SHA512, None),
        c("1.2.840.113549.1.1.11", Some(SHA256), SHA256, None),
        c("1.2.840.113549.1.1.1", Some(SHA256), SHA256, None),
        c("1.2.840.113549.1.1.1", Some(SHA384), SHA384, None),
        c("1.2.840.113549.1.1.1", Some(SHA512), SHA512, None),
        c("1.2.840.113549.1.1.10", None, SHA256, Some(32)),
        c(
            "1.2.840.113549.1.1.10",
            Some(SHA256),
            SHA256,
            Some(max_salt_256.min(255)),
        ),
        c("1.2.840.113549.1.1.10", None, SHA384, Some(48)),
        c("1.2.840.113549.1.1.10", None, SHA512, Some(64)),
    ]
}

fn ec_cases() -> Vec<Case> {
    vec![
        c("1.2.840.10045.4.3.2", None, SHA256, None),
        c("1.2.840.10045.4.3.3", None, SHA384, None),
        c("1.2.840.10045.4.3.4", None, SHA512, None),
        c("1.2.840.10045.4.3.2", Some(SHA256), SHA256, None),
    ]
}

/// DER RSASSA-PSS-params built with the `pkcs1` crate (independent of Quill's parser).
fn pss_params(digest: &str, salt: usize) -> Vec<u8> {
    let salt = u8::try_from(salt).unwrap();
    let p = match digest {
        SHA256 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha256>(salt),
        SHA384 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha384>(salt),
        SHA512 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha512>(salt),
        _ => unreachable!(),
    };
    p.to_der().unwrap()
}

/// Verify one signature value against the end-entity certificate's key.
fn verify(key: &str, spki: &[u8], case: &Case, digest: &[u8], sig: &[u8]) {
    match key {
        "rsa-2048" | "rsa-3072" => {
            let pk = rsa::RsaPublicKey::from_public_key_der(spki).unwrap();
            assert_eq!(sig.len(), rsa::traits::PublicKeyParts::size(&pk));
            let result = match (case.pss_salt, case.digest) {
                (None, SHA256) => pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, sig),
                (None, SHA384) => pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), digest, sig),
                (None, SHA512) => pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), digest, sig),
                (Some(s), SHA256) => {
                    pk.verify(rsa::Pss::new_with_salt::<sha2::Sha256>(s), digest, sig)
                }
                (Some(s), SHA384) => {
                    pk.verify(rsa::Pss::new_with_salt::<sha2::Sha384>(s), digest, sig)
                }
                (Some(s), SHA512) => {
                    pk.verify(rsa::Pss::new_with_salt::<sha2::Sha512>(s), digest, sig)
                }
                _ => unreachable!(),
            };
            result.unwrap_or_else(|e| panic!("{} {}: {e}", case.sign_algo, case.digest));
        }
        "ec-p256" => {
            let vk = p256::ecdsa::VerifyingKey::from_public_key_der(spki).unwrap();
            let s = p256::ecdsa::Signature::from_der(sig).expect("DER Ecdsa-Sig-Value");
            vk.verify_prehash(digest, &s).unwrap();
        }
        "ec-p384" => {
            let vk = p384::ecdsa::VerifyingKey::from_public_key_der(spki).unwrap();
            let s = p384::ecdsa::Signature::from_der(sig).expect("DER Ecdsa-Sig-Value");
            vk.verify_prehash(digest, &s).unwrap();
        }
        _ => unreachable!(),
    }
}

/// Every case of `key`, each signHash with two hashes; `extra` goes to `quill serve`.
fn walk(key: &str, extra: &[&str]) -> TestApp {
    let env = Env::new();
    let s = signer("alice");
    let enrolled = env.enroll(&s, key);
    let app = env.spawn_with(extra);
    let token = app.login(&s.user, &s.password);

    // list
    let list = app.post(
        "/csc/v2/credentials/list",
        Some(&token),
        &json!({"credentialInfo": true, "certificates": "chain", "certInfo": true, "authInfo": true}),
    );
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["credentialIDs"], json!([enrolled.credential_id]));
    let listed = &list.body["credentialInfos"][0];
    assert_eq!(listed["credentialID"], enrolled.credential_id);
    assert_eq!(listed["auth"]["mode"], "explicit");

    // info
    let info = app.credential_info(&token, &enrolled.credential_id);
    assert_eq!(info["SCAL"], "2");
    assert_eq!(info["key"]["status"], "enabled");
    assert_eq!(info["cert"]["status"], "valid");
    assert!(info["multisign"].as_i64().unwrap() >= 2);
    let algos: Vec<&str> = info["key"]["algo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ids: Vec<&str> = info["auth"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["PIN", "OTP"]);
    let (ee, ca) = chain(&info);
    assert_issued_by(&ee, &ca);
    assert!(
        info["cert"]["subjectDN"]
            .as_str()
            .unwrap()
            .contains("CN=alice")
    );
    assert!(info["cert"]["validTo"].as_str().unwrap().ends_with('Z'));
    let spki = spki_der(&ee);

    let (len, curve, cases) = match key {
        "rsa-2048" => (2048, None, rsa_cases(256)),
        "rsa-3072" => (3072, None, rsa_cases(384)),
        "ec-p256" => (256, Some("1.2.840.10045.3.1.7"), ec_cases()),
        "ec-p384" => (384, Some("1.3.132.0.34"), ec_cases()),
        _ => unreachable!(),
    };
    assert_eq!(info["key"]["len"], len);
    assert_eq!(info["key"]["curve"].as_str(), curve);

    // One SAD per digest algorithm covering every case's hashes (a TOTP code is single-use,
    // so a signer authorizes a batch, as pyHanko's clients do), then one signHash per case.
    let hashes_of = |i: usize, case: &Case| -> Vec<Vec<u8>> {
        (0..2)
            .map(|j| digest(case.digest, format!("{key} case {i} doc {j}").as_bytes()))
            .collect()
    };
    let mut sads = std::collections::HashMap::new();
    for alg in [SHA256, SHA384, SHA512] {
        let all: Vec<Vec<u8>> = cases
            .iter()
            .enumerate()
            .filter(|(_, c)| c.digest == alg)
            .flat_map(|(i, c)| hashes_of(i, c))
            .collect();
        sads.insert(
            alg,
            app.authorize(&token, &s, &enrolled.credential_id, &all, alg),
        );
    }
    for (i, case) in cases.iter().enumerate() {
        assert!(
            algos.contains(&case.sign_algo),
            "key.algo lists {}",
            case.sign_algo
        );
        let hashes = hashes_of(i, case);
        let mut body = json!({
            "credentialID": enrolled.credential_id,
            "SAD": sads[case.digest],
            "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            "signAlgo": case.sign_algo,
        });
        if let Some(h) = case.hash_oid_sent {
            body["hashAlgorithmOID"] = json!(h);
        }
        if let Some(salt) = case.pss_salt {
            body["signAlgoParams"] = json!(b64(&pss_params(case.digest, salt)));
        }
        let r = app.sign_hash_raw(&token, body);
        assert_eq!(
            r.status, 200,
            "{} {}: {}",
            case.sign_algo, case.digest, r.body
        );
        let sigs = r.body["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), 2);
        for (h, sig) in hashes.iter().zip(sigs) {
            verify(key, &spki, case, h, &unb64(sig.as_str().unwrap()));
        }
    }
    app
}

/// signHash calls counted by `quill_sign_hash_calls_total{thread}`.
fn sign_hash_calls(app: &TestApp, thread: &str) -> u64 {
    let text = app.get("/metrics").text().unwrap();
    let prefix = format!("quill_sign_hash_calls_total{{thread=\"{thread}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn rsa_2048_every_sign_algo_verifies() {
    let app = walk("rsa-2048", &[]);
    assert!(sign_hash_calls(&app, "pool") > 0);
    assert_eq!(sign_hash_calls(&app, "worker"), 0);
}

/// `--sign-on-worker` on SQLite; nothing on PostgreSQL, where it is refused (tested below) —
/// and the thread the calls are expected on.
fn on_worker() -> (&'static [&'static str], &'static str) {
    if test_pg_url().is_some() {
        (&[], "pool")
    } else {
        (&["--sign-on-worker"], "worker")
    }
}

/// Under `--sign-on-worker` small calls sign on the HTTP worker thread, with the same results:
/// the first call (its key's cost not learned yet, a small body) signs there; the later ones
/// too unless a loaded machine made the learned cost exceed the budget (then the pool, which
/// the budget's own test covers).
fn walk_on_worker(key: &str, cases: usize) {
    let (flags, thread) = on_worker();
    let app = walk(key, flags);
    let (here, pool) = (sign_hash_calls(&app, thread), sign_hash_calls(&app, "pool"));
    assert!(here >= 1, "no call on the {thread}");
    let total = if thread == "pool" { here } else { here + pool };
    assert_eq!(total, cases as u64);
}

#[test]
fn rsa_3072_every_sign_algo_verifies_on_the_worker() {
    walk_on_worker("rsa-3072", rsa_cases(384).len());
}

#[test]
fn ec_p256_every_sign_algo_verifies_on_the_worker() {
    walk_on_worker("ec-p256", ec_cases().len());
}

#[test]
fn ec_p384_every_sign_algo_verifies() {
    walk("ec-p384", &[]);
}

/// Under `--sign-on-worker` a call signs on the worker while its key's learned cost per
/// signature times its hashes fits the budget (20 ms); a key whose cost is not known yet signs
/// there only with a small body (≤ 2 KiB). The rest goes to the blocking pool, with the same
/// results, and an error answered on the worker is the same CSC error. PostgreSQL refuses the
/// flag.
#[test]
fn sign_on_worker_keeps_a_call_on_the_worker_while_its_signing_fits_the_budget() {
    let env = Env::new();
    if test_pg_url().is_some() {
        let out = env
            .quill()
            .args(["serve", "--listen", "127.0.0.1:0", "--sign-on-worker"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--sign-on-worker is for SQLite"),
            "{stderr}"
        );
        return;
    }
    let s = signer("bob");
    let p256 = env.enroll(&s, "ec-p256").credential_id;
    let rsa3072 = env.enroll(&s, "rsa-3072").credential_id;
    let rsa2048 = env.enroll(&s, "rsa-2048").credential_id;
    let app = env.spawn_with(&["--sign-on-worker"]);
    let token = app.login(&s.user, &s.password);
    let hashes: Vec<Vec<u8>> = (0..60)
        .map(|i| digest(SHA256, format!("doc {i}").as_bytes()))
        .collect();
    let sign = |cred: &str, sad: &str, hashes: &[Vec<u8>], sign_algo: &str| {
        let r = app.sign_hash_raw(
            &token,
            json!({
                "credentialID": cred,
                "SAD": sad,
                "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
                "hashAlgorithmOID": SHA256,
                "signAlgo": sign_algo,
            }),
        );
        if r.status == 200 {
            assert_eq!(r.body["signatures"].as_array().unwrap().len(), hashes.len());
        }
        r
    };
    let counts = || {
        (
            sign_hash_calls(&app, "worker"),
            sign_hash_calls(&app, "pool"),
        )
    };
    let ecdsa = "1.2.840.10045.4.3.2";
    let rsa = "1.2.840.113549.1.1.11";

    // P-256: a small call of ten hashes (under 2 KiB) teaches the cost, about 0.1 ms a
    // signature (ten of them, so that one preempted signature on a busy machine does not make
    // the estimate); then 20 hashes fit the budget (they would at up to 1 ms a signature).
    let sad = app.authorize(&token, &s, &p256, &hashes[..30], SHA256);
    assert_eq!(sign(&p256, &sad, &hashes[..10], ecdsa).status, 200);
    sign(&p256, &sad, &hashes[..1], ecdsa).assert_error(400, "invalid_request");
    assert_eq!(sign(&p256, &sad, &hashes[10..30], ecdsa).status, 200);
    assert_eq!(counts(), (3, 0));
    // RSA-3072: a small call on the worker, then 30 signatures of some milliseconds each do not
    // fit and go to the pool.
    let sad = app.authorize(&token, &s, &rsa3072, &hashes[..31], SHA256);
    assert_eq!(sign(&rsa3072, &sad, &hashes[..1], rsa).status, 200);
    assert_eq!(counts(), (4, 0));
    assert_eq!(sign(&rsa3072, &sad, &hashes[1..31], rsa).status, 200);
    assert_eq!(counts(), (4, 1));
    // RSA-2048, cost not known yet: a large first call (over 2 KiB) goes to the pool.
    let sad = app.authorize(&token, &s, &rsa2048, &hashes, SHA256);
    assert_eq!(sign(&rsa2048, &sad, &hashes, rsa).status, 200);
    assert_eq!(counts(), (4, 2));
}

/// pyHanko's wire format: v1 paths and names (`hash`, `hashAlgo`, top-level `PIN`/`OTP`, no
/// hashAlgorithmOID on authorize), and a maximum-length PSS salt.
#[test]
fn v1_names_and_paths_as_pyhanko_sends_them() {
    let env = Env::new();
    let s = signer("bob");
    let rsa = env.enroll(&s, "rsa-2048");
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);

    let info = app.post(
        "/csc/v1/credentials/info",
        Some(&token),
        &json!({"credentialID": rsa.credential_id, "certificates": "chain", "certInfo": false}),
    );
    assert_eq!(info.status, 200);
    assert!(info.body["key"]["algo"].is_array());
    let (ee, _) = chain(&info.body);

    let h = digest(SHA256, b"a PDF's signed attributes");
    let auth = app.post(
        "/csc/v1/credentials/authorize",
        Some(&token),
        &json!({"credentialID": rsa.credential_id, "numSignatures": 1, "hash": [b64(&h)],
                "PIN": s.pin, "OTP": s.next_otp(&rsa.credential_id), "description": "pyHanko"}),
    );
    assert_eq!(auth.status, 200, "{}", auth.body);
    let sad = auth.body["SAD"].as_str().unwrap();
    // PSS with an MGF1 hash other than the message hash (SHA-256, MGF1-SHA-512, salt 32): a
    // 400 before anything is spent, not a token error after (SoftHSM2 refuses the mechanism).
    let mixed = "MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgMFAKIDAgEg";
    let r = app.post(
        "/csc/v1/signatures/signHash",
        Some(&token),
        &json!({"credentialID": rsa.credential_id, "SAD": sad, "hashAlgo": SHA256,
                "signAlgo": "1.2.840.113549.1.1.10", "signAlgoParams": mixed, "hash": [b64(&h)]}),
    );
    r.assert_error(400, "invalid_request");
    assert!(r.description().contains("signAlgoParams"), "{}", r.body);
    let spent = "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log \
                 WHERE action IN ('sad_spent', 'token_error')";
    assert_eq!(env.db_i64(spent), 0);
    // pyHanko's optimal PSS salt for RSA-2048/SHA-256 is 256 - 32 - 2 = 222.
    let params = pss_params(SHA256, 222);
    let r = app.post(
        "/csc/v1/signatures/signHash",
        Some(&token),
        &json!({"credentialID": rsa.credential_id, "SAD": sad, "hashAlgo": SHA256,
                "signAlgo": "1.2.840.113549.1.1.10", "signAlgoParams": b64(&params), "hash": [b64(&h)]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sig = unb64(r.body["signatures"][0].as_str().unwrap());
    verify(
        "rsa-2048",
        &spki_der(&ee),
        &c("1.2.840.113549.1.1.10", None, SHA256, Some(222)),
        &h,
        &sig,
    );
}

/// The values clients get are plain standard base64 and the chain is end-entity first.
#[test]
fn list_variants_and_info_shapes() {
    let env = Env::new();
    let s = signer("carol");
    let a = env.enroll(&s, "ec-p256");
    let b = env.enroll(&s, "ec-p384");
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);

    let ids = app.post("/csc/v2/credentials/list", Some(&token), &json!({}));
    let mut listed: Vec<&str> = ids.body["credentialIDs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    listed.sort_unstable();
    let mut expected = vec![a.credential_id.as_str(), b.credential_id.as_str()];
    expected.sort_unstable();
    assert_eq!(listed, expected, "CSC does not define an order");
    assert!(ids.body.get("credentialInfos").is_none());

    for (certs, n) in [("none", None), ("single", Some(1)), ("chain", Some(2))] {
        let r = app.post(
            "/csc/v2/credentials/list",
            Some(&token),
            &json!({"credentialInfo": true, "certificates": certs, "onlyValid": true}),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body["onlyValid"], true);
        let infos = r.body["credentialInfos"].as_array().unwrap();
        assert_eq!(infos.len(), 2);
        for info in infos {
            let got = info["cert"]
                .get("certificates")
                .map(|c| c.as_array().unwrap().len());
            assert_eq!(got, n, "certificates={certs}");
            assert!(
                info["cert"].get("subjectDN").is_none(),
                "certInfo defaults to false"
            );
            assert!(info.get("auth").is_none(), "authInfo defaults to false");
        }
    }
    let info: Value = app.credential_info(&token, &b.credential_id);
    assert!(
        info["cert"]["issuerDN"]
            .as_str()
            .unwrap()
            .contains("CN=Quill Development CA")
    );
    assert_eq!(
        info["key"]["algo"],
        json!([
            "1.2.840.10045.4.3.2",
            "1.2.840.10045.4.3.3",
            "1.2.840.10045.4.3.4"
        ])
    );
    assert!(
        info["cert"]["serialNumber"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_hexdigit())
    );
    assert_eq!(info["OTP"]["type"], "offline");
}
