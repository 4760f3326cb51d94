//! Reading certificates (CSC API v2 §3.2 `cert/*`): subject/issuer DN, serial number, validity
//! and public key of a stored certificate, CSC GeneralizedTime strings, splitting a stored
//! chain, and checking a certificate's ECDSA P-256 signature against its issuer's key.

use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use x509_parser::certificate::X509Certificate;

use super::{PkiError, dn};

/// ecdsa-with-SHA256.
const OID_ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
/// 9999-12-31T23:59:59Z, the last instant a four-digit GeneralizedTime can show.
const MAX_GENERALIZED_TIME: i64 = 253_402_300_799;

/// What `credentials/info` reports about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// RFC 4514 string, e.g. `CN=Alice,O=Example`.
    pub subject_dn: String,
    /// RFC 4514 string.
    pub issuer_dn: String,
    /// The serial number's DER content octets, upper-case hex, no colons.
    pub serial_hex: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
}

/// Parse exactly one DER certificate (trailing bytes are refused).
pub(crate) fn parse_x509(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(PkiError::Parse(
            "trailing data after certificate".to_owned(),
        )),
        Err(e) => Err(PkiError::Parse(e.to_string())),
    }
}

/// Parse one DER certificate into [`CertInfo`].
pub fn parse(der: &[u8]) -> Result<CertInfo, PkiError> {
    let cert = parse_x509(der)?;
    Ok(CertInfo {
        subject_dn: dn::rfc4514(cert.subject()),
        issuer_dn: dn::rfc4514(cert.issuer()),
        serial_hex: hex::encode_upper(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        spki_der: cert.public_key().raw.to_vec(),
    })
}

/// "YYYYMMDDHHmmssZ" in UTC (CSC `cert/validFrom`, `cert/validTo`); times outside years
/// 1970–9999 are clamped to that range.
pub fn generalized_time(unix: i64) -> String {
    let clamped = unix.clamp(0, MAX_GENERALIZED_TIME);
    let t = time::OffsetDateTime::from_unix_timestamp(clamped)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Split DER certificates stored back to back; each piece must parse as a certificate.
/// Empty input gives an empty list.
pub fn split_chain(concatenated_der: &[u8]) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut certs = Vec::new();
    let mut rest = concatenated_der;
    while !rest.is_empty() {
        let (after, _) = x509_parser::parse_x509_certificate(rest)
            .map_err(|e| PkiError::Parse(format!("certificate {}: {e}", certs.len() + 1)))?;
        let used = rest.len().saturating_sub(after.len());
        let (cert, after) = rest
            .split_at_checked(used)
            .ok_or_else(|| PkiError::Parse("certificate length out of range".to_owned()))?;
        certs.push(cert.to_vec());
        rest = after;
    }
    Ok(certs)
}

/// Check that `cert_der` carries a valid ecdsa-with-SHA256 signature by the P-256 key
/// `issuer_spki_der` (DER SubjectPublicKeyInfo).
pub fn verify_signed_by_p256(cert_der: &[u8], issuer_spki_der: &[u8]) -> Result<(), PkiError> {
    let cert = parse_x509(cert_der)?;
    if cert.signature_algorithm.algorithm.to_id_string() != OID_ECDSA_WITH_SHA256 {
        return Err(PkiError::Parse(
            "not signed with ecdsa-with-SHA256".to_owned(),
        ));
    }
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(issuer_spki_der)
        .map_err(|e| PkiError::Key(format!("issuer key: {e}")))?;
    let sig = p256::ecdsa::DerSignature::from_bytes(&cert.signature_value.data)
        .map_err(|_| PkiError::Parse("malformed ECDSA signature".to_owned()))?;
    key.verify(cert.tbs_certificate.as_ref(), &sig)
        .map_err(|_| PkiError::Key("certificate signature does not verify".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::testkey::TestCaKey;
    use crate::pki::{CaKey, issue_end_entity, self_signed_ca};

    #[test]
    fn generalized_time_known_answers() {
        assert_eq!(generalized_time(0), "19700101000000Z");
        assert_eq!(generalized_time(1_700_000_000), "20231114221320Z");
        assert_eq!(generalized_time(951_868_799), "20000229235959Z");
        assert_eq!(generalized_time(-5), "19700101000000Z");
        assert_eq!(generalized_time(i64::MAX), "99991231235959Z");
    }

    #[test]
    fn parse_and_split_a_chain() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let ca_key = TestCaKey::new();
        let ca = self_signed_ca(&ca_key, "Quill Test CA", now).unwrap();
        let ee = issue_end_entity(&ca, &ca_key, ca_key.spki_der(), "Alice, Jr.", 30, now).unwrap();

        let info = parse(&ee).unwrap();
        assert_eq!(info.subject_dn, "CN=Alice\\, Jr.");
        assert_eq!(info.issuer_dn, "CN=Quill Test CA,O=Quill development CA");
        assert_eq!(info.not_before, 1_700_000_000 - 60);
        assert_eq!(info.not_after, 1_700_000_000 + 30 * 86_400);
        assert_eq!(info.spki_der, ca_key.spki_der());
        assert_eq!(info.serial_hex.len(), 32);
        assert!(
            info.serial_hex
                .chars()
                .all(|c| matches!(c, '0'..='9' | 'A'..='F'))
        );

        let mut chain = ee.clone();
        chain.extend_from_slice(&ca);
        assert_eq!(split_chain(&chain).unwrap(), vec![ee.clone(), ca.clone()]);
        assert!(split_chain(&[]).unwrap().is_empty());
        assert!(split_chain(&chain[..chain.len() - 1]).is_err());
        chain.push(0x30);
        assert!(split_chain(&chain).is_err());
        assert!(matches!(parse(&chain), Err(PkiError::Parse(_))));
        assert!(matches!(parse(b"not a cert"), Err(PkiError::Parse(_))));

        verify_signed_by_p256(&ee, ca_key.spki_der()).unwrap();
        let other = TestCaKey::new();
        assert!(verify_signed_by_p256(&ee, other.spki_der()).is_err());
    }
}
