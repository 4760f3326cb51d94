//! A `signatures/signDoc` answer checked as a CAdES-B-B detached signature (ETSI EN 319 122-1):
//! a CMS `ContentInfo` holding `SignedData` (RFC 5652) without the content, one `SignerInfo`
//! whose signed attributes carry content-type (id-data), message-digest (the authorized hash)
//! and ESS signing-certificate-v2 (RFC 5035) naming the credential's certificate, signed with
//! the credential's key over the DER `SET OF` of those attributes.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
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

/// The one value of the signed attribute `oid`.
fn single_value<'a>(attrs: &'a [Attribute], oid: &str, name: &str) -> Result<&'a Any, String> {
    let found: Vec<&Attribute> = attrs.iter().filter(|a| a.oid.to_string() == oid).collect();
    let [attr] = found.as_slice() else {
        return Err(format!(
            "{} {name} signed attributes ({oid}); CMS requires exactly one",
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

/// Whether the SignerInfo's `sid` names `cert` (issuer and serial number, or its subject key
/// identifier when the certificate has one).
fn sid_names(sid: &SignerIdentifier, cert: &Certificate) -> Result<(), String> {
    let tbs = &cert.tbs_certificate;
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            if ias.issuer == tbs.issuer && ias.serial_number == tbs.serial_number {
                Ok(())
            } else {
                Err(format!(
                    "the SignerInfo's sid names issuer {} serial {}, not the credential's \
                     certificate (issuer {}, serial {})",
                    ias.issuer, ias.serial_number, tbs.issuer, tbs.serial_number
                ))
            }
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            use der::oid::AssociatedOid;
            let ours = tbs
                .extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == x509_cert::ext::pkix::SubjectKeyIdentifier::OID);
            let Some(ext) = ours else {
                // Nothing to compare with: the key identifier may be computed otherwise.
                return Ok(());
            };
            let sent = ski
                .to_der()
                .map_err(|e| format!("cannot encode the sid: {e}"))?;
            if sent.as_slice() == ext.extn_value.as_bytes() {
                Ok(())
            } else {
                Err(
                    "the SignerInfo's sid is a subjectKeyIdentifier other than the \
                     certificate's"
                        .to_string(),
                )
            }
        }
    }
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
    let ci =
        ContentInfo::from_der(cms_der).map_err(|e| format!("not a DER CMS ContentInfo: {e}"))?;
    if ci.content_type.to_string() != ID_SIGNED_DATA {
        return Err(format!(
            "the ContentInfo's contentType is {}, not id-signedData ({ID_SIGNED_DATA})",
            ci.content_type
        ));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| format!("the content is not a SignedData: {e}"))?;
    let encap = &sd.encap_content_info;
    if encap.econtent_type.to_string() != ID_DATA {
        return Err(format!(
            "eContentType is {}, not id-data ({ID_DATA})",
            encap.econtent_type
        ));
    }
    if encap.econtent.is_some() {
        return Err("a detached signature must not carry the content (eContent present)".into());
    }
    let signers: Vec<_> = sd.signer_infos.0.iter().collect();
    let [si] = signers.as_slice() else {
        return Err(format!(
            "{} SignerInfos for one signature, not one",
            signers.len()
        ));
    };
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
    let attrs_set = si
        .signed_attrs
        .as_ref()
        .ok_or("no signed attributes (CAdES requires them)")?;
    let attrs: Vec<Attribute> = attrs_set.iter().cloned().collect();

    let ct: ObjectIdentifier = single_value(&attrs, ID_CONTENT_TYPE, "content-type")?
        .decode_as()
        .map_err(|e| format!("content-type is not an OBJECT IDENTIFIER: {e}"))?;
    if ct.to_string() != ID_DATA {
        return Err(format!(
            "the content-type attribute is {ct}, not id-data ({ID_DATA})"
        ));
    }
    let md: OctetString = single_value(&attrs, ID_MESSAGE_DIGEST, "message-digest")?
        .decode_as()
        .map_err(|e| format!("message-digest is not an OCTET STRING: {e}"))?;
    if md.as_bytes() != digest {
        return Err(format!(
            "message-digest is {}, not the authorized hash {}",
            crate::formats::b64(md.as_bytes()),
            crate::formats::b64(digest)
        ));
    }
    let sc_any = single_value(&attrs, ID_SIGNING_CERTIFICATE_V2, "signing-certificate-v2")?;
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

    // RFC 5652 §5.4: the signature covers the DER of the signed attributes as a SET OF.
    let signed = attrs_set
        .to_der()
        .map_err(|e| format!("cannot encode the signed attributes: {e}"))?;
    let sig = si.signature.as_bytes();
    verify::verify(leaf, plan, &plan.hash.digest(&signed), sig)
        .map_err(|e| format!("the SignerInfo's signature: {e}"))?;
    Ok(format!(
        "CMS SignedData, detached, {} signed attributes (content-type id-data, message-digest = \
         the authorized hash, signing-certificate-v2 with the {} of the certificate); signature \
         ({}, signatureAlgorithm {}) verifies",
        attrs.len(),
        cert_hash_alg.name(),
        plan.describe(),
        si.signature_algorithm.oid
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cms::cert::IssuerAndSerialNumber;
    use cms::content_info::CmsVersion;
    use cms::signed_data::{EncapsulatedContentInfo, SignerInfo, SignerInfos};
    use der::asn1::{BitString, SetOfVec};
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::pkcs8::EncodePublicKey;
    use x509_cert::{TbsCertificate, name::Name, serial_number::SerialNumber, time};

    fn oid(s: &str) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(s)
    }

    fn alg(s: &str) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: oid(s),
            parameters: None,
        }
    }

    fn any<T: Encode>(value: &T) -> Any {
        Any::from_der(&value.to_der().unwrap()).unwrap()
    }

    fn attr<T: Encode>(o: &str, value: &T) -> Attribute {
        Attribute {
            oid: oid(o),
            values: SetOfVec::try_from(vec![any(value)]).unwrap(),
        }
    }

    /// A P-256 key, its (unsigned: nothing checks it) certificate as DER, and the suite's view.
    fn key_and_cert(serial: u8) -> (p256::ecdsa::SigningKey, Vec<u8>, Leaf) {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let spki_der = sk.verifying_key().to_public_key_der().unwrap();
        let tbs = TbsCertificate {
            version: x509_cert::Version::V3,
            serial_number: SerialNumber::new(&[serial]).unwrap(),
            signature: alg(verify::ECDSA_SHA256),
            issuer: Name::default(),
            validity: time::Validity::from_now(std::time::Duration::from_secs(60)).unwrap(),
            subject: Name::default(),
            subject_public_key_info: spki::SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
                .unwrap(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        };
        let cert = Certificate {
            tbs_certificate: tbs,
            signature_algorithm: alg(verify::ECDSA_SHA256),
            signature: BitString::from_bytes(&[0; 8]).unwrap(),
        };
        let leaf = verify::leaf_key(&cert).unwrap();
        (sk, cert.to_der().unwrap(), leaf)
    }

    /// A detached CAdES-B-B over `digest` by `sk`, naming `cert_der`.
    fn cades(sk: &p256::ecdsa::SigningKey, cert_der: &[u8], digest: &[u8]) -> Vec<u8> {
        let cert = Certificate::from_der(cert_der).unwrap();
        let ess = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: None,
                cert_hash: OctetString::new(HashAlg::Sha256.digest(cert_der)).unwrap(),
                issuer_serial: None,
            }],
            policies: None,
        };
        let attrs = SetOfVec::try_from(vec![
            attr(ID_CONTENT_TYPE, &oid(ID_DATA)),
            attr(ID_MESSAGE_DIGEST, &OctetString::new(digest).unwrap()),
            attr(ID_SIGNING_CERTIFICATE_V2, &ess),
        ])
        .unwrap();
        let to_sign = HashAlg::Sha256.digest(&attrs.to_der().unwrap());
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&to_sign).unwrap();
        let si = SignerInfo {
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
        };
        let sd = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![alg(HashAlg::Sha256.oid())]).unwrap(),
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: oid(ID_DATA),
                econtent: None,
            },
            certificates: None,
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

    #[test]
    fn a_detached_cades_b_b_verifies_and_tampering_is_caught() {
        let (sk, cert, leaf) = key_and_cert(1);
        let plan = verify::plans_for(&leaf.kind, &[verify::ECDSA_SHA256])
            .unwrap()
            .1[0];
        let digest = HashAlg::Sha256.digest(b"document");
        let cms = cades(&sk, &cert, &digest);
        let ok = verify_detached(&leaf, &cert, &plan, &digest, &cms).unwrap();
        assert!(
            ok.contains("signing-certificate-v2 with the SHA-256"),
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
        let (_, cert2, _) = key_and_cert(2);
        let e = verify_detached(&leaf, &cert2, &plan, &digest, &cms).unwrap_err();
        assert!(e.contains("sid names"), "{e}");
        // Not CMS at all.
        assert!(verify_detached(&leaf, &cert, &plan, &digest, b"\x30\x00").is_err());
    }
}
