//! The development CA: a self-signed P-256 CA certificate and end-entity signing certificates
//! issued with rcgen (built without its crypto backend, so serial numbers and key identifiers are
//! set here) and signed by a [`CaKey`] that lives in the token. Every certificate is parsed and
//! its signature verified before it is returned.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;

use super::cert::{parse_x509, verify_signed_by_p256};
use super::keys::{CaSigner, SpkiKey};
use super::{CaKey, PkiError, dn};

/// Organisation name of the development CA.
const CA_ORGANIZATION: &str = "Quill development CA";
/// Ten years, in days.
const CA_VALIDITY_DAYS: i64 = 3653;
/// Back-dating of `notBefore`, to tolerate small clock differences with relying parties.
const BACKDATE: Duration = Duration::minutes(1);

/// 16 random bytes with the top bit cleared (a positive INTEGER) and the next bit set, so the
/// serial is never zero and always encodes in exactly 16 bytes (126 random bits).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    SerialNumber::from(bytes.to_vec())
}

fn validity(now: OffsetDateTime, days: i64) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
    let out_of_range = || PkiError::Rcgen("validity period out of range".to_owned());
    let not_before = now.checked_sub(BACKDATE).ok_or_else(out_of_range)?;
    let not_after = now
        .checked_add(Duration::days(days))
        .ok_or_else(out_of_range)?;
    Ok((not_before, not_after))
}

/// Self-signed CA certificate (CN=<cn>, O=Quill development CA; basicConstraints CA:true,
/// pathLen 0, critical; keyUsage keyCertSign+cRLSign critical; SKI; valid from one minute before
/// `now` for 10 years).
pub fn self_signed_ca(
    key: &dyn CaKey,
    common_name: &str,
    now: OffsetDateTime,
) -> Result<Vec<u8>, PkiError> {
    let signer = CaSigner::new(key)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, CA_ORGANIZATION);
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::PreSpecified(signer.key_id());
    params.serial_number = Some(random_serial());
    (params.not_before, params.not_after) = validity(now, CA_VALIDITY_DAYS)?;
    let der = params
        .self_signed(&signer)
        .map_err(|e| signer.error(e))?
        .der()
        .to_vec();
    verify_signed_by_p256(&der, key.spki_der())?;
    Ok(der)
}

/// End-entity signing certificate for a key given as DER SPKI (RSA or EC P-256/P-384) — subject
/// CN=<cn>, keyUsage digitalSignature+contentCommitment(nonRepudiation) critical,
/// basicConstraints CA:false (critical), SKI/AKI, validity `now - 1 minute` to `now + days`,
/// issuer = the CA certificate's subject, encoded exactly as in the CA certificate.
pub fn issue_end_entity(
    ca_cert_der: &[u8],
    ca_key: &dyn CaKey,
    subject_spki_der: &[u8],
    common_name: &str,
    days: u32,
    now: OffsetDateTime,
) -> Result<Vec<u8>, PkiError> {
    issue(
        ca_cert_der,
        ca_key,
        subject_spki_der,
        common_name,
        days,
        now,
        false,
    )
}

/// DER of `ExtKeyUsageSyntax ::= SEQUENCE { id-kp-timeStamping }`.
const EKU_TIME_STAMPING: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
];
/// id-ce-extKeyUsage.
const OID_EXT_KEY_USAGE: [u64; 4] = [2, 5, 29, 37];

/// A time-stamping unit certificate (RFC 3161 §2.3): as [`issue_end_entity`], plus
/// extendedKeyUsage = timeStamping only, critical.
pub fn issue_time_stamping(
    ca_cert_der: &[u8],
    ca_key: &dyn CaKey,
    subject_spki_der: &[u8],
    common_name: &str,
    days: u32,
    now: OffsetDateTime,
) -> Result<Vec<u8>, PkiError> {
    issue(
        ca_cert_der,
        ca_key,
        subject_spki_der,
        common_name,
        days,
        now,
        true,
    )
}

fn issue(
    ca_cert_der: &[u8],
    ca_key: &dyn CaKey,
    subject_spki_der: &[u8],
    common_name: &str,
    days: u32,
    now: OffsetDateTime,
    time_stamping: bool,
) -> Result<Vec<u8>, PkiError> {
    let ca = parse_x509(ca_cert_der)?;
    let signer = CaSigner::new(ca_key)?;
    if ca.public_key().raw != ca_key.spki_der() {
        return Err(PkiError::Key(
            "CA key does not match the CA certificate".to_owned(),
        ));
    }
    if !ca.is_ca() {
        return Err(PkiError::Parse("issuer certificate is not a CA".to_owned()));
    }
    let ca_key_id = ca
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .unwrap_or_else(|| signer.key_id());
    let mut issuer_params = CertificateParams::default();
    issuer_params.distinguished_name = dn::to_rcgen(ca.subject())?;
    issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(ca_key_id);
    issuer_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = Issuer::new(issuer_params, &signer);

    let subject = SpkiKey::from_spki_der(subject_spki_der)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    params.use_authority_key_identifier_extension = true;
    if time_stamping {
        let mut eku = rcgen::CustomExtension::from_oid_content(
            &OID_EXT_KEY_USAGE,
            EKU_TIME_STAMPING.to_vec(),
        );
        eku.set_criticality(true);
        params.custom_extensions.push(eku);
    }
    params.key_identifier_method = KeyIdMethod::PreSpecified(subject.key_id());
    params.serial_number = Some(random_serial());
    (params.not_before, params.not_after) = validity(now, i64::from(days))?;
    let der = params
        .signed_by(&subject, &issuer)
        .map_err(|e| signer.error(e))?
        .der()
        .to_vec();

    let issued = parse_x509(&der)?;
    if issued.issuer().as_raw() != ca.subject().as_raw() {
        return Err(PkiError::Rcgen(
            "issuer name differs from the CA subject".to_owned(),
        ));
    }
    if issued.public_key().raw != subject_spki_der {
        return Err(PkiError::Key(
            "SubjectPublicKeyInfo is not in canonical form".to_owned(),
        ));
    }
    verify_signed_by_p256(&der, ca_key.spki_der())?;
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::keys::key_id;
    use crate::pki::testkey::{BrokenCaKey, TestCaKey};
    use p256::pkcs8::EncodePublicKey as _;
    use x509_parser::certificate::X509Certificate;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
    }

    fn ext_key_id(cert: &X509Certificate<'_>, want_aki: bool) -> Option<Vec<u8>> {
        cert.iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) if !want_aki => Some(id.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(aki) if want_aki => {
                    aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                }
                _ => None,
            })
    }

    #[test]
    fn self_signed_ca_is_a_ca_and_verifies() {
        let key = TestCaKey::new();
        let der = self_signed_ca(&key, "Quill Dev Root", now()).unwrap();
        let cert = parse_x509(&der).unwrap();
        assert_eq!(cert.subject().as_raw(), cert.issuer().as_raw());
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(!ku.value.digital_signature());
        let bits = cert.public_key().subject_public_key.data.to_vec();
        assert_eq!(ext_key_id(&cert, false), Some(key_id(&bits)));
        assert_eq!(cert.public_key().raw, key.spki_der());
        assert_eq!(cert.validity().not_before.timestamp(), 1_750_000_000 - 60);
        assert_eq!(
            cert.validity().not_after.timestamp(),
            1_750_000_000 + 3653 * 86_400
        );
        verify_signed_by_p256(&der, key.spki_der()).unwrap();
        let info = crate::pki::parse(&der).unwrap();
        assert_eq!(info.subject_dn, "CN=Quill Dev Root,O=Quill development CA");
    }

    #[test]
    fn issues_end_entity_certs_for_rsa_and_ec_keys() {
        let ca_key = TestCaKey::new();
        let ca_der = self_signed_ca(&ca_key, "Quill Dev Root", now()).unwrap();
        let ca = parse_x509(&ca_der).unwrap();
        let ca_ski = ext_key_id(&ca, false).unwrap();

        let mut rng = rsa::rand_core::OsRng;
        let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let rsa_spki = rsa::pkcs8::EncodePublicKey::to_public_key_der(&rsa_key.to_public_key())
            .unwrap()
            .into_vec();
        let p256_spki = TestCaKey::new()
            .key
            .verifying_key()
            .to_public_key_der()
            .unwrap();
        let p384_key = p384::ecdsa::SigningKey::random(&mut p384::elliptic_curve::rand_core::OsRng);
        let p384_spki = p384_key.verifying_key().to_public_key_der().unwrap();

        let mut serials = Vec::new();
        for spki in [
            rsa_spki.as_slice(),
            p256_spki.as_bytes(),
            p384_spki.as_bytes(),
        ] {
            let der =
                issue_end_entity(&ca_der, &ca_key, spki, "Alice Example", 365, now()).unwrap();
            let cert = parse_x509(&der).unwrap();
            let cn: Vec<&str> = cert
                .subject()
                .iter_common_name()
                .map(|a| a.as_str().unwrap())
                .collect();
            assert_eq!(cn, ["Alice Example"]);
            assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
            let ku = cert.key_usage().unwrap().unwrap();
            assert!(ku.critical && ku.value.digital_signature() && ku.value.non_repudiation());
            assert!(!ku.value.key_cert_sign());
            let bc = cert.basic_constraints().unwrap().unwrap();
            assert!(!bc.value.ca && !cert.is_ca());
            assert_eq!(cert.public_key().raw, spki);
            assert_eq!(ext_key_id(&cert, true), Some(ca_ski.clone()));
            let bits = cert.public_key().subject_public_key.data.to_vec();
            assert_eq!(ext_key_id(&cert, false), Some(key_id(&bits)));
            assert_eq!(cert.validity().not_before.timestamp(), 1_750_000_000 - 60);
            assert_eq!(
                cert.validity().not_after.timestamp(),
                1_750_000_000 + 365 * 86_400
            );
            assert_eq!(cert.raw_serial().len(), 16);
            assert_eq!(cert.raw_serial().first().map(|b| b & 0xc0), Some(0x40));
            serials.push(cert.raw_serial().to_vec());
            verify_signed_by_p256(&der, ca_key.spki_der()).unwrap();
        }
        serials.dedup();
        assert_eq!(serials.len(), 3);
    }

    #[test]
    fn time_stamping_certificates_have_only_a_critical_time_stamping_eku() {
        let ca_key = TestCaKey::new();
        let ca_der = self_signed_ca(&ca_key, "Quill Dev Root", now()).unwrap();
        let tsa = TestCaKey::new();
        let der =
            issue_time_stamping(&ca_der, &ca_key, tsa.spki_der(), "Quill TSA", 30, now()).unwrap();
        let cert = parse_x509(&der).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.critical);
        assert!(eku.value.time_stamping);
        assert!(!eku.value.any && !eku.value.code_signing && !eku.value.email_protection);
        assert!(eku.value.other.is_empty());
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.value.digital_signature());
        verify_signed_by_p256(&der, ca_key.spki_der()).unwrap();
        // Signing certificates carry no EKU.
        let ee = issue_end_entity(&ca_der, &ca_key, tsa.spki_der(), "x", 30, now()).unwrap();
        assert!(
            parse_x509(&ee)
                .unwrap()
                .extended_key_usage()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn refusals() {
        let ca_key = TestCaKey::new();
        let ca_der = self_signed_ca(&ca_key, "Quill Dev Root", now()).unwrap();
        let subject = TestCaKey::new();
        let spki = subject.spki_der();
        // A CA key that does not belong to the CA certificate.
        let wrong = issue_end_entity(&ca_der, &subject, spki, "x", 1, now());
        assert!(matches!(wrong, Err(PkiError::Key(_))));
        // The token's signing error reaches the caller.
        let broken = BrokenCaKey(TestCaKey::new());
        match self_signed_ca(&broken, "x", now()) {
            Err(PkiError::Key(msg)) => assert_eq!(msg, "token removed"),
            other => panic!("unexpected {other:?}"),
        }
        // An end-entity certificate cannot issue.
        let ee = issue_end_entity(&ca_der, &ca_key, ca_key.spki_der(), "x", 1, now()).unwrap();
        assert!(issue_end_entity(&ee, &ca_key, spki, "y", 1, now()).is_err());
        // Ed25519 subject keys and P-384 CA keys are not supported; garbage does not parse.
        let ed25519 = hex::decode(format!("302a300506032b6570032100{}", "11".repeat(32))).unwrap();
        let r = issue_end_entity(&ca_der, &ca_key, &ed25519, "x", 1, now());
        assert!(matches!(r, Err(PkiError::Key(_))));
        let r = issue_end_entity(&ca_der, &ca_key, b"junk", "x", 1, now());
        assert!(matches!(r, Err(PkiError::Parse(_))));
        let r = issue_end_entity(&ca_der, &ca_key, spki, "x", u32::MAX, now());
        assert!(matches!(r, Err(PkiError::Rcgen(_))), "{r:?}");
        let p384 = P384CaKey(
            p384::ecdsa::SigningKey::random(&mut p384::elliptic_curve::rand_core::OsRng)
                .verifying_key()
                .to_public_key_der()
                .unwrap()
                .into_vec(),
        );
        assert!(matches!(
            self_signed_ca(&p384, "x", now()),
            Err(PkiError::Key(_))
        ));
    }

    struct P384CaKey(Vec<u8>);

    impl CaKey for P384CaKey {
        fn spki_der(&self) -> &[u8] {
            &self.0
        }

        fn sign_sha256(&self, _msg: &[u8]) -> Result<Vec<u8>, PkiError> {
            Err(PkiError::Key("unreachable".to_owned()))
        }
    }
}
