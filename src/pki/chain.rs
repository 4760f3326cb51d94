//! Certificates from a CA other than Quill's development CA (a trust service provider's): the
//! signature check of one certificate (or certification request) by another's key, with
//! RustCrypto, and the checks a certificate chain must pass before it replaces a credential's.

use der::Decode as _;
use der::asn1::ObjectIdentifier;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;

use super::cert::{der_of, is_ca, parse_x509};
use super::{CertInfo, PkiError, Validity, generalized_time};
use crate::crypto::HashAlg;

const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// The most certificates an imported chain may hold (end entity and issuers).
pub const MAX_CHAIN: usize = 10;

/// The signature algorithms accepted: RSA PKCS#1 v1.5 and ECDSA, with SHA-256/384/512.
fn signature_algorithm(oid: ObjectIdentifier) -> Option<(bool, HashAlg)> {
    use const_oid::db::rfc5912::{
        ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512, SHA_256_WITH_RSA_ENCRYPTION,
        SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
    };
    Some(match oid {
        SHA_256_WITH_RSA_ENCRYPTION => (true, HashAlg::Sha256),
        SHA_384_WITH_RSA_ENCRYPTION => (true, HashAlg::Sha384),
        SHA_512_WITH_RSA_ENCRYPTION => (true, HashAlg::Sha512),
        ECDSA_WITH_SHA_256 => (false, HashAlg::Sha256),
        ECDSA_WITH_SHA_384 => (false, HashAlg::Sha384),
        ECDSA_WITH_SHA_512 => (false, HashAlg::Sha512),
        _ => return None,
    })
}

/// Check that `signature` over `signed` verifies under the key `signer_spki_der` (DER
/// SubjectPublicKeyInfo: RSA, EC P-256 or P-384) with the signature algorithm `algorithm`
/// (sha{256,384,512}WithRSAEncryption or ecdsa-with-SHA{256,384,512}).
pub(crate) fn verify_signature(
    algorithm: ObjectIdentifier,
    signature: &[u8],
    signed: &[u8],
    signer_spki_der: &[u8],
) -> Result<(), PkiError> {
    let (rsa, hash) = signature_algorithm(algorithm)
        .ok_or_else(|| PkiError::Key(format!("unsupported signature algorithm {algorithm}")))?;
    let spki = SubjectPublicKeyInfoRef::from_der(signer_spki_der)
        .map_err(|e| PkiError::Parse(format!("SubjectPublicKeyInfo: {e}")))?;
    let digest = hash.digest(signed);
    let bad = || PkiError::Key("the signature does not verify".to_owned());
    let key_error = |e: &dyn std::fmt::Display| PkiError::Key(format!("signer's key: {e}"));
    match (rsa, spki.algorithm.oid) {
        (true, OID_RSA_ENCRYPTION) => {
            use rsa::pkcs8::DecodePublicKey as _;
            let key = rsa::RsaPublicKey::from_public_key_der(signer_spki_der)
                .map_err(|e| key_error(&e))?;
            let digest_info =
                crate::crypto::digest_info(hash, &digest).map_err(|e| key_error(&e))?;
            key.verify(rsa::Pkcs1v15Sign::new_unprefixed(), &digest_info, signature)
                .map_err(|_| bad())
        }
        (false, OID_EC_PUBLIC_KEY) => match super::keys::named_curve(&spki) {
            Some(OID_P256) => {
                use p256::pkcs8::DecodePublicKey as _;
                let key = p256::ecdsa::VerifyingKey::from_public_key_der(signer_spki_der)
                    .map_err(|e| key_error(&e))?;
                let sig = p256::ecdsa::DerSignature::from_bytes(signature)
                    .map_err(|_| PkiError::Parse("malformed ECDSA signature".to_owned()))?;
                key.verify_prehash(&digest, &sig).map_err(|_| bad())
            }
            Some(OID_P384) => {
                use p384::pkcs8::DecodePublicKey as _;
                let key = p384::ecdsa::VerifyingKey::from_public_key_der(signer_spki_der)
                    .map_err(|e| key_error(&e))?;
                let sig = p384::ecdsa::DerSignature::from_bytes(signature)
                    .map_err(|_| PkiError::Parse("malformed ECDSA signature".to_owned()))?;
                key.verify_prehash(&digest, &sig).map_err(|_| bad())
            }
            _ => Err(PkiError::Key(
                "unsupported elliptic curve (P-256 and P-384 are)".to_owned(),
            )),
        },
        (_, key_alg) => Err(PkiError::Key(format!(
            "signature algorithm {algorithm} does not fit the signer's key ({key_alg})"
        ))),
    }
}

/// Check that certificate `cert` carries a valid signature by the key `issuer_spki_der`.
pub(crate) fn verify_cert_signed_by(
    cert: &Certificate,
    issuer_spki_der: &[u8],
) -> Result<(), PkiError> {
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(PkiError::Parse(
            "the signature algorithm differs from the one inside the certificate".to_owned(),
        ));
    }
    let signature = cert
        .signature
        .as_bytes()
        .ok_or_else(|| PkiError::Parse("signature has unused bits".to_owned()))?;
    verify_signature(
        cert.signature_algorithm.oid,
        signature,
        &der_of(&cert.tbs_certificate)?,
        issuer_spki_der,
    )
}

/// The DER of each `CERTIFICATE` in PEM text, in order. Text outside the PEM blocks is ignored
/// (RFC 7468 §2: explanatory text, as `openssl` writes before each certificate); anything else
/// (no certificate, another label, broken Base64, a block without its end) is refused.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, PkiError> {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END CERTIFICATE-----";
    let text = std::str::from_utf8(pem)
        .map_err(|_| PkiError::Parse("the chain file is not PEM text".to_owned()))?;
    let mut certs = Vec::new();
    let mut rest = text;
    while let Some(begin) = rest.find(BEGIN) {
        let block = rest.get(begin..).unwrap_or_default();
        let n = certs.len() + 1;
        let end = block
            .find(END)
            .map(|at| at + END.len())
            .ok_or_else(|| PkiError::Parse(format!("PEM block {n}: no {END} line")))?;
        let (this, after) = block.split_at_checked(end).unwrap_or((block, ""));
        let (label, der) = der::pem::decode_vec(this.as_bytes())
            .map_err(|e| PkiError::Parse(format!("PEM block {n}: {e}")))?;
        if label != "CERTIFICATE" {
            return Err(PkiError::Parse(format!(
                "PEM block {n} is a {label}, not a CERTIFICATE"
            )));
        }
        if n > MAX_CHAIN {
            return Err(PkiError::Parse(format!(
                "more than {MAX_CHAIN} certificates in the chain file"
            )));
        }
        certs.push(der);
        rest = after;
    }
    if certs.is_empty() {
        return Err(PkiError::Parse(
            "no PEM CERTIFICATE in the chain file".to_owned(),
        ));
    }
    Ok(certs)
}

/// A chain a CA issued for a credential's key, checked by [`check_issued_chain`].
#[derive(Debug)]
pub struct IssuedChain {
    /// The DER certificates back to back, end entity first: as a credential stores its chain.
    pub chain: Vec<u8>,
    /// The end-entity certificate.
    pub end_entity: CertInfo,
    /// How many certificates (end entity included).
    pub len: usize,
}

/// Check a certificate chain (DER certificates, end entity first, then its issuers in order)
/// that a CA issued for the key `key_spki_der`, at `now` (Unix seconds): every certificate
/// DER; the end entity's SubjectPublicKeyInfo exactly that key, not a CA and not expired
/// (not yet valid is allowed); at least one issuer; each certificate named and signed by the
/// next, which is a CA (basicConstraints cA TRUE); the last one, when self-issued, signed by
/// itself. Trust in the last certificate is the caller's (the operator's) decision.
pub fn check_issued_chain(
    certs: &[Vec<u8>],
    key_spki_der: &[u8],
    now: i64,
) -> Result<IssuedChain, PkiError> {
    let parsed = certs
        .iter()
        .enumerate()
        .map(|(i, der)| {
            let n = i + 1;
            let cert =
                parse_x509(der).map_err(|e| PkiError::Parse(format!("certificate {n}: {e}")))?;
            if der_of(&cert)? != *der {
                return Err(PkiError::Parse(format!(
                    "certificate {n} is not DER: encoding it again changes it"
                )));
            }
            Ok(cert)
        })
        .collect::<Result<Vec<_>, PkiError>>()?;
    let (Some(ee), Some(ee_der)) = (parsed.first(), certs.first()) else {
        return Err(PkiError::Parse("no certificate".to_owned()));
    };
    if der_of(&ee.tbs_certificate.subject_public_key_info)? != key_spki_der {
        return Err(PkiError::Key(
            "the end-entity certificate (the first) is not for this credential's key".to_owned(),
        ));
    }
    if is_ca(ee)? {
        return Err(PkiError::Parse(
            "the first certificate is a CA certificate, not the credential's end-entity \
             certificate"
                .to_owned(),
        ));
    }
    let end_entity = super::parse(ee_der)?;
    if Validity::at(end_entity.not_before, end_entity.not_after, now) == Validity::Expired {
        return Err(PkiError::Parse(format!(
            "the end-entity certificate expired at {}",
            generalized_time(end_entity.not_after)
        )));
    }
    if parsed.len() < 2 {
        return Err(PkiError::Parse(
            "only the end-entity certificate: add the certificates of the CA(s) that issued it, \
             issuer after subject"
                .to_owned(),
        ));
    }
    for (i, pair) in parsed.windows(2).enumerate() {
        let [child, parent] = pair else { continue };
        let (n, m) = (i + 1, i + 2);
        if !is_ca(parent)? {
            return Err(PkiError::Parse(format!(
                "certificate {m} is not a CA certificate (basicConstraints cA TRUE), yet \
                 certificate {n} should be issued by it"
            )));
        }
        if child.tbs_certificate.issuer != parent.tbs_certificate.subject {
            return Err(PkiError::Parse(format!(
                "certificate {n}'s issuer is not certificate {m}'s subject: the chain is out \
                 of order or incomplete"
            )));
        }
        let parent_key = der_of(&parent.tbs_certificate.subject_public_key_info)?;
        verify_cert_signed_by(child, &parent_key).map_err(|e| {
            PkiError::Key(format!(
                "certificate {n} is not signed by certificate {m}: {e}"
            ))
        })?;
    }
    if let Some(last) = parsed.last()
        && last.tbs_certificate.issuer == last.tbs_certificate.subject
    {
        let key = der_of(&last.tbs_certificate.subject_public_key_info)?;
        verify_cert_signed_by(last, &key).map_err(|e| {
            PkiError::Key(format!(
                "certificate {} is self-issued but not signed by its own key: {e}",
                parsed.len()
            ))
        })?;
    }
    Ok(IssuedChain {
        chain: certs.concat(),
        end_entity,
        len: certs.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::CaKey as _;
    use crate::pki::keys::SpkiKey;
    use crate::pki::testkey::TestCaKey;
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    };

    const NOW: i64 = 1_750_000_000;

    fn at(unix: i64) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn ca_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (p.not_before, p.not_after) = (at(NOW - 86_400), at(NOW + 3650 * 86_400));
        p
    }

    /// A "TSP" root (ECDSA P-384) and an end-entity certificate it issues for `spki`,
    /// valid from `from` to `to`, with QcCompliance + QcSSCD.
    fn tsp_chain(spki: &[u8], from: i64, to: i64) -> (Vec<u8>, Vec<u8>, KeyPair) {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let root_params = ca_params("TSP Root");
        let root = root_params.self_signed(&root_key).unwrap().der().to_vec();
        let issuer = Issuer::new(root_params, &root_key);
        let mut ee = CertificateParams::default();
        ee.distinguished_name.push(DnType::CommonName, "Alice");
        (ee.not_before, ee.not_after) = (at(from), at(to));
        // SEQUENCE { SEQUENCE { QcCompliance }, SEQUENCE { QcSSCD } }
        let qc =
            hex::decode("3014300806060400 8e46 0101 3008 0606 0400 8e46 0104".replace(' ', ""))
                .unwrap();
        ee.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 1, 3],
            qc,
        )];
        let subject = SpkiKey::from_spki_der(spki).unwrap();
        let ee = ee.signed_by(&subject, &issuer).unwrap().der().to_vec();
        (ee, root, root_key)
    }

    fn check(certs: &[&[u8]], key: &[u8]) -> Result<IssuedChain, PkiError> {
        let certs: Vec<Vec<u8>> = certs.iter().map(|c| c.to_vec()).collect();
        check_issued_chain(&certs, key, NOW)
    }

    fn pem(certs: &[&[u8]]) -> String {
        certs
            .iter()
            .map(|c| der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, c).unwrap())
            .collect()
    }

    #[test]
    fn a_chain_for_the_key_signed_in_order_is_accepted() {
        let key = TestCaKey::new();
        let (ee, root, _) = tsp_chain(key.spki_der(), NOW - 60, NOW + 86_400);
        let ok = check(&[&ee, &root], key.spki_der()).unwrap();
        assert_eq!(ok.chain, [ee.clone(), root.clone()].concat());
        assert_eq!(ok.len, 2);
        assert_eq!(ok.end_entity.qualifier, "eu_eidas_qes");
        assert_eq!(ok.end_entity.issuer_dn, "CN=TSP Root");
        // Not yet valid is allowed: it cannot sign until then.
        let (later, root2, _) = tsp_chain(key.spki_der(), NOW + 3600, NOW + 86_400);
        check(&[&later, &root2], key.spki_der()).unwrap();
        // PEM with explanatory text around the blocks.
        let text = format!("subject=CN=Alice\n{}junk\n{}\n", pem(&[&ee]), pem(&[&root]));
        assert_eq!(pem_certificates(text.as_bytes()).unwrap(), vec![ee, root]);
    }

    #[test]
    fn refusals() {
        let key = TestCaKey::new();
        let (ee, root, _) = tsp_chain(key.spki_der(), NOW - 60, NOW + 86_400);
        let err = |r: Result<IssuedChain, PkiError>| r.unwrap_err().to_string();
        // Another key.
        let other = TestCaKey::new();
        assert!(err(check(&[&ee, &root], other.spki_der())).contains("not for this credential"));
        // Wrong order, a missing issuer, a root that did not sign it.
        assert!(err(check(&[&root, &ee], key.spki_der())).contains("not for this credential"));
        assert!(err(check(&[&ee], key.spki_der())).contains("only the end-entity"));
        let (_, other_root, _) = tsp_chain(key.spki_der(), NOW - 60, NOW + 86_400);
        assert!(err(check(&[&ee, &other_root], key.spki_der())).contains("is not signed by"));
        // An issuer that is not a CA: the end entity itself.
        assert!(err(check(&[&ee, &ee], key.spki_der())).contains("not a CA certificate"));
        // Expired.
        let (old, old_root, _) = tsp_chain(key.spki_der(), NOW - 86_400, NOW - 1);
        assert!(err(check(&[&old, &old_root], key.spki_der())).contains("expired"));
        // A tampered signature.
        let mut bad = ee.clone();
        if let Some(last) = bad.last_mut() {
            *last ^= 1;
        }
        assert!(check(&[&bad, &root], key.spki_der()).is_err());
        // PEM that is not a chain.
        for junk in [
            "".to_owned(),
            "garbage".to_owned(),
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_owned(),
            "-----BEGIN CERTIFICATE-----\nMIIB\n".to_owned(),
            der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &ee).unwrap(),
        ] {
            assert!(pem_certificates(junk.as_bytes()).is_err(), "{junk:?}");
        }
        let eleven: Vec<&[u8]> = std::iter::repeat_n(ee.as_slice(), MAX_CHAIN + 1).collect();
        assert!(pem_certificates(pem(&eleven).as_bytes()).is_err());
        // Not a certificate inside the PEM.
        let not_cert = pem(&[b"\x30\x00"]);
        let certs = pem_certificates(not_cert.as_bytes()).unwrap();
        assert!(check_issued_chain(&certs, key.spki_der(), NOW).is_err());
    }

    /// RSA keys: RSA PKCS#1 v1.5 signatures verify, others do not.
    #[test]
    fn rsa_signatures() {
        use rsa::pkcs8::EncodePublicKey as _;
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let spki = key.to_public_key().to_public_key_der().unwrap().into_vec();
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(key);
        let sig = signer.sign(b"tbs").to_vec();
        let alg = const_oid::db::rfc5912::SHA_384_WITH_RSA_ENCRYPTION;
        verify_signature(alg, &sig, b"tbs", &spki).unwrap();
        assert!(verify_signature(alg, &sig, b"tbx", &spki).is_err());
        let sha256 = const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION;
        assert!(verify_signature(sha256, &sig, b"tbs", &spki).is_err());
        let ecdsa = const_oid::db::rfc5912::ECDSA_WITH_SHA_256;
        assert!(verify_signature(ecdsa, &sig, b"tbs", &spki).is_err());
    }
}
