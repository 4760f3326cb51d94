//! Known-structure tests of the CMS builder with a software P-256 signer.

use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::SignedData;
use der::{Decode, Encode, Tagged as _};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};

use super::*;
use crate::pki::testkey::TestCaKey;
use crate::pki::{CaKey, issue_end_entity, self_signed_ca};

struct Fixture {
    signer: TestCaKey,
    chain: Vec<Vec<u8>>,
}

fn fixture() -> Fixture {
    let now = time::OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
    let ca_key = TestCaKey::new();
    let ca = self_signed_ca(&ca_key, "Test CA", now).unwrap();
    let signer = TestCaKey::new();
    let ee = issue_end_entity(&ca, &ca_key, signer.spki_der(), "Signer", 30, now).unwrap();
    Fixture {
        signer,
        chain: vec![ee, ca],
    }
}

fn decode(der: &[u8]) -> SignedData {
    let ci = ContentInfo::from_der(der).unwrap();
    assert_eq!(ci.content_type, ID_SIGNED_DATA);
    ci.content.decode_as::<SignedData>().unwrap()
}

fn sign_with(f: &Fixture, s: &Signing<'_>) -> Built {
    sign(s, |digest| -> Result<Vec<u8>, ()> {
        let sig: p256::ecdsa::Signature = f.signer.key.sign_prehash(digest).unwrap();
        Ok(sig.to_der().as_bytes().to_vec())
    })
    .unwrap()
    .unwrap()
}

#[test]
fn attached_cades_has_the_baseline_attributes_and_verifies() {
    let f = fixture();
    let content = b"hello CAdES";
    let algorithm =
        SignerAlgorithm::for_sign_algo(SignAlgo::Ecdsa(HashAlg::Sha256), HashAlg::Sha256, None)
            .unwrap();
    let md = HashAlg::Sha256.digest(content);
    let mut built = sign_with(
        &f,
        &Signing {
            content_type: ID_DATA,
            content: Some(content),
            message_digest: &md,
            signing_time: Some(1_750_000_100),
            chain: &f.chain,
            algorithm: &algorithm,
        },
    );
    built
        .add_unsigned(ID_SIGNATURE_TIME_STAMP, &[0x05, 0x00])
        .unwrap();
    let sd = decode(&built.to_der().unwrap());
    assert_eq!(sd.version, CmsVersion::V1);
    let econtent = sd.encap_content_info.econtent.unwrap();
    assert_eq!(econtent.tag(), der::Tag::OctetString);
    assert_eq!(econtent.value(), content);
    assert_eq!(sd.certificates.unwrap().0.len(), 2);
    let si = sd.signer_infos.0.get(0).unwrap();
    let attrs = si.signed_attrs.as_ref().unwrap();
    let oids: Vec<String> = attrs.iter().map(|a| a.oid.to_string()).collect();
    for want in [
        "1.2.840.113549.1.9.3",
        "1.2.840.113549.1.9.4",
        "1.2.840.113549.1.9.5",
        "1.2.840.113549.1.9.16.2.47",
    ] {
        assert!(oids.contains(&want.to_string()), "{want} in {oids:?}");
    }
    // The signature covers the DER SET OF the signed attributes.
    let digest = HashAlg::Sha256.digest(&attrs.to_der().unwrap());
    let sig = p256::ecdsa::Signature::from_der(si.signature.as_bytes()).unwrap();
    f.signer
        .key
        .verifying_key()
        .verify_prehash(&digest, &sig)
        .unwrap();
    assert_eq!(built.signature_value().unwrap(), si.signature.as_bytes());
    let unsigned = si.unsigned_attrs.as_ref().unwrap();
    assert_eq!(unsigned.len(), 1);
    // ESS signing-certificate-v2 names the signer certificate by its SHA-256.
    let ess = attrs
        .iter()
        .find(|a| a.oid == ID_SIGNING_CERTIFICATE_V2)
        .unwrap();
    let v2: ess::SigningCertificateV2 = ess.values.get(0).unwrap().decode_as().unwrap();
    let cert_id = v2.certs.first().unwrap();
    assert!(cert_id.hash_algorithm.is_none(), "SHA-256 is the DEFAULT");
    assert_eq!(
        cert_id.cert_hash.as_bytes(),
        HashAlg::Sha256.digest(f.chain.first().unwrap())
    );
}

#[test]
fn detached_and_non_data_content_and_signer_errors() {
    let f = fixture();
    let algorithm =
        SignerAlgorithm::for_sign_algo(SignAlgo::Ecdsa(HashAlg::Sha384), HashAlg::Sha384, None)
            .unwrap();
    let md = HashAlg::Sha384.digest(b"x");
    let s = Signing {
        content_type: ID_CT_TST_INFO,
        content: None,
        message_digest: &md,
        signing_time: Some(2_600_000_000),
        chain: &f.chain,
        algorithm: &algorithm,
    };
    let sd = decode(&sign_with(&f, &s).to_der().unwrap());
    assert_eq!(
        sd.version,
        CmsVersion::V3,
        "eContentType other than id-data"
    );
    assert!(sd.encap_content_info.econtent.is_none());
    let si = sd.signer_infos.0.get(0).unwrap();
    assert_eq!(
        si.signature_algorithm.oid.to_string(),
        "1.2.840.10045.4.3.3"
    );
    // A signing time after 2049 is a GeneralizedTime (tag 0x18).
    let time = si
        .signed_attrs
        .as_ref()
        .unwrap()
        .iter()
        .find(|a| a.oid == ID_SIGNING_TIME)
        .unwrap();
    assert_eq!(time.values.get(0).unwrap().tag(), der::Tag::GeneralizedTime);
    // The token's error comes back as the inner error.
    let refused = sign(&s, |_| Err::<Vec<u8>, &str>("token removed")).unwrap();
    assert!(matches!(refused, Err("token removed")));
    // No certificate: an encoding error.
    let empty = Signing { chain: &[], ..s };
    assert!(sign(&empty, |_| Ok::<_, ()>(vec![])).is_err());
}

#[test]
fn signer_algorithms() {
    let rsa = SignerAlgorithm::for_sign_algo(SignAlgo::RsaPkcs1, HashAlg::Sha512, None).unwrap();
    assert_eq!(rsa.signature.oid.to_string(), "1.2.840.113549.1.1.13");
    assert_eq!(rsa.signature.parameters.unwrap().to_der().unwrap(), [5, 0]);
    let params = crate::crypto::pss::encode(&crate::crypto::PssParams {
        hash: HashAlg::Sha256,
        mgf_hash: HashAlg::Sha256,
        salt_len: 32,
    });
    let pss =
        SignerAlgorithm::for_sign_algo(SignAlgo::RsaPss, HashAlg::Sha256, Some(&params)).unwrap();
    assert_eq!(pss.signature.oid.to_string(), "1.2.840.113549.1.1.10");
    assert_eq!(pss.signature.parameters.unwrap().to_der().unwrap(), params);
    assert!(SignerAlgorithm::for_sign_algo(SignAlgo::RsaPss, HashAlg::Sha256, None).is_err());
}
