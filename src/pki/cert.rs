//! Reading certificates (CSC API v2 §3.2 `cert/*`): subject/issuer DN, serial number, validity
//! and public key of a stored certificate, CSC GeneralizedTime strings, splitting a stored
//! chain, and checking a certificate's ECDSA P-256 signature against its issuer's key.

use der::{Decode as _, Reader as _};
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use x509_cert::Certificate;

use super::{PkiError, dn};
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
    /// The CSC `signatureQualifier` the certificate supports, from its QCStatements.
    pub qualifier: &'static str,
}

/// Where a moment falls in a certificate's validity period (RFC 5280 §4.1.2.5: from notBefore
/// through notAfter, both inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    NotYetValid,
    Valid,
    Expired,
}

impl Validity {
    /// For a certificate valid from `not_before` through `not_after` (Unix seconds), at `now`.
    pub fn at(not_before: i64, not_after: i64, now: i64) -> Self {
        if now < not_before {
            Self::NotYetValid
        } else if now > not_after {
            Self::Expired
        } else {
            Self::Valid
        }
    }
}

/// `id-pe-qcStatements` (RFC 3739).
const QC_STATEMENTS: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.3");
/// ETSI EN 319 412-5 §4.2.1 `id-etsi-qcs-QcCompliance`: an EU qualified certificate.
const QC_COMPLIANCE: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("0.4.0.1862.1.1");
/// §4.2.2 `id-etsi-qcs-QcSSCD`: its private key is in a QSCD.
const QC_SSCD: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("0.4.0.1862.1.4");
/// §4.2.3 `id-etsi-qcs-QcType`, and its `id-etsi-qct-eseal`.
const QC_TYPE: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("0.4.0.1862.1.6");
const QCT_ESEAL: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("0.4.0.1862.1.6.2");

/// RFC 3739 `QCStatement`.
#[derive(der::Sequence)]
struct QcStatement {
    statement_id: const_oid::ObjectIdentifier,
    statement_info: Option<der::Any>,
}

/// The CSC `signatureQualifier` (§4.2, `eu_eidas_*`) of the signatures a certificate makes,
/// from its QCStatements (ETSI EN 319 412-5): QcCompliance with QcSSCD is qualified
/// (`eu_eidas_qes`, or `eu_eidas_qeseal` for a QcType of eseal); QcCompliance alone, advanced
/// with a qualified certificate (`eu_eidas_aesqc`, `eu_eidas_aesealqc`); none, advanced
/// (`eu_eidas_aes`, `eu_eidas_aeseal`). Quill's development CA writes no QCStatements.
pub(crate) fn signature_qualifier(cert: &Certificate) -> Result<&'static str, PkiError> {
    let bad = |e: der::Error| PkiError::Parse(format!("extension {QC_STATEMENTS}: {e}"));
    let statements = match cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == QC_STATEMENTS)
    {
        Some(ext) => Vec::<QcStatement>::from_der(ext.extn_value.as_bytes()).map_err(bad)?,
        None => Vec::new(),
    };
    let has = |oid| statements.iter().any(|s| s.statement_id == oid);
    let mut seal = false;
    for s in statements.iter().filter(|s| s.statement_id == QC_TYPE) {
        if let Some(info) = &s.statement_info {
            let types: Vec<const_oid::ObjectIdentifier> = info.decode_as().map_err(bad)?;
            seal |= types.contains(&QCT_ESEAL);
        }
    }
    Ok(match (has(QC_COMPLIANCE), has(QC_SSCD), seal) {
        (true, true, false) => "eu_eidas_qes",
        (true, true, true) => "eu_eidas_qeseal",
        (true, false, false) => "eu_eidas_aesqc",
        (true, false, true) => "eu_eidas_aesealqc",
        (false, _, false) => "eu_eidas_aes",
        (false, _, true) => "eu_eidas_aeseal",
    })
}

/// Parse exactly one DER certificate (trailing bytes are refused). The decoder takes DER only,
/// so encoding a decoded part again (the TBS, a name, the key) gives back its original bytes.
pub(crate) fn parse_x509(der: &[u8]) -> Result<Certificate, PkiError> {
    Certificate::from_der(der).map_err(|e| PkiError::Parse(e.to_string()))
}

/// DER of a decoded part of a certificate.
pub(crate) fn der_of(part: &impl der::Encode) -> Result<Vec<u8>, PkiError> {
    part.to_der().map_err(|e| PkiError::Parse(e.to_string()))
}

/// The certificate's extension of type `T` (its critical flag and value), if it has one.
pub(crate) fn extension<T>(cert: &Certificate) -> Result<Option<(bool, T)>, PkiError>
where
    T: der::DecodeOwned + const_oid::AssociatedOid,
{
    let Some(ext) = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == T::OID)
    else {
        return Ok(None);
    };
    let value = T::from_der(ext.extn_value.as_bytes())
        .map_err(|e| PkiError::Parse(format!("extension {}: {e}", T::OID)))?;
    Ok(Some((ext.critical, value)))
}

/// Encode again what decodes as `T`.
fn reencode<T: der::DecodeOwned + der::Encode>(der: &[u8]) -> der::Result<Vec<u8>> {
    T::from_der(der)?.to_der()
}

/// Is this certificate DER, down into the values of the extensions Quill writes? The decoder
/// takes a DEFAULT value written out (`critical FALSE`, `cA FALSE`), which DER forbids and
/// which encoding drops, so a certificate is DER when encoding it again gives back its bytes:
/// the whole, and the value of each of those extensions (an extension's value is an opaque
/// OCTET STRING to the certificate's own decoder).
pub(crate) fn check_der(der: &[u8]) -> Result<(), PkiError> {
    use const_oid::AssociatedOid as _;
    use x509_cert::ext::pkix::{
        AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
    };
    type Reencode = fn(&[u8]) -> der::Result<Vec<u8>>;
    let known: [(const_oid::ObjectIdentifier, Reencode); 5] = [
        (BasicConstraints::OID, reencode::<BasicConstraints>),
        (KeyUsage::OID, reencode::<KeyUsage>),
        (ExtendedKeyUsage::OID, reencode::<ExtendedKeyUsage>),
        (SubjectKeyIdentifier::OID, reencode::<SubjectKeyIdentifier>),
        (
            AuthorityKeyIdentifier::OID,
            reencode::<AuthorityKeyIdentifier>,
        ),
    ];
    let cert = parse_x509(der)?;
    if der_of(&cert)? != der {
        return Err(PkiError::Parse(
            "certificate is BER, not DER: encoding it again changes it".to_owned(),
        ));
    }
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let Some((_, again)) = known.iter().find(|(oid, _)| *oid == ext.extn_id) else {
            continue;
        };
        let value = ext.extn_value.as_bytes();
        let again =
            again(value).map_err(|e| PkiError::Parse(format!("extension {}: {e}", ext.extn_id)))?;
        if again != value {
            return Err(PkiError::Parse(format!(
                "extension {} is BER, not DER: encoding it again changes it",
                ext.extn_id
            )));
        }
    }
    Ok(())
}

/// Does its basic constraints extension say it is a CA?
pub(crate) fn is_ca(cert: &Certificate) -> Result<bool, PkiError> {
    Ok(extension::<x509_cert::ext::pkix::BasicConstraints>(cert)?.is_some_and(|(_, bc)| bc.ca))
}

fn unix(t: x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// Parse one DER certificate into [`CertInfo`].
pub fn parse(der: &[u8]) -> Result<CertInfo, PkiError> {
    let cert = parse_x509(der)?;
    let tbs = &cert.tbs_certificate;
    Ok(CertInfo {
        subject_dn: dn::rfc4514(&tbs.subject),
        issuer_dn: dn::rfc4514(&tbs.issuer),
        serial_hex: hex::encode_upper(tbs.serial_number.as_bytes()),
        not_before: unix(tbs.validity.not_before),
        not_after: unix(tbs.validity.not_after),
        spki_der: der_of(&tbs.subject_public_key_info)?,
        qualifier: signature_qualifier(&cert)?,
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
        let failed =
            |e: der::Error| PkiError::Parse(format!("certificate {}: {e}", certs.len() + 1));
        let mut reader = der::SliceReader::new(rest).map_err(failed)?;
        Certificate::decode(&mut reader).map_err(failed)?;
        let used = usize::try_from(reader.position()).map_err(failed)?;
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
    if cert.signature_algorithm.oid != const_oid::db::rfc5912::ECDSA_WITH_SHA_256 {
        return Err(PkiError::Parse(
            "not signed with ecdsa-with-SHA256".to_owned(),
        ));
    }
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(issuer_spki_der)
        .map_err(|e| PkiError::Key(format!("issuer key: {e}")))?;
    let sig = cert
        .signature
        .as_bytes()
        .and_then(|b| p256::ecdsa::DerSignature::from_bytes(b).ok())
        .ok_or_else(|| PkiError::Parse("malformed ECDSA signature".to_owned()))?;
    key.verify(&der_of(&cert.tbs_certificate)?, &sig)
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

    /// QCStatements (ETSI EN 319 412-5) decide the qualifier; the development CA writes none.
    #[test]
    fn the_qualifier_comes_from_the_qc_statements() {
        use der::Encode as _;
        let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let ca_key = TestCaKey::new();
        let ca = self_signed_ca(&ca_key, "Quill Test CA", now).unwrap();
        let ee = issue_end_entity(&ca, &ca_key, ca_key.spki_der(), "Alice", 30, now).unwrap();
        assert_eq!(parse(&ee).unwrap().qualifier, "eu_eidas_aes");
        let with = |statements: &[(const_oid::ObjectIdentifier, Option<der::Any>)]| {
            let value = statements
                .iter()
                .map(|(id, info)| QcStatement {
                    statement_id: *id,
                    statement_info: info.clone(),
                })
                .collect::<Vec<_>>()
                .to_der()
                .unwrap();
            let mut cert = parse_x509(&ee).unwrap();
            cert.tbs_certificate
                .extensions
                .get_or_insert_with(Vec::new)
                .push(x509_cert::ext::Extension {
                    extn_id: QC_STATEMENTS,
                    critical: false,
                    extn_value: der::asn1::OctetString::new(value).unwrap(),
                });
            signature_qualifier(&cert)
        };
        let qc_type = |t: &str| {
            let oids = vec![const_oid::ObjectIdentifier::new_unwrap(t)];
            Some(der::Any::encode_from(&oids).unwrap())
        };
        let esign = "0.4.0.1862.1.6.1";
        let eseal = "0.4.0.1862.1.6.2";
        let pds = const_oid::ObjectIdentifier::new_unwrap("0.4.0.1862.1.5");
        for (statements, want) in [
            (vec![(QC_COMPLIANCE, None), (QC_SSCD, None)], "eu_eidas_qes"),
            (
                vec![
                    (QC_COMPLIANCE, None),
                    (QC_SSCD, None),
                    (QC_TYPE, qc_type(esign)),
                ],
                "eu_eidas_qes",
            ),
            (
                vec![
                    (QC_COMPLIANCE, None),
                    (QC_TYPE, qc_type(eseal)),
                    (QC_SSCD, None),
                ],
                "eu_eidas_qeseal",
            ),
            (vec![(QC_COMPLIANCE, None), (pds, None)], "eu_eidas_aesqc"),
            (
                vec![(QC_COMPLIANCE, None), (QC_TYPE, qc_type(eseal))],
                "eu_eidas_aesealqc",
            ),
            (vec![(QC_SSCD, None)], "eu_eidas_aes"),
            (vec![(QC_TYPE, qc_type(eseal))], "eu_eidas_aeseal"),
            (vec![], "eu_eidas_aes"),
        ] {
            assert_eq!(with(&statements).unwrap(), want, "{statements:?}");
        }
        // a QcType that is not a SEQUENCE OF OID is a malformed certificate, not a guess
        let not_oids = Some(der::Any::encode_from(&5u8).unwrap());
        assert!(with(&[(QC_COMPLIANCE, None), (QC_TYPE, not_oids)]).is_err());
    }

    #[test]
    fn validity_includes_both_ends() {
        assert_eq!(Validity::at(10, 20, 9), Validity::NotYetValid);
        assert_eq!(Validity::at(10, 20, 10), Validity::Valid);
        assert_eq!(Validity::at(10, 20, 20), Validity::Valid);
        assert_eq!(Validity::at(10, 20, 21), Validity::Expired);
    }
}
