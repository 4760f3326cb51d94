//! The operator's own CA (a trust service provider's): `quill credential csr` and
//! `quill credential import-cert`, from the outside, with a throwaway "TSP CA" made by rcgen.

use der::{Decode, Encode};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    SignatureAlgorithm,
};
use serde_json::Value;
use x509_cert::Certificate;
use x509_cert::request::CertReq;

use crate::helpers::*;

/// A request from `quill credential csr` (PEM on stdout).
fn csr(env: &Env, cred: &str) -> CertReq {
    let pem = env.quill_ok(&["credential", "csr", "--credential", cred]);
    let (label, der) = der::pem::decode_vec(pem.as_bytes()).unwrap();
    assert_eq!(label, "CERTIFICATE REQUEST");
    CertReq::from_der(&der).unwrap()
}

/// The end-entity certificate a credential's chain starts with, as served.
fn served_chain(app: &TestApp, token: &str, cred: &str) -> Vec<Vec<u8>> {
    app.credential_info(token, cred)["cert"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| unb64(c.as_str().unwrap()))
        .collect()
}

/// The request's signature verifies, with RustCrypto, under its own SubjectPublicKeyInfo.
fn assert_self_signed(req: &CertReq) {
    let spki = req.info.public_key.to_der().unwrap();
    let tbs = req.info.to_der().unwrap();
    let sig = req.signature.raw_bytes();
    match req.algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.11" => {
            use rsa::pkcs8::DecodePublicKey;
            use rsa::signature::Verifier;
            let key = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
            let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key);
            let sig = rsa::pkcs1v15::Signature::try_from(sig).unwrap();
            key.verify(&tbs, &sig).unwrap();
        }
        "1.2.840.10045.4.3.2" => {
            use p256::ecdsa::signature::Verifier;
            use p256::pkcs8::DecodePublicKey;
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
            let sig = p256::ecdsa::DerSignature::try_from(sig).unwrap();
            key.verify(&tbs, &sig).unwrap();
        }
        "1.2.840.10045.4.3.3" => {
            use p384::ecdsa::signature::Verifier;
            use p384::pkcs8::DecodePublicKey;
            let key = p384::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
            let sig = p384::ecdsa::DerSignature::try_from(sig).unwrap();
            key.verify(&tbs, &sig).unwrap();
        }
        other => panic!("unexpected signature algorithm {other}"),
    }
}

/// RSA-2048, P-256 and P-384 credentials: the request carries the certificate's subject and
/// key, and the token's signature over it verifies.
#[test]
fn csr_is_a_request_for_the_credential_key_signed_in_the_token() {
    let env = Env::new();
    let s = signer("csr-maker");
    let creds: Vec<(String, &str)> = [
        ("rsa-2048", "1.2.840.113549.1.1.11"),
        ("ec-p256", "1.2.840.10045.4.3.2"),
        ("ec-p384", "1.2.840.10045.4.3.3"),
    ]
    .into_iter()
    .map(|(key, alg)| (env.enroll(&s, key).credential_id, alg))
    .collect();
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    for (cred, alg) in &creds {
        let chain = served_chain(&app, &token, cred);
        let ee = Certificate::from_der(&chain[0]).unwrap();
        let req = csr(&env, cred);
        assert_eq!(req.algorithm.oid.to_string(), *alg);
        assert_eq!(req.info.subject, ee.tbs_certificate.subject);
        assert_eq!(req.info.public_key.to_der().unwrap(), spki_der(&ee));
        assert_self_signed(&req);
    }
    // --out writes the file; an unknown credential is refused.
    let out = env.dir.path().join("req.pem");
    let stdout = env.quill_ok(&[
        "credential",
        "csr",
        "--credential",
        &creds[1].0,
        "--out",
        out.to_str().unwrap(),
    ]);
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["credential_id"], creds[1].0.as_str());
    let (_, der) = der::pem::decode_vec(&std::fs::read(&out).unwrap()).unwrap();
    assert_self_signed(&CertReq::from_der(&der).unwrap());
    let missing = env
        .quill()
        .args(["credential", "csr", "--credential", "nope"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no credential"));
    assert!(!env.server_log().contains("panicked"));
}

/// A subject public key as rcgen wants it, from a request's SubjectPublicKeyInfo (P-256).
struct RequestedKey(Vec<u8>);

impl rcgen::PublicKeyData for RequestedKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A throwaway TSP root CA (ECDSA P-384).
struct TspCa {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

impl TspCa {
    fn new(cn: &str) -> TspCa {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CountryName, "BG");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        TspCa { params, key, der }
    }

    /// A qualified certificate (QcCompliance + QcSSCD) for the key of `req`, valid from
    /// `from` through `to` (Unix seconds).
    fn issue(&self, req: &CertReq, from: i64, to: i64) -> Vec<u8> {
        let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CountryName, "BG");
        p.distinguished_name
            .push(DnType::CommonName, "Qualified Signer");
        (p.not_before, p.not_after) = (at(from), at(to));
        p.key_usages = vec![rcgen::KeyUsagePurpose::ContentCommitment];
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 1, 3],
            qc_statements(),
        )];
        let key = RequestedKey(req.info.public_key.subject_public_key.raw_bytes().to_vec());
        let issuer = Issuer::from_params(&self.params, &self.key);
        p.signed_by(&key, &issuer).unwrap().der().to_vec()
    }
}

/// RFC 3739 `QCStatement` without statementInfo.
#[derive(der::Sequence)]
struct QcStatement {
    id: der::asn1::ObjectIdentifier,
}

/// QCStatements: QcCompliance (0.4.0.1862.1.1) and QcSSCD (0.4.0.1862.1.4).
fn qc_statements() -> Vec<u8> {
    ["0.4.0.1862.1.1", "0.4.0.1862.1.4"]
        .into_iter()
        .map(|oid| QcStatement {
            id: oid.parse().unwrap(),
        })
        .collect::<Vec<_>>()
        .to_der()
        .unwrap()
}

fn pem(certs: &[&[u8]]) -> String {
    certs
        .iter()
        .map(|c| der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, c).unwrap())
        .collect()
}

/// The README's flow: enrol, disable, request, have the TSP CA issue, import, enable. Chains
/// that are not right are refused first, changing nothing; the imported chain is served at
/// once by the running server, with the qualifier its QCStatements give, and signs.
#[test]
fn import_cert_takes_a_chain_issued_for_the_key() {
    let env = Env::new();
    let s = signer("tsp-customer");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let other = env.enroll(&s, "ec-p256").credential_id;
    env.quill_ok(&["credential", "disable", "--credential", &cred]);
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let before = served_chain(&app, &token, &cred);
    let info = app.credential_info(&token, &cred);
    assert_eq!(info["signatureQualifier"], "eu_eidas_aes");

    let req = csr(&env, &cred);
    let ca = TspCa::new("TSP Qualified CA");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ee = ca.issue(&req, now - 60, now + 365 * 86_400);

    let dir = env.dir.path();
    let import = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        env.quill()
            .args([
                "credential",
                "import-cert",
                "--credential",
                &cred,
                "--chain",
            ])
            .arg(&path)
            .output()
            .unwrap()
    };
    let audited = || {
        env.db_i64(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'import_certificate' \
             AND credential_id = '{cred}'"
        ))
    };

    // Refusals, each changing nothing.
    let other_ee = ca.issue(&csr(&env, &other), now - 60, now + 86_400);
    let impostor = TspCa::new("TSP Qualified CA");
    let expired = ca.issue(&req, now - 10 * 86_400, now - 86_400);
    for (name, content, says) in [
        (
            "other-key.pem",
            pem(&[&other_ee, &ca.der]),
            "not for this credential's key",
        ),
        (
            "wrong-order.pem",
            pem(&[&ca.der, &ee]),
            "not for this credential's key",
        ),
        (
            "wrong-signer.pem",
            pem(&[&ee, &impostor.der]),
            "certificate 1 is not signed by certificate 2",
        ),
        ("ee-only.pem", pem(&[&ee]), "only the end-entity"),
        ("expired.pem", pem(&[&expired, &ca.der]), "expired"),
        (
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"
                .to_owned(),
            "PEM block 1",
        ),
        ("empty.pem", String::new(), "no PEM CERTIFICATE"),
    ] {
        let out = import(name, &content);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(err.contains(says), "{name}: {err}");
        assert_eq!(served_chain(&app, &token, &cred), before, "{name}");
        assert_eq!(audited(), 0, "{name}");
    }

    // The right chain, with explanatory text as openssl writes it.
    let good = format!(
        "subject=C=BG, CN=Qualified Signer\n{}",
        pem(&[&ee, &ca.der])
    );
    let out = import("chain.pem", &good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported: Value = serde_json::from_slice(&out.stdout).unwrap();
    let old_ee = Certificate::from_der(&before[0]).unwrap();
    let new_ee = Certificate::from_der(&ee).unwrap();
    let serial = |c: &Certificate| hex::encode_upper(c.tbs_certificate.serial_number.as_bytes());
    assert_eq!(imported["credential_id"], cred.as_str());
    assert_eq!(imported["serial_number"], serial(&new_ee));
    assert_eq!(imported["previous_serial_number"], serial(&old_ee));
    assert_eq!(imported["issuer"], "C=BG,CN=TSP Qualified CA");
    assert_eq!(imported["signature_qualifier"], "eu_eidas_qes");
    assert_eq!(imported["chain_length"], 2);
    env.quill_ok(&["credential", "enable", "--credential", &cred]);

    // The running server serves it at once.
    let info = app.credential_info(&token, &cred);
    assert_eq!(
        served_chain(&app, &token, &cred),
        [ee.clone(), ca.der.clone()]
    );
    assert_eq!(info["signatureQualifier"], "eu_eidas_qes");
    assert_eq!(info["cert"]["status"], "valid");
    assert_eq!(info["cert"]["issuerDN"], "C=BG,CN=TSP Qualified CA");
    assert_eq!(info["cert"]["subjectDN"], "C=BG,CN=Qualified Signer");
    assert_eq!(info["key"]["status"], "enabled");
    // It signs, and the signature verifies under the imported certificate's key.
    let h = digest(SHA256, b"signed under the TSP's certificate");
    app.sign_p256_verified(&token, &s, &cred, &h);
    assert_eq!(p256_key(&app, &token, &cred), {
        use p256::pkcs8::DecodePublicKey;
        p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der(&new_ee)).unwrap()
    });
    // A request made now (for the TSP's next certificate) has the imported subject.
    let again = csr(&env, &cred);
    assert_eq!(again.info.subject, new_ee.tbs_certificate.subject);
    assert_self_signed(&again);
    // The other credential is untouched.
    assert_eq!(
        app.credential_info(&token, &other)["signatureQualifier"],
        "eu_eidas_aes"
    );

    // Renewal from the development CA would swap the provider's certificate for its own: refused,
    // nothing changed.
    let renew = env
        .quill()
        .args(["credential", "renew", "--credential", &cred])
        .output()
        .unwrap();
    assert!(!renew.status.success());
    let err = String::from_utf8_lossy(&renew.stderr);
    assert!(err.contains("a certificate from another CA"), "{err}");
    assert_eq!(
        served_chain(&app, &token, &cred),
        [ee.clone(), ca.der.clone()]
    );

    // One audit record with both serial numbers and the issuer; the chain verifies.
    assert_eq!(audited(), 1);
    let detailed = env.db_i64(&format!(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'import_certificate' \
         AND detail LIKE '%{}%' AND detail LIKE '%{}%' AND detail LIKE '%TSP Qualified CA%'",
        serial(&old_ee),
        serial(&new_ee)
    ));
    assert_eq!(detailed, 1);
    audit_verifies(&env);
    assert!(!env.server_log().contains("panicked"));
}
