//! The development CA: a self-signed P-256 CA certificate and end-entity signing certificates
//! issued with rcgen (built without its crypto backend, so serial numbers and key identifiers are
//! set here) and signed by a [`CaKey`] that lives in the token. Every certificate is parsed and
//! its signature verified before it is returned.

use const_oid::db::rfc5280::ID_KP_TIME_STAMPING;
use der::asn1::OctetString;
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectKeyIdentifier};

use super::cert::{check_der, der_of, extension, is_ca, parse_x509, verify_signed_by_p256};
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
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::PreSpecified(signer.key_id());
    params.serial_number = Some(random_serial());
    (params.not_before, params.not_after) = validity(now, CA_VALIDITY_DAYS)?;
    let der = params
        .self_signed(&signer)
        .map_err(|e| signer.error(e))?
        .der()
        .to_vec();
    check_der(&der)?;
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
        common_name_only(common_name),
        days,
        now,
        false,
    )
}

/// A subject name of one common name.
fn common_name_only(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// A new end-entity certificate for the key and subject of `old_cert_der` (renewal: a new
/// serial number and validity period, the extensions of [`issue_end_entity`]), issued by the
/// given CA whether or not it issued the old one. The subject keeps its encoding.
pub fn renew_end_entity(
    ca_cert_der: &[u8],
    ca_key: &dyn CaKey,
    old_cert_der: &[u8],
    days: u32,
    now: OffsetDateTime,
) -> Result<Vec<u8>, PkiError> {
    let old = parse_x509(old_cert_der)?;
    if is_ca(&old)? {
        return Err(PkiError::Parse(
            "a CA certificate is not renewed here".to_owned(),
        ));
    }
    let der = issue(
        ca_cert_der,
        ca_key,
        &der_of(&old.tbs_certificate.subject_public_key_info)?,
        dn::to_rcgen(&old.tbs_certificate.subject)?,
        days,
        now,
        false,
    )?;
    if parse_x509(&der)?.tbs_certificate.subject != old.tbs_certificate.subject {
        return Err(PkiError::Rcgen(
            "the renewed certificate's subject differs from the old one's".to_owned(),
        ));
    }
    Ok(der)
}

/// An extension written from its x509-cert value, so that it is DER. rcgen's own
/// `IsCa::ExplicitNoCa` writes basicConstraints as `SEQUENCE { cA FALSE }`: a DEFAULT value
/// written out, which DER forbids. Readers that re-encode what they parse (asn1crypto, under
/// pyHanko) then hold two encodings of one certificate, and pyHanko 0.38 wrote CMS
/// SignedData whose outer length counted the shorter one.
fn der_extension<T>(value: &T, critical: bool) -> Result<CustomExtension, PkiError>
where
    T: der::Encode + const_oid::AssociatedOid,
{
    let oid: Vec<u64> = T::OID.arcs().map(u64::from).collect();
    let mut ext = CustomExtension::from_oid_content(&oid, der_of(value)?);
    ext.set_criticality(critical);
    Ok(ext)
}

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
        common_name_only(common_name),
        days,
        now,
        true,
    )
}

fn issue(
    ca_cert_der: &[u8],
    ca_key: &dyn CaKey,
    subject_spki_der: &[u8],
    subject_name: DistinguishedName,
    days: u32,
    now: OffsetDateTime,
    time_stamping: bool,
) -> Result<Vec<u8>, PkiError> {
    let ca = parse_x509(ca_cert_der)?;
    let ca_subject = &ca.tbs_certificate.subject;
    let signer = CaSigner::new(ca_key)?;
    if der_of(&ca.tbs_certificate.subject_public_key_info)? != ca_key.spki_der() {
        return Err(PkiError::Key(
            "CA key does not match the CA certificate".to_owned(),
        ));
    }
    if !is_ca(&ca)? {
        return Err(PkiError::Parse("issuer certificate is not a CA".to_owned()));
    }
    let ca_key_id = extension::<SubjectKeyIdentifier>(&ca)?
        .map(|(_, id)| id.0.as_bytes().to_vec())
        .unwrap_or_else(|| signer.key_id());
    let mut issuer_params = CertificateParams::default();
    issuer_params.distinguished_name = dn::to_rcgen(ca_subject)?;
    issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(ca_key_id);
    issuer_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = Issuer::new(issuer_params, &signer);

    let subject = SpkiKey::from_spki_der(subject_spki_der)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject_name;
    // No rcgen basic constraints (see `der_extension`); without them rcgen writes no subject key
    // identifier either, so both come from here.
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    params.use_authority_key_identifier_extension = true;
    let key_id = subject.key_id();
    params.custom_extensions = vec![
        der_extension(
            &SubjectKeyIdentifier(
                OctetString::new(key_id.clone()).map_err(|e| PkiError::Rcgen(e.to_string()))?,
            ),
            false,
        )?,
        der_extension(
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
            true,
        )?,
    ];
    if time_stamping {
        params.custom_extensions.push(der_extension(
            &ExtendedKeyUsage(vec![ID_KP_TIME_STAMPING]),
            true,
        )?);
    }
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_id);
    params.serial_number = Some(random_serial());
    (params.not_before, params.not_after) = validity(now, i64::from(days))?;
    let der = params
        .signed_by(&subject, &issuer)
        .map_err(|e| signer.error(e))?
        .der()
        .to_vec();

    let issued = parse_x509(&der)?;
    if issued.tbs_certificate.issuer != *ca_subject {
        return Err(PkiError::Rcgen(
            "issuer name differs from the CA subject".to_owned(),
        ));
    }
    if der_of(&issued.tbs_certificate.subject_public_key_info)? != subject_spki_der {
        return Err(PkiError::Key(
            "SubjectPublicKeyInfo is not in canonical form".to_owned(),
        ));
    }
    check_der(&der)?;
    verify_signed_by_p256(&der, ca_key.spki_der())?;
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::keys::key_id;
    use crate::pki::testkey::{BrokenCaKey, TestCaKey};
    use const_oid::AssociatedOid as _;
    use p256::pkcs8::EncodePublicKey as _;
    use x509_cert::Certificate;
    use x509_cert::ext::pkix::{
        AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
    };

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
    }

    fn ext_key_id(cert: &Certificate, want_aki: bool) -> Option<Vec<u8>> {
        if want_aki {
            extension::<AuthorityKeyIdentifier>(cert)
                .unwrap()
                .and_then(|(_, aki)| aki.key_identifier)
                .map(|id| id.as_bytes().to_vec())
        } else {
            extension::<SubjectKeyIdentifier>(cert)
                .unwrap()
                .map(|(_, id)| id.0.as_bytes().to_vec())
        }
    }

    fn ext<T: der::DecodeOwned + const_oid::AssociatedOid>(cert: &Certificate) -> (bool, T) {
        extension::<T>(cert).unwrap().unwrap()
    }

    fn spki_of(cert: &Certificate) -> Vec<u8> {
        der_of(&cert.tbs_certificate.subject_public_key_info).unwrap()
    }

    fn key_bits(cert: &Certificate) -> Vec<u8> {
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec()
    }

    /// (notBefore, notAfter) in Unix seconds.
    fn validity(cert: &Certificate) -> (u64, u64) {
        let v = &cert.tbs_certificate.validity;
        (
            v.not_before.to_unix_duration().as_secs(),
            v.not_after.to_unix_duration().as_secs(),
        )
    }

    #[test]
    fn self_signed_ca_is_a_ca_and_verifies() {
        let key = TestCaKey::new();
        let der = self_signed_ca(&key, "Quill Dev Root", now()).unwrap();
        let cert = parse_x509(&der).unwrap();
        assert_eq!(cert.tbs_certificate.subject, cert.tbs_certificate.issuer);
        let (critical, bc) = ext::<BasicConstraints>(&cert);
        assert!(critical && bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let (critical, ku) = ext::<KeyUsage>(&cert);
        assert!(critical && ku.key_cert_sign() && ku.crl_sign());
        assert!(!ku.digital_signature());
        assert_eq!(ext_key_id(&cert, false), Some(key_id(&key_bits(&cert))));
        assert_eq!(spki_of(&cert), key.spki_der());
        assert_eq!(
            validity(&cert),
            (1_750_000_000 - 60, 1_750_000_000 + 3653 * 86_400)
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
            assert_eq!(
                crate::pki::parse(&der).unwrap().subject_dn,
                "CN=Alice Example"
            );
            assert_eq!(cert.tbs_certificate.issuer, ca.tbs_certificate.subject);
            let (critical, ku) = ext::<KeyUsage>(&cert);
            assert!(critical && ku.digital_signature() && ku.non_repudiation());
            assert!(!ku.key_cert_sign());
            let (critical, bc) = ext::<BasicConstraints>(&cert);
            assert!(critical && !bc.ca && !is_ca(&cert).unwrap());
            // cA FALSE is the DEFAULT, so DER leaves it out: an empty SEQUENCE.
            assert_eq!(extn_value(&cert, BasicConstraints::OID), [0x30, 0x00]);
            check_der(&der).unwrap();
            assert_eq!(spki_of(&cert), spki);
            assert_eq!(ext_key_id(&cert, true), Some(ca_ski.clone()));
            assert_eq!(ext_key_id(&cert, false), Some(key_id(&key_bits(&cert))));
            assert_eq!(
                validity(&cert),
                (1_750_000_000 - 60, 1_750_000_000 + 365 * 86_400)
            );
            let serial = cert.tbs_certificate.serial_number.as_bytes();
            assert_eq!(serial.len(), 16);
            assert_eq!(serial.first().map(|b| b & 0xc0), Some(0x40));
            serials.push(serial.to_vec());
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
        let (critical, eku) = ext::<ExtendedKeyUsage>(&cert);
        assert!(critical);
        assert_eq!(eku.0, [const_oid::db::rfc5280::ID_KP_TIME_STAMPING]);
        let (_, ku) = ext::<KeyUsage>(&cert);
        assert!(ku.digital_signature());
        verify_signed_by_p256(&der, ca_key.spki_der()).unwrap();
        // Signing certificates carry no EKU.
        let ee = issue_end_entity(&ca_der, &ca_key, tsa.spki_der(), "x", 30, now()).unwrap();
        assert!(
            extension::<ExtendedKeyUsage>(&parse_x509(&ee).unwrap())
                .unwrap()
                .is_none()
        );
    }

    fn extn_value(cert: &Certificate, oid: const_oid::ObjectIdentifier) -> Vec<u8> {
        let exts = cert.tbs_certificate.extensions.iter().flatten();
        let found: Vec<_> = exts.filter(|e| e.extn_id == oid).collect();
        assert_eq!(found.len(), 1, "one {oid} extension");
        found.first().unwrap().extn_value.as_bytes().to_vec()
    }

    #[test]
    fn renewal_keeps_subject_and_key_with_a_new_serial_and_validity() {
        let ca_key = TestCaKey::new();
        let ca_der = self_signed_ca(&ca_key, "Quill Dev Root", now()).unwrap();
        let subject = TestCaKey::new();
        let old = issue_end_entity(
            &ca_der,
            &ca_key,
            subject.spki_der(),
            "Ålice, Example",
            30,
            now(),
        )
        .unwrap();
        let later = now() + Duration::days(29);
        let new = renew_end_entity(&ca_der, &ca_key, &old, 365, later).unwrap();
        check_der(&new).unwrap();
        verify_signed_by_p256(&new, ca_key.spki_der()).unwrap();
        let (old_c, new_c) = (parse_x509(&old).unwrap(), parse_x509(&new).unwrap());
        let (o, n) = (&old_c.tbs_certificate, &new_c.tbs_certificate);
        assert_eq!(der_of(&n.subject).unwrap(), der_of(&o.subject).unwrap());
        assert_eq!(spki_of(&new_c), subject.spki_der());
        assert_ne!(n.serial_number, o.serial_number);
        let t = later.unix_timestamp() as u64;
        assert_eq!(validity(&new_c), (t - 60, t + 365 * 86_400));
        assert_eq!(ext_key_id(&new_c, false), ext_key_id(&old_c, false));
        let (critical, bc) = ext::<BasicConstraints>(&new_c);
        assert!(critical && !bc.ca);
        // A CA certificate is not renewed as an end entity; a certificate must parse.
        assert!(renew_end_entity(&ca_der, &ca_key, &ca_der, 365, later).is_err());
        assert!(renew_end_entity(&ca_der, &ca_key, b"junk", 365, later).is_err());
    }

    /// rcgen's `ExplicitNoCa` (which Quill used to issue with) writes `cA FALSE` out; the
    /// certificate decodes, but `check_der` refuses it, naming the extension.
    #[test]
    fn a_default_value_written_out_is_not_der() {
        let ca_key = TestCaKey::new();
        let ca_der = self_signed_ca(&ca_key, "Quill Dev Root", now()).unwrap();
        check_der(&ca_der).unwrap();
        let signer = CaSigner::new(&ca_key).unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::ExplicitNoCa;
        params.serial_number = Some(random_serial());
        let issuer = Issuer::new(CertificateParams::default(), &signer);
        let subject = SpkiKey::from_spki_der(TestCaKey::new().spki_der()).unwrap();
        let ber = params.signed_by(&subject, &issuer).unwrap().der().to_vec();
        let cert = parse_x509(&ber).unwrap();
        assert_eq!(
            extn_value(&cert, BasicConstraints::OID),
            [0x30, 0x03, 0x01, 0x01, 0x00]
        );
        let err = check_der(&ber).unwrap_err().to_string();
        assert!(err.contains("2.5.29.19 is BER, not DER"), "{err}");
        // The same at the top level: an extension's critical FALSE written out.
        let critical_false = [0x01, 0x01, 0x00];
        let bc_oid = [0x06, 0x03, 0x55, 0x1d, 0x13];
        let at = ber.windows(bc_oid.len()).position(|w| w == bc_oid).unwrap();
        // OID, BOOLEAN TRUE (critical), OCTET STRING: make it FALSE, which DER leaves out.
        let mut tampered = ber.clone();
        assert_eq!(tampered.get(at + 5..at + 8), Some(&[0x01, 0x01, 0xff][..]));
        tampered.splice(at + 5..at + 8, critical_false);
        let err = check_der(&tampered).unwrap_err().to_string();
        assert!(err.contains("certificate is BER"), "{err}");
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
