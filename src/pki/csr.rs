//! PKCS#10 certification requests (RFC 2986) for a credential's key, signed by that key where
//! it lives (the token), for a CA other than Quill's development CA to certify.

use std::cell::Cell;

use der::Decode as _;
use x509_cert::request::CertReq;

use super::cert::{der_of, parse_x509};
use super::chain::verify_signature;
use super::keys::SpkiKey;
use super::{PkiError, dn};

/// Something that signs with a credential's private key (in Quill: inside the token).
pub trait SubjectKey {
    /// DER SubjectPublicKeyInfo of the key (RSA, EC P-256 or P-384).
    fn spki_der(&self) -> &[u8];
    /// The signature over `msg` in the form an X.509 signature value takes: RSA PKCS#1 v1.5
    /// over SHA-256; ECDSA (DER `Ecdsa-Sig-Value`) over SHA-256 on P-256, SHA-384 on P-384.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError>;
}

/// rcgen's view of a [`SubjectKey`], keeping the first signing error (rcgen only says
/// `RemoteKeyError`).
struct RequestSigner<'a> {
    key: &'a dyn SubjectKey,
    public: SpkiKey,
    error: Cell<Option<PkiError>>,
}

impl rcgen::PublicKeyData for RequestSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        rcgen::PublicKeyData::der_bytes(&self.public)
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        rcgen::PublicKeyData::algorithm(&self.public)
    }
}

impl rcgen::SigningKey for RequestSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.key.sign(msg).map_err(|e| {
            self.error.set(Some(e));
            rcgen::Error::RemoteKeyError
        })
    }
}

/// A PEM `CERTIFICATE REQUEST` for `key`, whose subject is that of `cert_der` (the
/// credential's current certificate, which must be for `key`), with no attributes, signed by
/// `key` with sha256WithRSAEncryption, ecdsa-with-SHA256 (P-256) or ecdsa-with-SHA384 (P-384).
/// The request is parsed again and its signature verified before it is returned.
pub fn certification_request(key: &dyn SubjectKey, cert_der: &[u8]) -> Result<String, PkiError> {
    let cert = parse_x509(cert_der)?;
    let subject = &cert.tbs_certificate.subject;
    if der_of(&cert.tbs_certificate.subject_public_key_info)? != key.spki_der() {
        return Err(PkiError::Key(
            "the key is not the key of the certificate".to_owned(),
        ));
    }
    let signer = RequestSigner {
        key,
        public: SpkiKey::from_spki_der(key.spki_der())?,
        error: Cell::new(None),
    };
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = dn::to_rcgen(subject)?;
    let csr = params.serialize_request(&signer).map_err(|e| {
        signer
            .error
            .take()
            .unwrap_or_else(|| PkiError::Rcgen(e.to_string()))
    })?;

    let req = CertReq::from_der(csr.der()).map_err(|e| PkiError::Parse(e.to_string()))?;
    if req.info.subject != *subject {
        return Err(PkiError::Rcgen(
            "the request's subject differs from the certificate's".to_owned(),
        ));
    }
    if der_of(&req.info.public_key)? != key.spki_der() {
        return Err(PkiError::Key(
            "SubjectPublicKeyInfo is not in canonical form".to_owned(),
        ));
    }
    let signature = req
        .signature
        .as_bytes()
        .ok_or_else(|| PkiError::Parse("signature has unused bits".to_owned()))?;
    verify_signature(
        req.algorithm.oid,
        signature,
        &der_of(&req.info)?,
        key.spki_der(),
    )
    .map_err(|e| PkiError::Key(format!("the request's signature: {e}")))?;
    csr.pem().map_err(|e| PkiError::Rcgen(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::testkey::TestCaKey;
    use crate::pki::{CaKey as _, issue_end_entity, self_signed_ca};

    enum Soft {
        P256(TestCaKey),
        P384(p384::ecdsa::SigningKey, Vec<u8>),
        Rsa(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>, Vec<u8>),
    }

    impl SubjectKey for Soft {
        fn spki_der(&self) -> &[u8] {
            match self {
                Soft::P256(k) => k.spki_der(),
                Soft::P384(_, spki) | Soft::Rsa(_, spki) => spki,
            }
        }

        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
            use rsa::signature::{SignatureEncoding as _, Signer as _};
            Ok(match self {
                Soft::P256(k) => k.sign_sha256(msg)?,
                Soft::P384(k, _) => {
                    let sig: p384::ecdsa::Signature = k.sign(msg);
                    sig.to_der().as_bytes().to_vec()
                }
                Soft::Rsa(k, _) => k.sign(msg).to_vec(),
            })
        }
    }

    fn keys() -> Vec<(Soft, const_oid::ObjectIdentifier)> {
        use const_oid::db::rfc5912::{
            ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, SHA_256_WITH_RSA_ENCRYPTION,
        };
        use p384::pkcs8::EncodePublicKey as _;
        let p384 = p384::ecdsa::SigningKey::random(&mut p384::elliptic_curve::rand_core::OsRng);
        let p384_spki = p384.verifying_key().to_public_key_der().unwrap().into_vec();
        let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let rsa_spki = rsa.to_public_key().to_public_key_der().unwrap().into_vec();
        vec![
            (Soft::P256(TestCaKey::new()), ECDSA_WITH_SHA_256),
            (Soft::P384(p384, p384_spki), ECDSA_WITH_SHA_384),
            (
                Soft::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(rsa)), rsa_spki),
                SHA_256_WITH_RSA_ENCRYPTION,
            ),
        ]
    }

    #[test]
    fn requests_carry_the_subject_and_key_and_verify() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
        let ca_key = TestCaKey::new();
        let ca = self_signed_ca(&ca_key, "Quill Test CA", now).unwrap();
        for (key, alg) in keys() {
            let cert =
                issue_end_entity(&ca, &ca_key, key.spki_der(), "Ålice, Example", 30, now).unwrap();
            let pem = certification_request(&key, &cert).unwrap();
            let (label, der) = der::pem::decode_vec(pem.as_bytes()).unwrap();
            assert_eq!(label, "CERTIFICATE REQUEST");
            let req = CertReq::from_der(&der).unwrap();
            assert_eq!(req.algorithm.oid, alg);
            assert_eq!(der_of(&req.info.public_key).unwrap(), key.spki_der());
            assert_eq!(
                req.info.subject,
                parse_x509(&cert).unwrap().tbs_certificate.subject
            );
            assert!(req.info.attributes.is_empty());
            verify_signature(
                alg,
                req.signature.raw_bytes(),
                &der_of(&req.info).unwrap(),
                key.spki_der(),
            )
            .unwrap();
            // Not the certificate's key: refused.
            let other = Soft::P256(TestCaKey::new());
            assert!(certification_request(&other, &cert).is_err());
        }
    }
}
