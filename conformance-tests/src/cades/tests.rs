//! Unit tests of the CAdES checks: B-B detached, attached and detached-document signatures, and
//! B-T time-stamps, each verifying and each tampering caught.

use super::fixtures::*;
use super::*;
use crate::test_support::key_and_cert;
use der::asn1::{GeneralizedTime, Int, SetOfVec};
use p256::ecdsa::SigningKey;
use x509_tsp::{MessageImprint, TspVersion, TstInfo};

/// A TimeStampToken by the TSA `tsa` (key, certificate) of `imprint` (SHA-256) at `at`.
fn token(tsa: (&SigningKey, &[u8]), imprint: &[u8], at: u64) -> Vec<u8> {
    let tst = TstInfo {
        version: TspVersion::V1,
        policy: oid("0.4.0.2023.1.1"),
        message_imprint: MessageImprint {
            hash_algorithm: spki::AlgorithmIdentifier {
                oid: oid(HashAlg::Sha256.oid()),
                parameters: None,
            },
            hashed_message: OctetString::new(imprint).unwrap(),
        },
        serial_number: Int::new(&[1]).unwrap(),
        gen_time: GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(at)).unwrap(),
        accuracy: None,
        ordering: false,
        nonce: None,
        tsa: None,
        extensions: None,
    }
    .to_der()
    .unwrap();
    let (sk, cert) = tsa;
    let si = signer(
        sk,
        cert,
        ID_CT_TST_INFO,
        &HashAlg::Sha256.digest(&tst),
        vec![],
    );
    content_info(si, ID_CT_TST_INFO, Some(&tst), &[cert])
}

/// A detached CAdES-B-T over `digest` by `sk`: `stamp` makes its time-stamp token from
/// the signature value (None: no unsigned attribute at all).
fn cades_t(
    sk: &SigningKey,
    cert_der: &[u8],
    digest: &[u8],
    stamp: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> Vec<u8> {
    let mut si = cades_signer(sk, cert_der, digest);
    if let Some(t) = stamp(si.signature.as_bytes()) {
        let unsigned = Attribute {
            oid: oid(ID_SIGNATURE_TIME_STAMP),
            values: SetOfVec::try_from(vec![Any::from_der(&t).unwrap()]).unwrap(),
        };
        si.unsigned_attrs = Some(SetOfVec::try_from(vec![unsigned]).unwrap());
    }
    content_info(si, ID_DATA, None, &[])
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_detached_cades_b_b_verifies_and_tampering_is_caught() {
    let (sk, cert, leaf) = key_and_cert(7, 1);
    let plan = p256_plan(&leaf);
    let digest = HashAlg::Sha256.digest(b"document");
    let cms = cades(&sk, &cert, &digest);
    let ok = verify_detached(&leaf, &cert, &plan, &digest, &cms).unwrap();
    assert!(
        ok.contains("detached") && ok.contains("signing-certificate-v2 with the SHA-256"),
        "{ok}"
    );

    // Another hash than the one authorized.
    let other = HashAlg::Sha256.digest(b"other");
    let e = verify_detached(&leaf, &cert, &plan, &other, &cms).unwrap_err();
    assert!(e.contains("message-digest is"), "{e}");
    // The signature value's last byte (the DER's last) changed.
    let mut bad = cms.clone();
    *bad.last_mut().unwrap() ^= 1;
    let e = verify_detached(&leaf, &cert, &plan, &digest, &bad).unwrap_err();
    assert!(e.contains("does not verify"), "{e}");
    // signing-certificate-v2 and sid naming another certificate (same key, other serial).
    let (_, cert2, _) = key_and_cert(7, 2);
    let e = verify_detached(&leaf, &cert2, &plan, &digest, &cms).unwrap_err();
    assert!(e.contains("sid names"), "{e}");
    // Not CMS at all.
    assert!(verify_detached(&leaf, &cert, &plan, &digest, b"\x30\x00").is_err());
}

#[test]
fn a_cades_b_t_verifies_and_a_bad_time_stamp_is_caught() {
    let (sk, cert, leaf) = key_and_cert(7, 1);
    let (tsa_sk, tsa_cert, _) = key_and_cert(9, 3);
    let tsa = (&tsa_sk, tsa_cert.as_slice());
    let plan = p256_plan(&leaf);
    let digest = HashAlg::Sha256.digest(b"document");
    let t = now();
    let check = |cms: &[u8]| verify_detached_t(&leaf, &cert, &plan, &digest, cms, t);

    let good = cades_t(&sk, &cert, &digest, |sig| {
        Some(token(tsa, &HashAlg::Sha256.digest(sig), t - 5))
    });
    let ok = check(&good).unwrap();
    assert!(
        ok.contains("message-digest = the authorized hash")
            && ok.contains("messageImprint = the SHA-256 of the signature value")
            && ok.contains("the TSA's signature (ecdsa-with-SHA256")
            && ok.contains("(-5 s)"),
        "{ok}"
    );
    // The B-B part is still checked.
    let other = HashAlg::Sha256.digest(b"other");
    let e = verify_detached_t(&leaf, &cert, &plan, &other, &good, t).unwrap_err();
    assert!(e.contains("message-digest is"), "{e}");

    // No time-stamp: a CAdES-B-B is no B-T.
    let e = check(&cades(&sk, &cert, &digest)).unwrap_err();
    assert!(
        e.contains("0 signature-time-stamp unsigned attributes"),
        "{e}"
    );
    // An imprint of something else than the signature value.
    let wrong = cades_t(&sk, &cert, &digest, |_| {
        Some(token(tsa, &HashAlg::Sha256.digest(b"something else"), t))
    });
    let e = check(&wrong).unwrap_err();
    assert!(e.contains("messageImprint is not the SHA-256"), "{e}");
    // The TSA's signature broken (the token's DER ends with it).
    let broken = cades_t(&sk, &cert, &digest, |sig| {
        let mut tok = token(tsa, &HashAlg::Sha256.digest(sig), t);
        *tok.last_mut().unwrap() ^= 1;
        Some(tok)
    });
    let e = check(&broken).unwrap_err();
    assert!(
        e.contains("the TSA's signature") && e.contains("does not verify"),
        "{e}"
    );
    // A token whose signer's certificate is not in it (the sid names another serial).
    let (_, stranger, _) = key_and_cert(9, 4);
    let orphan = cades_t(&sk, &cert, &digest, |sig| {
        let tok = token(tsa, &HashAlg::Sha256.digest(sig), t);
        let sd = signed_data(&tok, "token").unwrap();
        let si = one_signer(&sd, "token").unwrap().clone();
        let tst = econtent(&sd).unwrap().unwrap();
        Some(content_info(
            si,
            ID_CT_TST_INFO,
            Some(&tst),
            &[stranger.as_slice()],
        ))
    });
    let e = check(&orphan).unwrap_err();
    assert!(e.contains("carries no certificate"), "{e}");
    // genTime 20 minutes off.
    let late = cades_t(&sk, &cert, &digest, |sig| {
        Some(token(tsa, &HashAlg::Sha256.digest(sig), t + 1200))
    });
    let e = check(&late).unwrap_err();
    assert!(e.contains("genTime") && e.contains("1200 s"), "{e}");
}

#[test]
fn an_attached_cades_verifies_and_wrong_content_is_caught() {
    let (sk, cert, leaf) = key_and_cert(7, 1);
    let plan = p256_plan(&leaf);
    let doc = b"the whole document".as_slice();
    let digest = HashAlg::Sha256.digest(doc);
    let attached = |content: &[u8]| {
        content_info(
            cades_signer(&sk, &cert, &digest),
            ID_DATA,
            Some(content),
            &[],
        )
    };
    let ok = verify_attached(&leaf, &cert, &plan, doc, &attached(doc)).unwrap();
    assert!(
        ok.contains("attached (eContent is the 18-byte document)")
            && ok.contains("message-digest = the document's digest"),
        "{ok}"
    );
    // Other content than the document (the message-digest still the document's).
    let e = verify_attached(&leaf, &cert, &plan, doc, &attached(b"another document")).unwrap_err();
    assert!(e.contains("is not the document sent"), "{e}");
    // A detached signature is no attached one, and the other way round.
    let e = verify_attached(&leaf, &cert, &plan, doc, &cades(&sk, &cert, &digest)).unwrap_err();
    assert!(e.contains("must carry the document"), "{e}");
    let e = verify_detached(&leaf, &cert, &plan, &digest, &attached(doc)).unwrap_err();
    assert!(e.contains("must not carry the content"), "{e}");
    // Signed over another document's digest, carrying this one.
    let other = content_info(
        cades_signer(&sk, &cert, &HashAlg::Sha256.digest(b"x")),
        ID_DATA,
        Some(doc),
        &[],
    );
    let e = verify_attached(&leaf, &cert, &plan, doc, &other).unwrap_err();
    assert!(e.contains("not the document's digest"), "{e}");
}

#[test]
fn a_detached_cades_of_a_document_verifies_and_a_wrong_one_is_caught() {
    let (sk, cert, leaf) = key_and_cert(7, 1);
    let plan = p256_plan(&leaf);
    let doc = b"a whole document, signed detached".as_slice();
    let good = cades(&sk, &cert, &HashAlg::Sha256.digest(doc));
    let ok = verify_detached_document(&leaf, &cert, &plan, doc, &good).unwrap();
    assert!(
        ok.contains("detached,") && ok.contains("message-digest = the document's digest"),
        "{ok}"
    );
    // Signed over another document's digest.
    let e = verify_detached_document(&leaf, &cert, &plan, b"another document", &good).unwrap_err();
    assert!(e.contains("not the document's digest"), "{e}");
    // Signed over the digest of the document's base64 (what was sent, not the document).
    let b64 = crate::formats::b64(doc);
    let of_b64 = cades(&sk, &cert, &HashAlg::Sha256.digest(b64.as_bytes()));
    let e = verify_detached_document(&leaf, &cert, &plan, doc, &of_b64).unwrap_err();
    assert!(e.contains("not the document's digest"), "{e}");
    // Attached where detached was asked: the document is carried.
    let attached = cades_attached(&sk, &cert, doc);
    let e = verify_detached_document(&leaf, &cert, &plan, doc, &attached).unwrap_err();
    assert!(e.contains("must not carry the content"), "{e}");
    // The signature value broken.
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    let e = verify_detached_document(&leaf, &cert, &plan, doc, &bad).unwrap_err();
    assert!(e.contains("does not verify"), "{e}");
}
