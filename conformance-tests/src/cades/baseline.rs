//! The CAdES-B-B checks (content type, eContent, sid, digest algorithm, message-digest,
//! signing-certificate-v2, the signature over the signed attributes) and the public verifiers
//! built on them: detached over an authorized hash (B-B, and B-T with [`signature_time_stamp`]),
//! attached over a document, detached over a whole document.

use cms::signed_data::SignerInfo;
use der::{Decode, Encode};
use x509_cert::Certificate;

use super::timestamp::signature_time_stamp;
use super::{
    ID_DATA, ID_SIGNING_CERTIFICATE_V2, SigningCertificateV2, content_attrs, econtent, hash_alg,
    one_signer, sid_names, signed_data, single_value, verify_signed_attrs,
};
use crate::verify::{HashAlg, Leaf, SignPlan};

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
