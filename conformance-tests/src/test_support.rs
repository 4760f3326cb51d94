//! Test fixtures shared by the unit tests: throwaway P-256 keys and certificates.

use der::asn1::BitString;
use der::{Decode, Encode};
use p256::pkcs8::EncodePublicKey;
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::{Certificate, TbsCertificate, name::Name, serial_number::SerialNumber, time};

use crate::verify::{self, Leaf};

/// The P-256 key whose scalar is `seed` repeated.
pub fn p256_key(seed: u8) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap()
}

/// A certificate for `key` with `serial` and `extensions`, valid for a minute, as DER. It is
/// not signed (the signature is zeros): the suite never verifies a certificate's own signature.
pub fn certificate(
    key: &p256::ecdsa::SigningKey,
    serial: u8,
    extensions: Option<Vec<Extension>>,
) -> Vec<u8> {
    let algo = AlgorithmIdentifierOwned {
        oid: der::oid::ObjectIdentifier::new_unwrap(verify::ECDSA_SHA256),
        parameters: None,
    };
    let spki_der = key.verifying_key().to_public_key_der().unwrap();
    let tbs = TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: SerialNumber::new(&[serial]).unwrap(),
        signature: algo.clone(),
        issuer: Name::default(),
        validity: time::Validity::from_now(std::time::Duration::from_secs(60)).unwrap(),
        subject: Name::default(),
        subject_public_key_info: spki::SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
            .unwrap(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions,
    };
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: algo,
        signature: BitString::from_bytes(&[0; 8]).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// The key of `seed`, a certificate for it with `serial` (no extensions) and the suite's view
/// of the certificate's key.
pub fn key_and_cert(seed: u8, serial: u8) -> (p256::ecdsa::SigningKey, Vec<u8>, Leaf) {
    let key = p256_key(seed);
    let der = certificate(&key, serial, None);
    let leaf = verify::leaf_key(&Certificate::from_der(&der).unwrap()).unwrap();
    (key, der, leaf)
}
