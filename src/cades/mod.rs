//! CMS `SignedData` (RFC 5652) as CAdES baseline signatures (ETSI EN 319 122-1) and RFC 3161
//! time-stamp tokens are built from it, with the RustCrypto `cms` crate's types: one
//! `SignerInfo` identified by issuer and serial number, signed attributes content-type,
//! message-digest, (signing-time) and ESS signing-certificate-v2 (RFC 5035), the certificate
//! chain in `certificates`, the content embedded (enveloping / attached) or not (detached).
//!
//! The signature value over the DER `SignedAttributes` comes from a caller's closure: Quill
//! signs in the token, this module never sees a key. Pure functions, no I/O.

mod ess;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{GeneralizedTime, ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::{Attribute, Attributes};
use x509_cert::time::Time;

use crate::crypto::{HashAlg, SignAlgo};

/// id-signedData.
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-data.
pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// id-ct-TSTInfo (RFC 3161).
pub const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
/// id-aa-signingCertificateV2 (RFC 5035).
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// id-aa-signatureTimeStampToken (RFC 3161 appendix A).
pub const ID_SIGNATURE_TIME_STAMP: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
const ID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// Why a CMS structure could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    /// A certificate, parameter or attribute that does not encode or parse.
    #[error("CMS encoding: {0}")]
    Encoding(String),
    /// The signer (the token) failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

impl From<der::Error> for CmsError {
    fn from(e: der::Error) -> Self {
        CmsError::Encoding(e.to_string())
    }
}

/// How the signer signs: the `SignerInfo.signatureAlgorithm` and the digest algorithm used for
/// the message digest and for the signed attributes.
#[derive(Clone, Debug)]
pub struct SignerAlgorithm {
    pub digest: HashAlg,
    pub signature: AlgorithmIdentifierOwned,
}

impl SignerAlgorithm {
    /// The identifier for a resolved CSC `signAlgo`: sha*WithRSAEncryption (NULL parameters) for
    /// PKCS#1 v1.5 (also for generic rsaEncryption, whose digest is `digest`), id-RSASSA-PSS with
    /// `pss_params` (DER `RSASSA-PSS-params`), ecdsa-with-SHA* without parameters.
    pub fn for_sign_algo(
        algo: SignAlgo,
        digest: HashAlg,
        pss_params: Option<&[u8]>,
    ) -> Result<Self, CmsError> {
        let null = || Any::from_der(&[0x05, 0x00]);
        let signature = match algo {
            SignAlgo::RsaPkcs1 | SignAlgo::RsaPkcs1With(_) => AlgorithmIdentifierOwned {
                oid: oid(SignAlgo::RsaPkcs1With(digest).oid())?,
                parameters: Some(null()?),
            },
            SignAlgo::RsaPss => {
                let params = pss_params
                    .ok_or_else(|| CmsError::Encoding("RSASSA-PSS without parameters".into()))?;
                AlgorithmIdentifierOwned {
                    oid: ID_RSASSA_PSS,
                    parameters: Some(Any::from_der(params)?),
                }
            }
            SignAlgo::Ecdsa(_) => AlgorithmIdentifierOwned {
                oid: oid(SignAlgo::Ecdsa(digest).oid())?,
                parameters: None,
            },
        };
        Ok(Self { digest, signature })
    }
}

fn oid(dotted: &str) -> Result<ObjectIdentifier, CmsError> {
    ObjectIdentifier::new(dotted).map_err(|e| CmsError::Encoding(e.to_string()))
}

/// A digest `AlgorithmIdentifier` (parameters absent, RFC 5754).
pub fn digest_algorithm(hash: HashAlg) -> Result<AlgorithmIdentifierOwned, CmsError> {
    Ok(AlgorithmIdentifierOwned {
        oid: oid(hash.oid())?,
        parameters: None,
    })
}

/// What one signature covers.
pub struct Signing<'a> {
    /// The eContentType (id-data for CAdES, id-ct-TSTInfo for a time-stamp token).
    pub content_type: ObjectIdentifier,
    /// The content, embedded when `Some` (enveloping); detached when `None`.
    pub content: Option<&'a [u8]>,
    /// Digest of the content with `algorithm.digest`.
    pub message_digest: &'a [u8],
    /// Unix seconds for the signing-time attribute; `None` leaves it out.
    pub signing_time: Option<i64>,
    /// DER certificates: the signer's first, then the rest of its chain.
    pub chain: &'a [Vec<u8>],
    pub algorithm: &'a SignerAlgorithm,
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, CmsError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

fn any_of(value: &impl Encode) -> Result<Any, CmsError> {
    Ok(Any::from_der(&value.to_der()?)?)
}

/// A CMS `Time`: UTCTime until 2049, GeneralizedTime from 2050 (RFC 5652 §11.3).
fn cms_time(unix: i64) -> Result<Time, CmsError> {
    let secs = u64::try_from(unix).map_err(|_| CmsError::Encoding("time before 1970".into()))?;
    let d = std::time::Duration::from_secs(secs);
    Ok(match UtcTime::from_unix_duration(d) {
        Ok(t) => Time::UtcTime(t),
        Err(_) => Time::GeneralTime(GeneralizedTime::from_unix_duration(d)?),
    })
}

/// The signed attributes for `s`.
fn signed_attributes(s: &Signing<'_>, signer: &Certificate) -> Result<Attributes, CmsError> {
    let signer_der = s
        .chain
        .first()
        .ok_or_else(|| CmsError::Encoding("no signer certificate".into()))?;
    let mut attrs = vec![
        attribute(ID_CONTENT_TYPE, any_of(&s.content_type)?)?,
        attribute(
            ID_MESSAGE_DIGEST,
            any_of(&OctetString::new(s.message_digest)?)?,
        )?,
        attribute(
            ID_SIGNING_CERTIFICATE_V2,
            any_of(&ess::signing_certificate_v2(signer_der, signer)?)?,
        )?,
    ];
    if let Some(t) = s.signing_time {
        attrs.push(attribute(ID_SIGNING_TIME, any_of(&cms_time(t)?)?)?);
    }
    Ok(SetOfVec::try_from(attrs)?)
}

/// A built, signed `SignedData`; unsigned attributes can still be added before encoding.
pub struct Built {
    signed_data: SignedData,
}

impl Built {
    /// The signer's signature value (what a signature time-stamp covers).
    pub fn signature_value(&self) -> Result<Vec<u8>, CmsError> {
        let info = self
            .signed_data
            .signer_infos
            .0
            .get(0)
            .ok_or_else(|| CmsError::Encoding("no SignerInfo".into()))?;
        Ok(info.signature.as_bytes().to_vec())
    }

    /// Add an unsigned attribute (e.g. id-aa-signatureTimeStampToken with a DER token).
    pub fn add_unsigned(
        &mut self,
        oid: ObjectIdentifier,
        value_der: &[u8],
    ) -> Result<(), CmsError> {
        let mut infos = std::mem::take(&mut self.signed_data.signer_infos.0).into_vec();
        let info = infos
            .first_mut()
            .ok_or_else(|| CmsError::Encoding("no SignerInfo".into()))?;
        let mut attrs = info
            .unsigned_attrs
            .take()
            .map(SetOfVec::into_vec)
            .unwrap_or_default();
        attrs.push(attribute(oid, Any::from_der(value_der)?)?);
        info.unsigned_attrs = Some(SetOfVec::try_from(attrs)?);
        self.signed_data.signer_infos = SignerInfos(SetOfVec::try_from(infos)?);
        Ok(())
    }

    /// DER `ContentInfo { id-signedData, SignedData }`.
    pub fn to_der(&self) -> Result<Vec<u8>, CmsError> {
        let info = ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: any_of(&self.signed_data)?,
        };
        Ok(info.to_der()?)
    }
}

/// Build and sign. `sign` receives the digest (with `algorithm.digest`) of the DER
/// `SignedAttributes` and returns the signature value as CMS carries it (PKCS#1 / PSS octets,
/// DER `Ecdsa-Sig-Value`).
pub fn sign<E>(
    s: &Signing<'_>,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Result<Built, E>, CmsError> {
    let signer_der = s
        .chain
        .first()
        .ok_or_else(|| CmsError::Encoding("no signer certificate".into()))?;
    let signer = Certificate::from_der(signer_der)?;
    let signed_attrs = signed_attributes(s, &signer)?;
    let to_sign = s.algorithm.digest.digest(&signed_attrs.to_der()?);
    let signature = match sign(&to_sign) {
        Ok(sig) => sig,
        Err(e) => return Ok(Err(e)),
    };
    let digest_alg = digest_algorithm(s.algorithm.digest)?;
    let info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer.tbs_certificate.issuer.clone(),
            serial_number: signer.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: s.algorithm.signature.clone(),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let certs = s
        .chain
        .iter()
        .map(|der| Ok(CertificateChoices::Certificate(Certificate::from_der(der)?)))
        .collect::<Result<Vec<_>, CmsError>>()?;
    let econtent = match s.content {
        Some(content) => Some(any_of(&OctetString::new(content)?)?),
        None => None,
    };
    // RFC 5652 §5.1: version 3 when the eContentType is not id-data, else 1.
    let version = if s.content_type == ID_DATA {
        CmsVersion::V1
    } else {
        CmsVersion::V3
    };
    let signed_data = SignedData {
        version,
        digest_algorithms: SetOfVec::try_from(vec![digest_alg])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: s.content_type,
            econtent,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(certs)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![info])?),
    };
    Ok(Ok(Built { signed_data }))
}

#[cfg(test)]
mod tests;
