//! A `signatures/signDoc` answer checked as a CAdES signature (ETSI EN 319 122-1): a CMS
//! `ContentInfo` holding `SignedData` (RFC 5652), one `SignerInfo` whose signed attributes carry
//! content-type (id-data), message-digest (the authorized hash) and ESS signing-certificate-v2
//! (RFC 5035) naming the credential's certificate, signed with the credential's key over the
//! DER `SET OF` of those attributes (CAdES-B-B) — detached (no content) over a document digest,
//! or attached (the document as eContent) over a whole document. CAdES-B-T adds one unsigned
//! signature-time-stamp attribute: an RFC 3161 TimeStampToken over the signature value.

use cms::content_info::ContentInfo;
use cms::signed_data::{CertificateSet, SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_tsp::TstInfo;

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

/// What a CAdES-B-B check found, for the next level's checks and the row's detail.
struct BaselineB {
    signer: SignerInfo,
    summary: String,
}

/// What a signature's message-digest must equal, for the details.
const AUTHORIZED_HASH: &str = "the authorized hash";
const DOCUMENT_DIGEST: &str = "the document's digest";

/// The CAdES-B-B checks: `cms_der` is a CMS SignedData over `digest` (`digest_what`: the
/// authorized hash, or the digest of a document with `plan.hash`) by the key of `leaf` /
/// `cert_der` with `plan`; `content`: the document it must carry (attached), or None
/// (detached: no eContent).
fn baseline_b(
    leaf: &Leaf,
    cert_der: &[u8],
    plan: &SignPlan,
    (digest, digest_what): (&[u8], &str),
    content: Option<&[u8]>,
    cms_der: &[u8],
) -> Result<BaselineB, String> {
    let sd = signed_data(cms_der, "the signature")?;
    let encap = &sd.encap_content_info;
    if encap.econtent_type.to_string() != ID_DATA {
        return Err(format!(
            "eContentType is {}, not id-data ({ID_DATA})",
            encap.econtent_type
        ));
    }
    let carried = econtent(&sd)?;
    let envelope = match (content, carried) {
        (None, None) => "detached".to_string(),
        (None, Some(_)) => {
            return Err(
                "a detached signature must not carry the content (eContent present)".into(),
            );
        }
        (Some(_), None) => {
            return Err(
                "an attached signature must carry the document (no eContent: detached)".into(),
            );
        }
        (Some(doc), Some(got)) if got == doc => {
            format!("attached (eContent is the {}-byte document)", doc.len())
        }
        (Some(doc), Some(got)) => {
            return Err(format!(
                "the encapsulated content ({} bytes) is not the document sent ({} bytes)",
                got.len(),
                doc.len()
            ));
        }
    };
    let si = one_signer(&sd, "the signature")?;
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| format!("the credential's certificate does not parse: {e}"))?;
    sid_names(&si.sid, &cert)?;
    let digest_alg = si.digest_alg.oid.to_string();
    if digest_alg != plan.hash.oid() {
        return Err(format!(
            "the SignerInfo's digestAlgorithm is {digest_alg}, not the {} ({}) of the \
             authorized hash",
            plan.hash.name(),
            plan.hash.oid()
        ));
    }
    if si.signed_attrs.is_none() {
        return Err("no signed attributes (CAdES requires them)".into());
    }
    let attrs = content_attrs(si, ID_DATA, digest, digest_what)?;
    let sc_any = single_value(
        &attrs,
        ID_SIGNING_CERTIFICATE_V2,
        "signing-certificate-v2",
        "signed",
    )?;
    let sc = SigningCertificateV2::from_der(
        &sc_any
            .to_der()
            .map_err(|e| format!("cannot encode signing-certificate-v2: {e}"))?,
    )
    .map_err(|e| format!("signing-certificate-v2 is not a SigningCertificateV2: {e}"))?;
    let first = sc
        .certs
        .first()
        .ok_or("signing-certificate-v2 lists no certificate")?;
    let cert_hash_oid = first
        .hash_algorithm
        .as_ref()
        .map_or_else(|| HashAlg::Sha256.oid().to_string(), |a| a.oid.to_string());
    let cert_hash_alg = hash_alg(&cert_hash_oid).ok_or_else(|| {
        format!("ESSCertIDv2 hashes with {cert_hash_oid}, which the suite cannot compute")
    })?;
    if first.cert_hash.as_bytes() != cert_hash_alg.digest(cert_der).as_slice() {
        return Err(format!(
            "signing-certificate-v2's certHash is not the {} of the credential's certificate",
            cert_hash_alg.name()
        ));
    }
    verify_signed_attrs(si, leaf, plan).map_err(|e| format!("the SignerInfo's signature: {e}"))?;
    let summary = format!(
        "CMS SignedData, {envelope}, {} signed attributes (content-type id-data, message-digest \
         = {digest_what}, signing-certificate-v2 with the {} of the certificate); signature ({}, \
         signatureAlgorithm {}) verifies",
        attrs.len(),
        cert_hash_alg.name(),
        plan.describe(),
        si.signature_algorithm.oid
    );
    Ok(BaselineB {
        signer: si.clone(),
        summary,
    })
}

/// Check `cms_der` (one `SignatureObject`, decoded) as a detached CAdES-B-B signature over the
/// document digest `digest`, made by the key of `leaf` / `cert_der` with `plan`. A summary on
/// success.
pub fn verify_detached(
    leaf: &Leaf,
    cert_der: &[u8],
    plan: &SignPlan,
    digest: &[u8],
    cms_der: &[u8],
) -> Result<String, String> {
    baseline_b(
        leaf,
        cert_der,
        plan,
        (digest, AUTHORIZED_HASH),
        None,
        cms_der,
    )
    .map(|b| b.summary)
}

/// Check `cms_der` as a detached CAdES-B-T signature over `digest`: everything
/// [`verify_detached`] checks, and its signature-time-stamp ([`signature_time_stamp`]) against
/// the clock `now` (Unix seconds).
pub fn verify_detached_t(
    leaf: &Leaf,
    cert_der: &[u8],
    plan: &SignPlan,
    digest: &[u8],
    cms_der: &[u8],
    now: u64,
) -> Result<String, String> {
    let b = baseline_b(
        leaf,
        cert_der,
        plan,
        (digest, AUTHORIZED_HASH),
        None,
        cms_der,
    )?;
    let t = signature_time_stamp(&b.signer, now)?;
    Ok(format!("{}; {t}", b.summary))
}

/// Check `cms_der` (one `DocumentWithSignature`, decoded) as an attached CAdES-B-B signature of
/// `document`: its eContent is the document, its message-digest the document's digest (with
/// `plan.hash`), and the rest as [`verify_detached`].
pub fn verify_attached(
    leaf: &Leaf,
    cert_der: &[u8],
    plan: &SignPlan,
    document: &[u8],
    cms_der: &[u8],
) -> Result<String, String> {
    let digest = plan.hash.digest(document);
    let md = (digest.as_slice(), DOCUMENT_DIGEST);
    baseline_b(leaf, cert_der, plan, md, Some(document), cms_der).map(|b| b.summary)
}

/// Check `cms_der` (one `SignatureObject`, decoded) as a detached CAdES-B-B signature of the
/// whole `document` (a `documents` entry signed `Detached`): no eContent, its message-digest
/// the document's digest (with `plan.hash`), and the rest as [`verify_detached`].
pub fn verify_detached_document(
    leaf: &Leaf,
    cert_der: &[u8],
    plan: &SignPlan,
    document: &[u8],
    cms_der: &[u8],
) -> Result<String, String> {
    let digest = plan.hash.digest(document);
    let md = (digest.as_slice(), DOCUMENT_DIGEST);
    baseline_b(leaf, cert_der, plan, md, None, cms_der).map(|b| b.summary)
}

/// CAdES-B-T's signature-time-stamp of `si`: exactly one unsigned attribute
/// id-aa-signatureTimeStampToken with one value, a TimeStampToken (CMS SignedData of a TSTInfo,
/// RFC 3161 §2.4.2) whose messageImprint is the digest, with the imprint's own algorithm, of
/// the SignerInfo's signature value; whose one SignerInfo signed content-type id-ct-TSTInfo and
/// the TSTInfo's digest, and whose signature verifies with the certificate the token carries
/// for that signer's sid; and whose genTime is within [`GEN_TIME_WINDOW_SECS`] of `now`.
pub fn signature_time_stamp(si: &SignerInfo, now: u64) -> Result<String, String> {
    let unsigned: Vec<Attribute> = si
        .unsigned_attrs
        .iter()
        .flat_map(|set| set.iter().cloned())
        .collect();
    let token = single_value(
        &unsigned,
        ID_SIGNATURE_TIME_STAMP,
        "signature-time-stamp",
        "unsigned",
    )
    .map_err(|e| format!("CAdES-B-T: {e}"))?
    .to_der()
    .map_err(|e| format!("cannot encode the time-stamp token: {e}"))?;
    let what = "the time-stamp token";
    let sd = signed_data(&token, what)?;
    let ect = sd.encap_content_info.econtent_type.to_string();
    if ect != ID_CT_TST_INFO {
        return Err(format!(
            "{what}: eContentType is {ect}, not id-ct-TSTInfo ({ID_CT_TST_INFO})"
        ));
    }
    let tst_der = econtent(&sd)
        .map_err(|e| format!("{what}: {e}"))?
        .ok_or_else(|| format!("{what} carries no TSTInfo (no eContent)"))?;
    let tst = TstInfo::from_der(&tst_der).map_err(|e| format!("{what}: not a DER TSTInfo: {e}"))?;

    // The imprint: the digest of the signature value (the OCTET STRING's contents).
    let imprint_oid = tst.message_imprint.hash_algorithm.oid.to_string();
    let imprint_alg = hash_alg(&imprint_oid).ok_or_else(|| {
        format!("{what}: messageImprint hashes with {imprint_oid}, which the suite cannot compute")
    })?;
    if tst.message_imprint.hashed_message.as_bytes()
        != imprint_alg.digest(si.signature.as_bytes()).as_slice()
    {
        return Err(format!(
            "{what}: messageImprint is not the {} of the SignerInfo's signature value",
            imprint_alg.name()
        ));
    }

    // The TSA's signature, with the certificate the token carries for its signer.
    let tsi = one_signer(&sd, what)?;
    let tsa_cert = sd
        .certificates
        .iter()
        .flat_map(|CertificateSet(set)| set.iter())
        .find_map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(c) if sid_matches(&tsi.sid, c, false) => {
                Some(c)
            }
            _ => None,
        })
        .ok_or_else(|| format!("{what} carries no certificate its SignerInfo's sid names"))?;
    let tsa_leaf = verify::leaf_key(tsa_cert).map_err(|e| format!("the TSA's certificate: {e}"))?;
    let dig_oid = tsi.digest_alg.oid.to_string();
    let dig = hash_alg(&dig_oid).ok_or_else(|| {
        format!("{what}: digestAlgorithm {dig_oid}, which the suite cannot compute")
    })?;
    content_attrs(
        tsi,
        ID_CT_TST_INFO,
        &dig.digest(&tst_der),
        "the digest of the TSTInfo",
    )
    .map_err(|e| format!("{what}: {e}"))?;
    let plan = verify::cms_plan(&tsa_leaf.kind, &tsi.signature_algorithm, dig)
        .map_err(|e| format!("{what}: {e}"))?;
    verify_signed_attrs(tsi, &tsa_leaf, &plan)
        .map_err(|e| format!("{what}: the TSA's signature: {e}"))?;

    let stamped = tst.gen_time.to_unix_duration().as_secs();
    let off = i128::from(stamped) - i128::from(now);
    if off.unsigned_abs() > u128::from(GEN_TIME_WINDOW_SECS) {
        return Err(format!(
            "{what}: genTime {} is {off} s from the suite's clock (more than \
             {GEN_TIME_WINDOW_SECS} s)",
            tst.gen_time.to_date_time()
        ));
    }
    Ok(format!(
        "signature-time-stamp: messageImprint = the {} of the signature value, the TSA's \
         signature ({}) verifies with the token's certificate ({}), genTime {} ({off:+} s)",
        imprint_alg.name(),
        plan.describe(),
        tsa_cert.tbs_certificate.subject,
        tst.gen_time.to_date_time()
    ))
}

/// Builders of CAdES signatures for unit tests (here and in the checks' tests): ECDSA P-256
/// SignerInfos, SignedData, detached and attached CAdES-B-B.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
    use cms::content_info::CmsVersion;
    use cms::signed_data::{EncapsulatedContentInfo, SignerInfos};
    use der::asn1::SetOfVec;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::hazmat::PrehashSigner;

    pub(crate) fn oid(s: &str) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(s)
    }

    pub(crate) fn alg(s: &str) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: oid(s),
            parameters: None,
        }
    }

    pub(crate) fn any<T: Encode>(value: &T) -> Any {
        Any::from_der(&value.to_der().unwrap()).unwrap()
    }

    pub(crate) fn attr<T: Encode>(o: &str, value: &T) -> Attribute {
        Attribute {
            oid: oid(o),
            values: SetOfVec::try_from(vec![any(value)]).unwrap(),
        }
    }

    /// ESS signing-certificate-v2 naming `cert_der` by its SHA-256.
    pub(crate) fn ess(cert_der: &[u8]) -> Attribute {
        let sc = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: None,
                cert_hash: OctetString::new(HashAlg::Sha256.digest(cert_der)).unwrap(),
                issuer_serial: None,
            }],
            policies: None,
        };
        attr(ID_SIGNING_CERTIFICATE_V2, &sc)
    }

    /// A SignerInfo by `sk` (certificate `cert_der`, ECDSA with SHA-256) over the signed
    /// attributes content-type `content_type`, message-digest `digest` and `extra`.
    pub(crate) fn signer(
        sk: &SigningKey,
        cert_der: &[u8],
        content_type: &str,
        digest: &[u8],
        extra: Vec<Attribute>,
    ) -> SignerInfo {
        let cert = Certificate::from_der(cert_der).unwrap();
        let mut attrs = vec![
            attr(ID_CONTENT_TYPE, &oid(content_type)),
            attr(ID_MESSAGE_DIGEST, &OctetString::new(digest).unwrap()),
        ];
        attrs.extend(extra);
        let attrs = SetOfVec::try_from(attrs).unwrap();
        let to_sign = HashAlg::Sha256.digest(&attrs.to_der().unwrap());
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&to_sign).unwrap();
        SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: cert.tbs_certificate.issuer.clone(),
                serial_number: cert.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: alg(HashAlg::Sha256.oid()),
            signed_attrs: Some(attrs),
            signature_algorithm: alg(verify::ECDSA_SHA256),
            signature: OctetString::new(sig.to_der().as_bytes()).unwrap(),
            unsigned_attrs: None,
        }
    }

    /// A DER ContentInfo of the SignedData of `si` over content of type `content_type`
    /// (`econtent`: encapsulated), carrying `certs`.
    pub(crate) fn content_info(
        si: SignerInfo,
        content_type: &str,
        econtent: Option<&[u8]>,
        certs: &[&[u8]],
    ) -> Vec<u8> {
        let certificates = (!certs.is_empty()).then(|| {
            let choices = certs
                .iter()
                .map(|c| CertificateChoices::Certificate(Certificate::from_der(c).unwrap()))
                .collect::<Vec<_>>();
            CertificateSet::try_from(choices).unwrap()
        });
        let sd = SignedData {
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![alg(HashAlg::Sha256.oid())]).unwrap(),
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: oid(content_type),
                econtent: econtent.map(|c| any(&OctetString::new(c).unwrap())),
            },
            certificates,
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![si]).unwrap()),
        };
        ContentInfo {
            content_type: oid(ID_SIGNED_DATA),
            content: any(&sd),
        }
        .to_der()
        .unwrap()
    }

    /// A CAdES-B-B SignerInfo over `digest` by `sk`, naming `cert_der`.
    pub(crate) fn cades_signer(sk: &SigningKey, cert_der: &[u8], digest: &[u8]) -> SignerInfo {
        signer(sk, cert_der, ID_DATA, digest, vec![ess(cert_der)])
    }

    /// A detached CAdES-B-B over `digest` by `sk`, naming `cert_der`.
    pub(crate) fn cades(sk: &SigningKey, cert_der: &[u8], digest: &[u8]) -> Vec<u8> {
        content_info(cades_signer(sk, cert_der, digest), ID_DATA, None, &[])
    }

    /// An attached CAdES-B-B of `document` by `sk` (over its SHA-256), naming `cert_der`.
    pub(crate) fn cades_attached(sk: &SigningKey, cert_der: &[u8], document: &[u8]) -> Vec<u8> {
        let si = cades_signer(sk, cert_der, &HashAlg::Sha256.digest(document));
        content_info(si, ID_DATA, Some(document), &[])
    }

    /// The suite's plan for ecdsa-with-SHA256 with the key of `leaf`.
    pub(crate) fn p256_plan(leaf: &Leaf) -> SignPlan {
        verify::plans_for(&leaf.kind, &[verify::ECDSA_SHA256])
            .unwrap()
            .1[0]
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::test_support::key_and_cert;
    use der::asn1::{GeneralizedTime, Int, SetOfVec};
    use p256::ecdsa::SigningKey;
    use x509_tsp::{MessageImprint, TspVersion};

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
            gen_time: GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(at))
                .unwrap(),
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
        let e =
            verify_attached(&leaf, &cert, &plan, doc, &attached(b"another document")).unwrap_err();
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
        let e =
            verify_detached_document(&leaf, &cert, &plan, b"another document", &good).unwrap_err();
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
}
