//! pyHanko interop (issue 7): the real pyHanko (pinned, from PyPI, in the venv `.ci/pyhanko-venv`
//! makes) signs a PDF through `quill serve` with its CSC signer and validates it, for RSA PKCS#1
//! v1.5, RSA-PSS and ECDSA P-256 credentials, on pyHanko's default `/csc/v1` and on `/csc/v2`.
//! The script is `tests/interop/pyhanko_sign.py`; these tests run the same commands the README
//! shows, then check on this side what the script reports: the requests pyHanko made, the
//! v1 field names it sent, the certificate and signature value in the PDF (verified here with
//! RustCrypto against the certificate Quill returns) and the SAD Quill issued and spent.
//!
//! The Python comes from `QUILL_PYHANKO_PYTHON` (`.ci/test` sets it). Without it these tests
//! fail and say how to run them, unless `QUILL_SKIP_INTEROP=1` asks to skip them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use der::Encode;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::pkcs8::DecodePublicKey;
use serde_json::{Value, json};

use crate::helpers::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/pyhanko_sign.py");
const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

/// The venv's Python, or None when the run asked to skip interop tests.
fn python() -> Option<PathBuf> {
    match std::env::var_os("QUILL_PYHANKO_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("QUILL_SKIP_INTEROP").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: pyHanko interop test (QUILL_SKIP_INTEROP=1)");
            None
        }
        None => panic!(
            "QUILL_PYHANKO_PYTHON is not set. The pyHanko interop tests need pyHanko from PyPI: \
             run them with `QUILL_PYHANKO_PYTHON=$(bash .ci/pyhanko-venv) cargo nextest run \
             --test api pyhanko` (bash .ci/test does this), or set QUILL_SKIP_INTEROP=1 to skip them"
        ),
    }
}

/// One run of the script for `signer` on `app`.
fn script(py: &Path, app: &TestApp, s: &Signer, args: &[&str]) -> Output {
    Command::new(py)
        .arg(SCRIPT)
        .args(args)
        .args(["--url", &app.base, "--user", &s.user])
        .env("QUILL_PASSWORD", &s.password)
        .env("QUILL_PIN", &s.pin)
        .env("QUILL_TOTP_SECRET", &s.totp_secret)
        .output()
        .expect("run the pyHanko script")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The script's summary: the last line of its stdout.
fn summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| panic!("no JSON summary: {}", text(out)))
}

fn pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// The DER inside one PEM certificate.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    unb64(&body)
}

/// The credential's end-entity and CA certificates as Quill returns them, the CA checked to be
/// self-signed and the issuer of the end-entity certificate.
fn certificates(app: &TestApp, token: &str, cred: &str) -> (Vec<u8>, Vec<u8>) {
    let info = app.credential_info(token, cred);
    let (ee, ca) = chain(&info);
    assert_issued_by(&ee, &ca);
    assert_issued_by(&ca, &ca);
    (ee.to_der().unwrap(), ca.to_der().unwrap())
}

/// `dev-ca` prints the development CA, and it is the one Quill's chain ends with.
fn dev_ca(py: &Path, app: &TestApp, s: &Signer, cred: &str, ca_der: &[u8], dir: &Path) -> PathBuf {
    let out = script(py, app, s, &["dev-ca", "--credential", cred]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        pem_der(&String::from_utf8_lossy(&out.stdout)),
        ca_der,
        "dev-ca prints the CA certificate of the chain"
    );
    // The trust root the validation uses is the one read here, not the script's.
    let path = dir.join("dev-ca.pem");
    std::fs::write(&path, pem(ca_der)).unwrap();
    path
}

/// Verify the CMS signature value over the DER signed attributes against the certificate Quill
/// returned for the credential.
fn verify_cms_signature(
    ee_der: &[u8],
    sign_algo: &str,
    pss_salt: usize,
    signed_attrs: &[u8],
    sig: &[u8],
) {
    use der::Decode;
    let ee = x509_cert::Certificate::from_der(ee_der).unwrap();
    let spki = spki_der(&ee);
    let h = digest(SHA256, signed_attrs);
    match sign_algo {
        SHA256_RSA => rsa::RsaPublicKey::from_public_key_der(&spki)
            .unwrap()
            .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &h, sig)
            .expect("PKCS#1 v1.5 signature verifies"),
        RSASSA_PSS => rsa::RsaPublicKey::from_public_key_der(&spki)
            .unwrap()
            .verify(rsa::Pss::new_with_salt::<sha2::Sha256>(pss_salt), &h, sig)
            .expect("RSASSA-PSS signature verifies"),
        ECDSA_SHA256 => {
            let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
            let s = p256::ecdsa::Signature::from_der(sig).expect("DER Ecdsa-Sig-Value");
            vk.verify_prehash(&h, &s).expect("ECDSA signature verifies");
        }
        other => panic!("unexpected signature algorithm {other}"),
    }
}

/// The SADs Quill issued for `cred`, the ones spent, and the digests signed with them.
fn sad_counts(env: &Env, cred: &str) -> (i64, i64, i64) {
    let issued = env.db_i64(&format!(
        "SELECT COUNT(*) AS n FROM sads WHERE credential_id = '{cred}'"
    ));
    let spent = env.db_i64(&format!(
        "SELECT COUNT(*) AS n FROM sads WHERE credential_id = '{cred}' AND remaining = 0"
    ));
    let used = env.used_digests(&format!("credential_id = '{cred}'"));
    (issued, spent, used)
}

/// pyHanko signs a PDF for each (key, API version) in `runs`, one fresh credential each; every
/// result is PAdES-B-B, intact, valid and trusted under the development CA.
fn signs_pades(runs: &[(&str, &str)], pss: bool, sign_algo: &str) {
    let Some(py) = python() else { return };
    let env = Env::new();
    let s = signer("pyhanko");
    let creds: Vec<(&str, &str, String)> = runs
        .iter()
        .map(|&(key, api)| (key, api, env.enroll(&s, key).credential_id))
        .collect();
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let (_, ca_der) = certificates(&app, &token, &creds[0].2);
    let trust_root = dev_ca(&py, &app, &s, &creds[0].2, &ca_der, env.dir.path());

    for (key, api, cred) in &creds {
        let (key, api) = (*key, *api);
        let (_, ca) = certificates(&app, &token, cred);
        assert_eq!(ca, ca_der, "one development CA");
        assert_eq!(sad_counts(&env, cred), (0, 0, 0), "fresh credential");
        let pdf = env.dir.path().join(format!("signed-{key}-{api}.pdf"));
        let mut args = vec![
            "sign",
            "--credential",
            cred.as_str(),
            "--trust-root",
            trust_root.to_str().unwrap(),
            "--out",
            pdf.to_str().unwrap(),
        ];
        if api == "v2" {
            args.extend(["--api", "v2"]);
        }
        if pss {
            args.push("--pss");
        }
        // Quill's certificates are DER (pki::cert::check_der). They once wrote basicConstraints'
        // cA FALSE out; asn1crypto re-encoded the certificate when pyHanko read it, and pyHanko
        // then wrote, in about one RSA-PSS signature in three on a loaded machine, a ContentInfo
        // whose length counted one encoding and whose SignedData held the other. This test
        // signs once: no retries.
        let out = script(&py, &app, &s, &args);
        let (ee_der, _) = certificates(&app, &token, cred);
        assert!(out.status.success(), "{key} {api}: {}", text(&out));
        let r = summary(&out);
        let ctx = format!("{key} {api}: {r:#}");

        assert_eq!(r["ok"], true, "{ctx}");
        for k in ["intact", "valid", "trusted", "bottom_line"] {
            assert_eq!(r["validation"][k], true, "{k}: {ctx}");
        }
        assert_eq!(r["validation"]["coverage"], "ENTIRE_FILE", "{ctx}");
        // pyHanko made exactly these calls, on the path of the API version asked for.
        let calls: Vec<Value> = [
            "auth/login",
            "credentials/info",
            "credentials/authorize",
            "signatures/signHash",
        ]
        .iter()
        .map(|m| json!(["POST", format!("/csc/{api}/{m}"), 200]))
        .collect();
        assert_eq!(r["requests"], json!(calls), "{ctx}");
        // v1 names on both paths: format_csc_auth_request's body (no hashAlgorithmOID, no
        // authData) and signHash with hash/hashAlgo.
        assert_eq!(
            r["authorize_requests"],
            json!([[
                "OTP",
                "PIN",
                "credentialID",
                "description",
                "hash",
                "numSignatures"
            ]]),
            "{ctx}"
        );
        let sh = &r["sign_hash_requests"][0];
        assert_eq!(r["sign_hash_requests"].as_array().unwrap().len(), 1);
        assert_eq!(sh["signAlgo"], sign_algo, "{ctx}");
        assert_eq!(sh["hashAlgo"], SHA256, "{ctx}");
        assert_eq!(sh.get("signAlgoParams").is_some(), pss, "{ctx}");
        assert!(sh.get("hashes").is_none() && sh.get("hash").is_some());
        assert_eq!(r["sad_from_quill"], true, "{ctx}");
        assert_eq!(r["hash_sent_is_signed_attrs_digest"], true, "{ctx}");
        assert_eq!(r["hash_pinning_required"], true, "SCAL 2: {ctx}");
        // PAdES-B-B.
        assert_eq!(r["pades"]["subfilter"], "/ETSI.CAdES.detached", "{ctx}");
        assert_eq!(
            r["pades"]["signed_attrs"],
            json!(["content_type", "message_digest", "signing_certificate_v2"]),
            "{ctx}"
        );
        // The PDF's signature is this credential's: its certificate as Quill returns it, and
        // the value verifies under it here too.
        assert_eq!(r["signer_cert"], b64(&ee_der), "{ctx}");
        assert_eq!(r["signature_algorithm"], sign_algo, "{ctx}");
        assert_eq!(r["local_verify"], true, "{ctx}");
        // pyHanko asks the largest salt the key allows: modulus bytes - 32 - 2 for SHA-256.
        let salt = match key {
            "rsa-2048" => 256 - 32 - 2,
            "rsa-3072" => 384 - 32 - 2,
            _ => 0,
        };
        if pss {
            assert_eq!(r["pss_salt"], salt, "{ctx}");
        }
        verify_cms_signature(
            &ee_der,
            sign_algo,
            salt,
            &unb64(r["signed_attrs"].as_str().unwrap()),
            &unb64(r["signature"].as_str().unwrap()),
        );
        assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
        // Quill issued one SAD for this credential, bound to one digest, and spent it.
        assert_eq!(sad_counts(&env, cred), (1, 1, 1), "{ctx}");
    }
    assert!(!env.server_log().contains("panicked"));
}

#[test]
fn pyhanko_signs_pades_b_b_with_rsa_pkcs1_v1_5() {
    signs_pades(&[("rsa-2048", "v1"), ("rsa-2048", "v2")], false, SHA256_RSA);
}

#[test]
fn pyhanko_signs_pades_b_b_with_rsa_pss() {
    // RSA-3072 too: its salt (350) does not fit in one byte.
    signs_pades(
        &[("rsa-2048", "v1"), ("rsa-2048", "v2"), ("rsa-3072", "v2")],
        true,
        RSASSA_PSS,
    );
}

#[test]
fn pyhanko_signs_pades_b_b_with_ecdsa_p256() {
    signs_pades(&[("ec-p256", "v1"), ("ec-p256", "v2")], false, ECDSA_SHA256);
}

/// The script can fail: a wrong PIN gets no SAD from Quill, so pyHanko cannot sign (nothing
/// local signs instead); a trust root that only looks like the development CA (same name,
/// other key) leaves the signature intact and valid but untrusted.
#[test]
fn pyhanko_fails_without_quill_authorization_or_the_right_trust_root() {
    let Some(py) = python() else { return };
    let env = Env::new();
    let s = signer("pyhanko");
    let a = env.enroll(&s, "ec-p256");
    let b = env.enroll(&s, "rsa-2048");
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let (_, ca_der) = certificates(&app, &token, &a.credential_id);
    let trust_root = dev_ca(&py, &app, &s, &a.credential_id, &ca_der, env.dir.path());
    let dir = env.dir.path();

    let pdf = dir.join("wrong-pin.pdf");
    let wrong_pin = Signer {
        pin: "654321".into(),
        ..s.clone()
    };
    let out = script(
        &py,
        &app,
        &wrong_pin,
        &[
            "sign",
            "--credential",
            &a.credential_id,
            "--trust-root",
            trust_root.to_str().unwrap(),
            "--out",
            pdf.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HTTP 400") && err.contains("invalid_authentication_data"),
        "{}",
        text(&out)
    );
    assert!(!pdf.exists(), "no signed PDF without a SAD");
    assert_eq!(sad_counts(&env, &a.credential_id), (0, 0, 0));

    // A CA with the development CA's name and another key.
    let fake = dir.join("fake-ca.pem");
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
        .args(["-keyout", dir.join("fake-ca.key").to_str().unwrap()])
        .args(["-subj", "/O=Quill development CA/CN=Quill Development CA"])
        .args(["-out", fake.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let pdf = dir.join("untrusted.pdf");
    let out = script(
        &py,
        &app,
        &s,
        &[
            "sign",
            "--credential",
            &b.credential_id,
            "--api",
            "v2",
            "--trust-root",
            fake.to_str().unwrap(),
            "--out",
            pdf.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = summary(&out);
    assert_eq!(r["ok"], false);
    assert_eq!(r["validation"]["intact"], true, "{r:#}");
    assert_eq!(r["validation"]["valid"], true, "{r:#}");
    assert_eq!(r["validation"]["trusted"], false, "{r:#}");
    assert_eq!(r["validation"]["bottom_line"], false, "{r:#}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("trusted"));
    // Signed through Quill all the same.
    assert_eq!(sad_counts(&env, &b.credential_id), (1, 1, 1));
}

/// PAdES-B-T: pyHanko takes the signature time-stamp from Quill's own RFC 3161 endpoint
/// (`POST /tsa`) and validates it, with the signature, against the development CA.
#[test]
fn pyhanko_pades_b_t_with_quills_tsa() {
    let Some(py) = python() else { return };
    let env = Env::new();
    let s = signer("pyhanko-bt");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let (_, ca_der) = certificates(&app, &token, &cred);
    let trust_root = dev_ca(&py, &app, &s, &cred, &ca_der, env.dir.path());
    let pdf = env.dir.path().join("signed-b-t.pdf");
    let tsa = format!("{}/tsa", app.base);
    let out = script(
        &py,
        &app,
        &s,
        &[
            "sign",
            "--credential",
            &cred,
            "--api",
            "v2",
            "--trust-root",
            trust_root.to_str().unwrap(),
            "--tsa",
            &tsa,
            "--out",
            pdf.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let r = summary(&out);
    for k in ["intact", "valid", "trusted", "bottom_line"] {
        assert_eq!(r["validation"][k], true, "{k}: {r:#}");
    }
    for k in ["intact", "valid", "trusted"] {
        assert_eq!(r["timestamp"][k], true, "timestamp {k}: {r:#}");
    }
    assert_eq!(
        r["pades"]["unsigned_attrs"],
        json!(["signature_time_stamp_token"]),
        "{r:#}"
    );
    // The token came from Quill's TSA key (its certificate issued by the development CA).
    assert!(
        r["timestamp"]["tsa_subject"]
            .as_str()
            .unwrap()
            .contains("TSA"),
        "{r:#}"
    );
}
