//! A `signatures/signDoc` answer checked as a CAdES signature (ETSI EN 319 122-1): a CMS
//! `ContentInfo` holding `SignedData` (RFC 5652), one `SignerInfo` whose signed attributes carry
//! content-type (id-data), message-digest (the authorized hash) and ESS signing-certificate-v2
//! (RFC 5035) naming the credential's certificate, signed with the credential's key over the
//! DER `SET OF` of those attributes (CAdES-B-B) — detached (no content) over a document digest,
//! or attached (the document as eContent) over a whole document. CAdES-B-T adds one unsigned
//! signature-time-stamp attribute: an RFC 3161 TimeStampToken over the signature value.
//!
//! This module owns the object identifiers, the ESS ASN.1 types and the CMS parsing shared by
//! both levels (the SignedData of a ContentInfo, its one SignerInfo, sid matching, signed
//! attributes and their signature); the B-B checks and the public verifiers are in
//! `baseline`, the B-T signature-time-stamp in `timestamp`, the test builders in
//! `fixtures`.

mod baseline;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
mod timestamp;

pub use baseline::{verify_attached, verify_detached, verify_detached_document, verify_detached_t};
pub use timestamp::signature_time_stamp;

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;

use crate::verify::{self, HashAlg, Leaf, SignPlan};

pub const ID_DATA: &str = "1.2.840.113549.1.7.1";
pub const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
pub const ID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
pub const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
pub const ID_SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";
/// id-aa-signatureTimeStampToken (RFC 3161 appendix A), CAdES-B-T's unsigned attribute.
pub const ID_SIGNATURE_TIME_STAMP: &str = "1.2.840.113549.1.9.16.2.14";
/// id-ct-TSTInfo, the eContentType of a TimeStampToken.
pub const ID_CT_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
/// How far a time-stamp's genTime may lie from the suite's clock, seconds (either way).
pub const GEN_TIME_WINDOW_SECS: u64 = 600;

/// `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies SEQUENCE OF
/// PolicyInformation OPTIONAL }` (RFC 5035 §3).
#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    policies: Option<Any>,
}

/// `ESSCertIDv2 ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier DEFAULT {algorithm
/// id-sha256}, certHash OCTET STRING, issuerSerial IssuerSerial OPTIONAL }`.
#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    issuer_serial: Option<Any>,
}

fn hash_alg(oid: &str) -> Option<HashAlg> {
    [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512]
        .into_iter()
        .find(|h| h.oid() == oid)
}

/// The one value of the attribute `oid` among `attrs` (`kind`: "signed", "unsigned").
fn single_value<'a>(
    attrs: &'a [Attribute],
    oid: &str,
    name: &str,
    kind: &str,
) -> Result<&'a Any, String> {
    let found: Vec<&Attribute> = attrs.iter().filter(|a| a.oid.to_string() == oid).collect();
    let [attr] = found.as_slice() else {
        return Err(format!(
            "{} {name} {kind} attributes ({oid}); exactly one is required",
            found.len()
        ));
    };
    let values: Vec<&Any> = attr.values.iter().collect();
    match values.as_slice() {
        [value] => Ok(value),
        _ => Err(format!(
            "the {name} attribute has {} values, not one",
            values.len()
        )),
    }
}

/// The subjectKeyIdentifier extension's value (DER OCTET STRING) of `cert`, if it has one.
fn subject_key_id(cert: &Certificate) -> Option<&[u8]> {
    use der::oid::AssociatedOid;
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == x509_cert::ext::pkix::SubjectKeyIdentifier::OID)
        .map(|e| e.extn_value.as_bytes())
}

/// Whether `sid` names `cert`: its issuer and serial number, or its subjectKeyIdentifier
/// extension (`lenient`: also a certificate without that extension, whose key identifier may
/// be computed otherwise).
fn sid_matches(sid: &SignerIdentifier, cert: &Certificate, lenient: bool) -> bool {
    let tbs = &cert.tbs_certificate;
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == tbs.issuer && ias.serial_number == tbs.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => match subject_key_id(cert) {
            Some(ours) => ski.to_der().is_ok_and(|sent| sent.as_slice() == ours),
            None => lenient,
        },
    }
}

/// Whether the SignerInfo's `sid` names the credential's certificate `cert`.
fn sid_names(sid: &SignerIdentifier, cert: &Certificate) -> Result<(), String> {
    if sid_matches(sid, cert, true) {
        return Ok(());
    }
    let tbs = &cert.tbs_certificate;
    Err(match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => format!(
            "the SignerInfo's sid names issuer {} serial {}, not the credential's certificate \
             (issuer {}, serial {})",
            ias.issuer, ias.serial_number, tbs.issuer, tbs.serial_number
        ),
        SignerIdentifier::SubjectKeyIdentifier(_) => {
            "the SignerInfo's sid is a subjectKeyIdentifier other than the certificate's"
                .to_string()
        }
    })
}

/// The `SignedData` of a DER CMS `ContentInfo` (`what` names it in errors).
fn signed_data(der: &[u8], what: &str) -> Result<SignedData, String> {
    let ci = ContentInfo::from_der(der)
        .map_err(|e| format!("{what} is not a DER CMS ContentInfo: {e}"))?;
    if ci.content_type.to_string() != ID_SIGNED_DATA {
        return Err(format!(
            "{what}: the ContentInfo's contentType is {}, not id-signedData ({ID_SIGNED_DATA})",
            ci.content_type
        ));
    }
    ci.content
        .decode_as()
        .map_err(|e| format!("{what}: the content is not a SignedData: {e}"))
}

/// The one SignerInfo of `sd`.
fn one_signer<'a>(sd: &'a SignedData, what: &str) -> Result<&'a SignerInfo, String> {
    let signers: Vec<_> = sd.signer_infos.0.iter().collect();
    match signers.as_slice() {
        [si] => Ok(si),
        _ => Err(format!("{what}: {} SignerInfos, not one", signers.len())),
    }
}

/// The encapsulated content's bytes (`eContent`), if any.
fn econtent(sd: &SignedData) -> Result<Option<Vec<u8>>, String> {
    sd.encap_content_info
        .econtent
        .as_ref()
        .map(|any| {
            any.decode_as::<OctetString>()
                .map(OctetString::into_bytes)
                .map_err(|e| format!("eContent is not an OCTET STRING: {e}"))
        })
        .transpose()
}

/// The signed attributes of `si`, with exactly one content-type equal to `content_type` and
/// one message-digest equal to `digest` (`digest_what` says what it should be).
fn content_attrs(
    si: &SignerInfo,
    content_type: &str,
    digest: &[u8],
    digest_what: &str,
) -> Result<Vec<Attribute>, String> {
    let attrs: Vec<Attribute> = si
        .signed_attrs
        .as_ref()
        .ok_or("no signed attributes")?
        .iter()
        .cloned()
        .collect();
    let ct: ObjectIdentifier = single_value(&attrs, ID_CONTENT_TYPE, "content-type", "signed")?
        .decode_as()
        .map_err(|e| format!("content-type is not an OBJECT IDENTIFIER: {e}"))?;
    if ct.to_string() != content_type {
        return Err(format!(
            "the content-type attribute is {ct}, not {content_type}"
        ));
    }
    let md: OctetString = single_value(&attrs, ID_MESSAGE_DIGEST, "message-digest", "signed")?
        .decode_as()
        .map_err(|e| format!("message-digest is not an OCTET STRING: {e}"))?;
    if md.as_bytes() != digest {
        return Err(format!(
            "message-digest is {}, not {digest_what} {}",
            crate::formats::b64(md.as_bytes()),
            crate::formats::b64(digest)
        ));
    }
    Ok(attrs)
}

/// RFC 5652 §5.4: the signature covers the DER of the signed attributes as a SET OF.
fn verify_signed_attrs(si: &SignerInfo, leaf: &Leaf, plan: &SignPlan) -> Result<(), String> {
    let signed = si
        .signed_attrs
        .as_ref()
        .ok_or("no signed attributes")?
        .to_der()
        .map_err(|e| format!("cannot encode the signed attributes: {e}"))?;
    verify::verify(
        leaf,
        plan,
        &plan.hash.digest(&signed),
        si.signature.as_bytes(),
    )
}
