//! Builders of CAdES signatures for unit tests (here and in the checks' tests): ECDSA P-256
//! SignerInfos, SignedData, detached and attached CAdES-B-B.

use super::*;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignerInfos};
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
