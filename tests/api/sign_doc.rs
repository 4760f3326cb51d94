//! `signatures/signDoc` (CAdES) and `signatures/timestamp` / `POST /tsa` (RFC 3161) through the
//! real server: every CMS is accepted by `openssl cms -verify` (and every time-stamp token by
//! `openssl ts -verify`) against the development CA, and re-checked with RustCrypto; a digest
//! outside the SAD, or a SAD spent twice, gives the CSC error and no signature.

use std::path::Path;
use std::process::Command;

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::pkcs8::DecodePublicKey;
use serde_json::{Value, json};

use crate::helpers::*;

const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const RSA_PSS: &str = "1.2.840.113549.1.1.10";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const ID_SIGNATURE_TIME_STAMP: &str = "1.2.840.113549.1.9.16.2.14";

/// Run openssl; panics with its output unless it succeeds. Returns stdout.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn pem(der: &[u8]) -> String {
    let b = b64(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

pub(crate) fn signed_data(der: &[u8]) -> SignedData {
    let ci = ContentInfo::from_der(der).unwrap();
    assert_eq!(ci.content_type.to_string(), "1.2.840.113549.1.7.2");
    ci.content.decode_as::<SignedData>().unwrap()
}

/// RustCrypto: the message-digest attribute is `digest`, and the signature over the DER signed
/// attributes verifies with the certificate's key.
pub(crate) fn check_with_rustcrypto(
    sd: &SignedData,
    key: &str,
    spki: &[u8],
    doc_digest: &[u8],
    pss_salt: usize,
) {
    let si = sd.signer_infos.0.get(0).unwrap();
    let attrs = si.signed_attrs.as_ref().unwrap();
    let md = attrs
        .iter()
        .find(|a| a.oid.to_string() == ID_MESSAGE_DIGEST)
        .unwrap();
    let md = md.values.get(0).unwrap();
    assert_eq!(md.value(), doc_digest, "message-digest attribute");
    let to_sign = digest(SHA256, &attrs.to_der().unwrap());
    let sig = si.signature.as_bytes();
    match key {
        "rsa-pkcs1" | "rsa-pss" => {
            let pk = rsa::RsaPublicKey::from_public_key_der(spki).unwrap();
            let scheme_ok = if key == "rsa-pkcs1" {
                pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &to_sign, sig)
            } else {
                pk.verify(
                    rsa::Pss::new_with_salt::<sha2::Sha256>(pss_salt),
                    &to_sign,
                    sig,
                )
            };
            scheme_ok.unwrap();
        }
        _ => {
            let vk = p256::ecdsa::VerifyingKey::from_public_key_der(spki).unwrap();
            let s = p256::ecdsa::Signature::from_der(sig).unwrap();
            vk.verify_prehash(&to_sign, &s).unwrap();
        }
    }
}

/// The signDoc request, authorized over `digests`.
fn sign_doc(app: &TestApp, token: &str, body: Value) -> Resp {
    app.post("/csc/v2/signatures/signDoc", Some(token), &body)
}

/// The certificates of a time-stamp token (TSA first).
fn token_certs(token: &[u8]) -> Vec<Vec<u8>> {
    let sd = signed_data(token);
    sd.certificates
        .unwrap()
        .0
        .iter()
        .map(|c| c.to_der().unwrap())
        .collect()
}

fn tsa_pem_of(token: &[u8]) -> String {
    let certs = token_certs(token);
    let tsa = certs
        .iter()
        .find(|c| {
            let cert = x509_cert::Certificate::from_der(c).unwrap();
            cert.tbs_certificate.subject.to_string().contains("TSA")
        })
        .unwrap();
    pem(tsa)
}

#[test]
fn cades_detached_attached_and_b_t_verify_with_openssl() {
    let env = Env::new();
    let s = signer("carol");
    let rsa = env.enroll(&s, "rsa-2048");
    let ec = env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let dir = tempfile::tempdir().unwrap();
    let info = app.credential_info(&token, &rsa.credential_id);
    let (rsa_cert, ca) = chain(&info);
    let ca_pem = write(dir.path(), "ca.pem", pem(&ca.to_der().unwrap()).as_bytes());
    let ec_info = app.credential_info(&token, &ec.credential_id);
    let (ec_cert, _) = chain(&ec_info);

    // 1. RSA PKCS#1 v1.5, documentDigests, detached, AdES-B-B.
    let doc = b"Quill CAdES detached test document\n".to_vec();
    let doc_path = write(dir.path(), "doc.txt", &doc);
    let d = digest(SHA256, &doc);
    let sad = app.authorize(
        &token,
        &s,
        &rsa.credential_id,
        std::slice::from_ref(&d),
        SHA256,
    );
    let r = sign_doc(
        &app,
        &token,
        json!({
            "credentialID": rsa.credential_id, "SAD": sad,
            "documentDigests": [{
                "hashes": [b64(&d)], "hashAlgorithmOID": SHA256,
                "signature_format": "C", "conformance_level": "Ades-B-B",
                "signAlgo": RSA_SHA256, "signed_envelope_property": "Detached",
            }],
        }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["DocumentWithSignature"], json!([]));
    let cms = unb64(r.body["SignatureObject"][0].as_str().unwrap());
    let sig_path = write(dir.path(), "rsa.p7s", &cms);
    openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &sig_path,
        "-content",
        &doc_path,
        "-CAfile",
        &ca_pem,
        "-out",
        "/dev/null",
    ]);
    let sd = signed_data(&cms);
    assert!(sd.encap_content_info.econtent.is_none(), "detached");
    check_with_rustcrypto(&sd, "rsa-pkcs1", &spki_der(&rsa_cert), &d, 0);

    // The same SAD again: spent, refused, no signature.
    let again = sign_doc(
        &app,
        &token,
        json!({
            "credentialID": rsa.credential_id, "SAD": sad,
            "documentDigests": [{"hashes": [b64(&d)], "hashAlgorithmOID": SHA256,
                "signature_format": "C", "signAlgo": RSA_SHA256}],
        }),
    );
    again.assert_error(400, "invalid_request");
    assert!(again.body.get("SignatureObject").is_none());

    // 2. RSA-PSS, a whole document, attached (enveloping), AdES-B-B.
    let doc2 = b"Quill CAdES attached test document\n".to_vec();
    let d2 = digest(SHA256, &doc2);
    let params = rsa::pkcs1::RsaPssParams::new::<sha2::Sha256>(32)
        .to_der()
        .unwrap();
    let sad2 = app.authorize(
        &token,
        &s,
        &rsa.credential_id,
        std::slice::from_ref(&d2),
        SHA256,
    );
    // A document the SAD did not authorize: 403 invalid_hash, nothing signed, SAD still good.
    let wrong = sign_doc(
        &app,
        &token,
        json!({
            "credentialID": rsa.credential_id, "SAD": sad2,
            "documents": [{"document": b64(b"another document"), "signature_format": "C",
                "signAlgo": RSA_PSS, "signAlgoParams": b64(&params)}],
        }),
    );
    wrong.assert_error(403, "invalid_hash");
    assert!(wrong.body.get("DocumentWithSignature").is_none());
    let r = sign_doc(
        &app,
        &token,
        json!({
            "credentialID": rsa.credential_id, "SAD": sad2,
            "documents": [{"document": b64(&doc2), "signature_format": "C",
                "conformance_level": "AdES-B-B", "signed_envelope_property": "Attached",
                "signAlgo": RSA_PSS, "signAlgoParams": b64(&params)}],
        }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cms2 = unb64(r.body["DocumentWithSignature"][0].as_str().unwrap());
    let sig2_path = write(dir.path(), "pss.p7m", &cms2);
    let out_path = dir.path().join("out.txt");
    openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &sig2_path,
        "-CAfile",
        &ca_pem,
        "-out",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&out_path).unwrap(), doc2, "enveloped content");
    check_with_rustcrypto(
        &signed_data(&cms2),
        "rsa-pss",
        &spki_der(&rsa_cert),
        &d2,
        32,
    );

    // 3. ECDSA P-256, documentDigests, detached, AdES-B-T: a signature-time-stamp.
    let doc3 = b"Quill CAdES-B-T test document\n".to_vec();
    let doc3_path = write(dir.path(), "doc3.txt", &doc3);
    let d3 = digest(SHA256, &doc3);
    let sad3 = app.authorize(
        &token,
        &s,
        &ec.credential_id,
        std::slice::from_ref(&d3),
        SHA256,
    );
    let r = sign_doc(
        &app,
        &token,
        json!({
            "credentialID": ec.credential_id, "SAD": sad3,
            "documentDigests": [{"hashes": [b64(&d3)], "hashAlgorithmOID": SHA256,
                "signature_format": "C", "conformance_level": "Ades-B-T",
                "signAlgo": ECDSA_SHA256}],
        }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cms3 = unb64(r.body["SignatureObject"][0].as_str().unwrap());
    let sig3_path = write(dir.path(), "ec.p7s", &cms3);
    openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &sig3_path,
        "-content",
        &doc3_path,
        "-CAfile",
        &ca_pem,
        "-out",
        "/dev/null",
    ]);
    let sd3 = signed_data(&cms3);
    check_with_rustcrypto(&sd3, "ec", &spki_der(&ec_cert), &d3, 0);
    let si = sd3.signer_infos.0.get(0).unwrap();
    let ts_attr = si
        .unsigned_attrs
        .as_ref()
        .unwrap()
        .iter()
        .find(|a| a.oid.to_string() == ID_SIGNATURE_TIME_STAMP)
        .expect("signature-time-stamp attribute");
    let ts_token = ts_attr.values.get(0).unwrap().to_der().unwrap();
    let ts_path = write(dir.path(), "sig-ts.der", &ts_token);
    let tsa_pem = write(dir.path(), "tsa.pem", tsa_pem_of(&ts_token).as_bytes());
    let imprint = hex::encode(digest(SHA256, si.signature.as_bytes()));
    openssl(&[
        "ts",
        "-verify",
        "-digest",
        &imprint,
        "-in",
        &ts_path,
        "-token_in",
        "-CAfile",
        &ca_pem,
        "-untrusted",
        &tsa_pem,
    ]);
}

#[test]
fn timestamps_verify_with_openssl_and_echo_the_nonce() {
    let env = Env::new();
    let s = signer("dave");
    env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let dir = tempfile::tempdir().unwrap();

    let data = b"what was known at this time\n".to_vec();
    let data_path = write(dir.path(), "data.txt", &data);
    let d = digest(SHA256, &data);
    let r = app.post(
        "/csc/v2/signatures/timestamp",
        Some(&token),
        &json!({"hash": b64(&d), "hashAlgo": SHA256, "nonce": "0123456789abcdef0fedcba987654321"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let tst = unb64(r.body["timestamp"].as_str().unwrap());
    let info = x509_tsp::TstInfo::from_der(
        signed_data(&tst)
            .encap_content_info
            .econtent
            .unwrap()
            .value(),
    )
    .unwrap();
    assert_eq!(
        hex::encode(info.nonce.unwrap().as_bytes()),
        "0123456789abcdef0fedcba987654321"
    );
    assert_eq!(info.message_imprint.hashed_message.as_bytes(), d);
    let certs = token_certs(&tst);
    let ca = certs
        .iter()
        .find(|c| {
            let cert = x509_cert::Certificate::from_der(c).unwrap();
            cert.tbs_certificate.subject == cert.tbs_certificate.issuer
        })
        .unwrap();
    let ca_pem = write(dir.path(), "ca.pem", pem(ca).as_bytes());
    let tsa_pem = write(dir.path(), "tsa.pem", tsa_pem_of(&tst).as_bytes());
    let tst_path = write(dir.path(), "token.der", &tst);
    openssl(&[
        "ts",
        "-verify",
        "-data",
        &data_path,
        "-in",
        &tst_path,
        "-token_in",
        "-CAfile",
        &ca_pem,
        "-untrusted",
        &tsa_pem,
    ]);

    // Bad input: CSC errors.
    app.post(
        "/csc/v2/signatures/timestamp",
        Some(&token),
        &json!({"hash": b64(&d), "hashAlgo": SHA256, "nonce": "not hex"}),
    )
    .assert_error(400, "invalid_request");
    app.post(
        "/csc/v2/signatures/timestamp",
        Some(&token),
        &json!({"hash": b64(&d[..20]), "hashAlgo": SHA256}),
    )
    .assert_error(400, "invalid_request");
    app.post(
        "/csc/v2/signatures/timestamp",
        None,
        &json!({"hash": b64(&d), "hashAlgo": SHA256}),
    )
    .assert_error(401, "invalid_token");

    // Plain RFC 3161 over HTTP, as openssl ts makes and checks it (nonce included).
    let query_path = dir.path().join("q.tsq");
    openssl(&[
        "ts",
        "-query",
        "-data",
        &data_path,
        "-sha256",
        "-cert",
        "-out",
        query_path.to_str().unwrap(),
    ]);
    // (a media type parameter is fine: RFC 9110 §8.3.1)
    let reply = app
        .client
        .post(format!("{}/tsa", app.base))
        .header(
            "Content-Type",
            "Application/TimeStamp-Query; charset=binary",
        )
        .body(std::fs::read(&query_path).unwrap())
        .send()
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.headers()["content-type"],
        "application/timestamp-reply"
    );
    let reply_path = write(dir.path(), "r.tsr", &reply.bytes().unwrap());
    for wrong in ["application/json", "application/timestamp-query-x", ""] {
        let r = app
            .client
            .post(format!("{}/tsa", app.base))
            .header("Content-Type", wrong)
            .body(std::fs::read(&query_path).unwrap())
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{wrong:?}");
    }
    openssl(&[
        "ts",
        "-verify",
        "-queryfile",
        query_path.to_str().unwrap(),
        "-in",
        &reply_path,
        "-CAfile",
        &ca_pem,
        "-untrusted",
        &tsa_pem,
    ]);
    // Refused requests are rejections (status 2) naming their one failure, as OpenSSL reads
    // them, not server errors: garbage, another policy, SHA-1.
    let rejected = |query: &[u8], failure: &str| {
        let r = app
            .client
            .post(format!("{}/tsa", app.base))
            .header("Content-Type", "application/timestamp-query")
            .body(query.to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let path = write(dir.path(), "rejected.tsr", &r.bytes().unwrap());
        let text = String::from_utf8(openssl(&["ts", "-reply", "-in", &path, "-text"])).unwrap();
        assert!(text.contains("Status: Rejected"), "{text}");
        let info = text.lines().find_map(|l| l.strip_prefix("Failure info: "));
        assert_eq!(info, Some(failure), "{text}");
    };
    rejected(b"not DER", "the data submitted has the wrong format");
    let query_with = |extra: &[&str]| {
        let out = dir.path().join("other.tsq");
        let mut args = vec![
            "ts",
            "-query",
            "-data",
            &data_path,
            "-out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        openssl(&args);
        std::fs::read(&out).unwrap()
    };
    rejected(
        &query_with(&["-sha256", "-tspolicy", "1.2.3.4"]),
        "the requested TSA policy is not supported by the TSA",
    );
    rejected(
        &query_with(&["-sha1"]),
        "unrecognized or unsupported algorithm identifier",
    );
}

#[test]
fn sign_doc_input_errors_are_csc_errors_and_spend_nothing() {
    let env = Env::new();
    let s = signer("gina");
    let ec = env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let d = digest(SHA256, b"a document");
    let sad = app.authorize(
        &token,
        &s,
        &ec.credential_id,
        std::slice::from_ref(&d),
        SHA256,
    );
    let digests = |extra: Value| {
        let mut item = json!({"hashes": [b64(&d)], "hashAlgorithmOID": SHA256,
            "signature_format": "C", "signAlgo": ECDSA_SHA256});
        for (k, v) in extra.as_object().unwrap() {
            item[k] = v.clone();
        }
        json!({"credentialID": ec.credential_id, "SAD": sad, "documentDigests": [item]})
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"credentialID": ec.credential_id, "SAD": sad}),
            "Empty documentDigests and documents objects",
        ),
        (
            json!({"credentialID": ec.credential_id, "SAD": sad,
                "documentDigests": [], "documents": []}),
            "Both documentDigests and documents parameters passed",
        ),
        (
            digests(json!({"signature_format": "P"})),
            "signature_format",
        ),
        (
            digests(json!({"signature_format": null})),
            "signature_format",
        ),
        (
            digests(json!({"conformance_level": "Ades-B-LTA"})),
            "conformance_level",
        ),
        (
            digests(json!({"signed_envelope_property": "Attached"})),
            "signed_envelope_property",
        ),
        (
            digests(json!({"signed_envelope_property": "Parallel"})),
            "signed_envelope_property",
        ),
        (
            digests(json!({"signed_props": [{"attribute_name": "mime-type"}]})),
            "signed_props",
        ),
        (digests(json!({"signAlgo": RSA_SHA256})), "signAlgo"),
        (
            digests(json!({"hashAlgorithmOID": SHA384})),
            "hashAlgorithmOID",
        ),
        (
            digests(json!({"hashAlgorithmOID": null})),
            "hashAlgorithmOID",
        ),
        (
            digests(json!({"hashes": [b64(&d[..16])]})),
            "digest value length",
        ),
        (digests(json!({"hashes": ["%%%"]})), "Base64"),
        (digests(json!({"hashes": []})), "Empty hash array"),
        (digests(json!({"hashes": [b64(&d), b64(&d)]})), "Duplicate"),
        (
            json!({"credentialID": ec.credential_id, "SAD": sad,
                "documents": [{"document": "!!", "signature_format": "C", "signAlgo": ECDSA_SHA256}]}),
            "document",
        ),
        (
            json!({"credentialID": ec.credential_id, "SAD": sad,
                "documents": [{"signature_format": "C", "signAlgo": ECDSA_SHA256}]}),
            "document",
        ),
        (
            json!({"credentialID": ec.credential_id, "SAD": sad, "operationMode": "X",
                "documentDigests": [{"hashes": [b64(&d)], "hashAlgorithmOID": SHA256,
                    "signature_format": "C", "signAlgo": ECDSA_SHA256}]}),
            "operationMode",
        ),
        (
            json!({"credentialID": ec.credential_id, "SAD": sad, "returnValidationInfo": true,
                "documentDigests": [{"hashes": [b64(&d)], "hashAlgorithmOID": SHA256,
                    "signature_format": "C", "signAlgo": ECDSA_SHA256}]}),
            "returnValidationInfo",
        ),
        (
            json!({"SAD": sad, "documentDigests": [{"hashes": [b64(&d)],
                "hashAlgorithmOID": SHA256, "signature_format": "C", "signAlgo": ECDSA_SHA256}]}),
            "credentialID",
        ),
        (
            json!({"credentialID": "nope", "SAD": sad, "documentDigests": [{"hashes": [b64(&d)],
                "hashAlgorithmOID": SHA256, "signature_format": "C", "signAlgo": ECDSA_SHA256}]}),
            "credentialID",
        ),
        (
            json!({"credentialID": ec.credential_id, "documentDigests": [{"hashes": [b64(&d)],
                "hashAlgorithmOID": SHA256, "signature_format": "C", "signAlgo": ECDSA_SHA256}]}),
            "SAD",
        ),
        (
            json!({"credentialID": ec.credential_id, "SAD": "made-up",
                "documentDigests": [{"hashes": [b64(&d)], "hashAlgorithmOID": SHA256,
                    "signature_format": "C", "signAlgo": ECDSA_SHA256}]}),
            "SAD",
        ),
        // signatureQualifier: must be what the credential makes (the development CA's
        // certificates carry no QCStatements: advanced, eu_eidas_aes) ...
        (
            {
                let mut b = digests(json!({}));
                b["signatureQualifier"] = json!("eu_eidas_qes");
                b
            },
            "signatureQualifier: the credential makes eu_eidas_aes",
        ),
        // ... also when it stands for credentialID; an unknown SAD is then the SAD's error
        (
            {
                let mut b = digests(json!({}));
                b.as_object_mut().unwrap().remove("credentialID");
                b["signatureQualifier"] = json!("eu_eidas_qes");
                b
            },
            "signatureQualifier",
        ),
        (
            {
                let mut b = digests(json!({}));
                b.as_object_mut().unwrap().remove("credentialID");
                b["signatureQualifier"] = json!("eu_eidas_aes");
                b["SAD"] = json!("made-up");
                b
            },
            "Invalid parameter SAD",
        ),
    ];
    for (body, needle) in cases {
        let r = sign_doc(&app, &token, body.clone());
        r.assert_error(400, "invalid_request");
        assert!(
            r.description().contains(needle),
            "{needle:?} not in {:?} for {body}",
            r.description()
        );
    }
    sign_doc(&app, "not-a-token", digests(json!({}))).assert_error(401, "invalid_token");
    // Another signer's SAD named by qualifier: the credential is not the caller's.
    let other = signer("hal");
    let other_ec = env.enroll(&other, "ec-p256");
    let other_token = app.login(&other.user, &other.password);
    let other_sad = app.authorize(
        &other_token,
        &other,
        &other_ec.credential_id,
        std::slice::from_ref(&d),
        SHA256,
    );
    let mut foreign = digests(json!({}));
    foreign.as_object_mut().unwrap().remove("credentialID");
    foreign["signatureQualifier"] = json!("eu_eidas_aes");
    foreign["SAD"] = json!(other_sad);
    sign_doc(&app, &token, foreign).assert_error(400, "invalid_request");
    // None of that spent the SAD: it still signs, once, here named by the qualifier the
    // credential shows in credentials/info.
    let info = app.credential_info(&token, &ec.credential_id);
    assert_eq!(info["signatureQualifier"], "eu_eidas_aes");
    let mut by_qualifier = digests(json!({}));
    by_qualifier.as_object_mut().unwrap().remove("credentialID");
    by_qualifier["signatureQualifier"] = info["signatureQualifier"].clone();
    let r = sign_doc(&app, &token, by_qualifier);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["SignatureObject"].as_array().unwrap().len(), 1);
    sign_doc(&app, &token, digests(json!({}))).assert_error(400, "invalid_request");
}

#[test]
fn one_sad_signs_a_batch_of_documents_in_order() {
    let env = Env::new();
    let s = signer("hank");
    let ec = env.enroll(&s, "ec-p384");
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let dir = tempfile::tempdir().unwrap();
    let (_, ca) = chain(&app.credential_info(&token, &ec.credential_id));
    let ca_pem = write(dir.path(), "ca.pem", pem(&ca.to_der().unwrap()).as_bytes());
    let docs: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("batch document {i}\n").into_bytes())
        .collect();
    let digests: Vec<Vec<u8>> = docs.iter().map(|d| digest(SHA384, d)).collect();
    let sad = app.authorize(&token, &s, &ec.credential_id, &digests, SHA384);
    let r = sign_doc(
        &app,
        &token,
        json!({
            "credentialID": ec.credential_id, "SAD": sad,
            "documentDigests": [
                {"hashes": [b64(&digests[0]), b64(&digests[1])], "hashAlgorithmOID": SHA384,
                 "signature_format": "C", "signAlgo": "1.2.840.10045.4.3.3"},
                {"hashes": [b64(&digests[2])], "hashAlgorithmOID": SHA384,
                 "signature_format": "C", "conformance_level": "ades-b-t",
                 "signAlgo": "1.2.840.10045.4.3.3"},
            ],
        }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let objects = r.body["SignatureObject"].as_array().unwrap();
    assert_eq!(objects.len(), 3);
    for (i, (doc, object)) in docs.iter().zip(objects).enumerate() {
        let doc_path = write(dir.path(), &format!("doc{i}.txt"), doc);
        let cms = unb64(object.as_str().unwrap());
        let sig_path = write(dir.path(), &format!("doc{i}.p7s"), &cms);
        openssl(&[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            &sig_path,
            "-content",
            &doc_path,
            "-CAfile",
            &ca_pem,
            "-out",
            "/dev/null",
        ]);
        let si = signed_data(&cms).signer_infos.0.get(0).unwrap().clone();
        assert_eq!(si.digest_alg.oid.to_string(), SHA384);
        assert_eq!(
            si.unsigned_attrs.is_some(),
            i == 2,
            "only the B-T entry is time-stamped"
        );
    }
    // Every digest is spent: the SAD signs nothing more.
    sign_doc(
        &app,
        &token,
        json!({
            "credentialID": ec.credential_id, "SAD": sad,
            "documentDigests": [{"hashes": [b64(&digests[0])], "hashAlgorithmOID": SHA384,
                "signature_format": "C", "signAlgo": "1.2.840.10045.4.3.3"}],
        }),
    )
    .assert_error(400, "invalid_request");
}

/// A B-T signature's time-stamp is made after the signature value it covers: its genTime (with
/// the 1 s accuracy it states) is never before the moment the signature could exist. It was the
/// request's arrival time, so a wait for the database or the token before signing dated the
/// token earlier than its content (RFC 3161 §2.4.2, EN 319 122-1 §5.3). The test holds the
/// database's write lock from outside for two seconds (on SQLite and on PostgreSQL).
#[test]
fn a_b_t_time_stamp_is_not_older_than_its_signature() {
    let env = Env::new();
    let s = signer("tess");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let d = digest(SHA256, b"stamped late");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&d), SHA256);
    let holder = env.hold_write_lock(std::time::Duration::from_secs(2));
    let r = sign_doc(
        &app,
        &token,
        json!({"credentialID": cred, "SAD": sad, "documentDigests": [{"hashes": [b64(&d)],
            "hashAlgorithmOID": SHA256, "signature_format": "C",
            "conformance_level": "Ades-B-T", "signAlgo": ECDSA_SHA256}]}),
    );
    let released = holder.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let cms = unb64(r.body["SignatureObject"][0].as_str().unwrap());
    let sd = signed_data(&cms);
    let si = sd.signer_infos.0.get(0).unwrap();
    let ts_token = si
        .unsigned_attrs
        .as_ref()
        .unwrap()
        .iter()
        .find(|a| a.oid.to_string() == ID_SIGNATURE_TIME_STAMP)
        .unwrap()
        .values
        .get(0)
        .unwrap()
        .to_der()
        .unwrap();
    let econtent = signed_data(&ts_token).encap_content_info.econtent.unwrap();
    let octets = der::asn1::OctetString::from_der(&econtent.to_der().unwrap()).unwrap();
    let tst = x509_tsp::TstInfo::from_der(octets.as_bytes()).unwrap();
    let gen_time = tst.gen_time.to_unix_duration().as_secs_f64();
    let released = released
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        gen_time + 1.0 > released,
        "genTime {gen_time} + 1 s is before the lock was released at {released}"
    );
}

/// RSASSA-PSS parameters that spell out a DEFAULT (saltLength 20) go into the SignerInfo as DER,
/// which leaves it out: the CMS is DER throughout (archive time-stamps hash it as encoded).
#[test]
fn pss_parameters_are_written_as_der() {
    let env = Env::new();
    let s = signer("ursa");
    let cred = env.enroll(&s, "rsa-2048").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let d = digest(SHA256, b"pss as der");
    let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&d), SHA256);
    let sha256_mgf1 = "3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108\
                       300d06096086480165030402010500";
    let explicit_default = format!("{sha256_mgf1}a203020114");
    let r = sign_doc(
        &app,
        &token,
        json!({"credentialID": cred, "SAD": sad, "documentDigests": [{"hashes": [b64(&d)],
            "hashAlgorithmOID": SHA256, "signature_format": "C",
            "signAlgo": "1.2.840.113549.1.1.10",
            "signAlgoParams": b64(&hex::decode(&explicit_default).unwrap())}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cms = unb64(r.body["SignatureObject"][0].as_str().unwrap());
    let sd = signed_data(&cms);
    let params = sd
        .signer_infos
        .0
        .get(0)
        .unwrap()
        .signature_algorithm
        .parameters
        .clone();
    let mut der_form = hex::decode(sha256_mgf1).unwrap();
    der_form[1] = 0x2f;
    assert_eq!(
        hex::encode(params.unwrap().to_der().unwrap()),
        hex::encode(der_form)
    );
    assert_eq!(cms, ContentInfo::from_der(&cms).unwrap().to_der().unwrap());
}
