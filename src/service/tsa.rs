//! Quill's built-in RFC 3161 time-stamping authority: a P-256 key in the token (CKA_ID and
//! label `quill-tsa`) with a certificate from the development CA (extendedKeyUsage timeStamping,
//! critical), created at first start. It serves `signatures/timestamp` (CSC §4.4), the
//! signature-time-stamp of CAdES-B-T (`signatures/signDoc`) and plain RFC 3161 over HTTP
//! (`POST /tsa`). Everything here blocks (token calls): run it through `crate::blocking`.

use std::sync::Arc;

use cmpv2::status::{PkiStatus, PkiStatusInfo};
use der::asn1::{BitString, GeneralizedTime, Int, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Sequence, Tagged as _};
use spki::AlgorithmIdentifierOwned;
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use crate::cades::{self, CmsError, SignerAlgorithm, Signing};
use crate::crypto::{self, HashAlg, KeyType, SignAlgo};
use crate::error::CscError;
use crate::pki;
use crate::qscd::{KeySpec, Qscd, SignMechanism};
use crate::store::Store;

/// CKA_ID and label of the TSA key pair and certificate in the token.
pub const TSA_ID: &[u8] = b"quill-tsa";
pub const TSA_LABEL: &str = "quill-tsa";
const TSA_COMMON_NAME: &str = "Quill Development TSA";
/// Five years; the development CA lasts ten.
const TSA_CERT_DAYS: u32 = 1826;
/// The policy every token names: ETSI EN 319 421 best-practices time-stamp policy (the
/// development TSA follows its technical rules; it is no qualified service).
pub const TSA_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");

/// The TSA key and certificate, created in the token (with the development CA) when missing.
/// Returns the TSA certificate's DER.
/// Quill's own token objects (the development CA, the time-stamping unit, the sealing key and
/// the MAC key), found, or made on first use, under the database's writer lock (SQLite's
/// `BEGIN IMMEDIATE`, PostgreSQL's advisory lock). Instances and `quill enroll` that share a
/// token share its database: two of them finding a fresh token empty at once each made their
/// own, and the token then held two CAs and two sealing keys, on which enrolment and
/// authorization failed.
pub fn ensure_objects(store: &Store, qscd: &Arc<dyn Qscd>, now: i64) -> anyhow::Result<()> {
    let mut conn = store.conn()?;
    conn.write_tx(|_| -> anyhow::Result<()> {
        ensure(qscd, now)?;
        // Sealing makes the sealing key when the token has none; deriving, the MAC key.
        qscd.seal(b"quill-sealing-key", b"")?;
        qscd.derive_secret(b"quill-mac-key")?;
        Ok(())
    })
}

/// The TSA's key and certificate, made (with the CA) when missing; see [`ensure_objects`],
/// which serialises this across processes.
fn ensure(qscd: &Arc<dyn Qscd>, now: i64) -> anyhow::Result<()> {
    let (ca_key, ca_cert) = super::enrol::ensure_ca(qscd, now)?;
    if qscd.find_certificate(TSA_LABEL)?.is_some() && qscd.has_key(TSA_ID)? {
        return Ok(());
    }
    let spki = if qscd.has_key(TSA_ID)? {
        qscd.public_key(TSA_ID)?
    } else {
        qscd.generate_key_pair(KeySpec::EcP256, TSA_ID, TSA_LABEL)?
    };
    let at = time::OffsetDateTime::from_unix_timestamp(now)?;
    let cert =
        pki::issue_time_stamping(&ca_cert, &ca_key, &spki, TSA_COMMON_NAME, TSA_CERT_DAYS, at)?;
    qscd.put_certificate(TSA_ID, TSA_LABEL, &cert)?;
    Ok(())
}

/// The TSA as loaded from the token: its certificate, then the CA's.
pub struct Tsa {
    chain: Vec<Vec<u8>>,
}

impl Tsa {
    /// Read the TSA and CA certificates from the token.
    pub fn load(qscd: &dyn Qscd) -> Result<Tsa, CscError> {
        let missing = || CscError::Internal("the time-stamping unit is not set up".into());
        let tsa = qscd.find_certificate(TSA_LABEL)?.ok_or_else(missing)?;
        let ca = qscd
            .find_certificate(super::enrol::CA_LABEL)?
            .ok_or_else(missing)?;
        Ok(Tsa {
            chain: vec![tsa, ca],
        })
    }

    /// The TSA certificate (DER).
    pub fn certificate(&self) -> Option<&[u8]> {
        self.chain.first().map(Vec::as_slice)
    }
}

/// What to time-stamp.
pub struct StampRequest<'a> {
    pub hash: HashAlg,
    pub digest: &'a [u8],
    pub nonce: Option<Int>,
    /// Include the TSA certificate chain in the token.
    pub with_certs: bool,
}

fn cms_error(e: CmsError) -> CscError {
    CscError::Internal(format!("time-stamp token: {e}"))
}

/// A positive 128-bit serial number.
fn random_serial() -> Result<Int, CscError> {
    let mut bytes: [u8; 16] = rand::random();
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    Int::new(&bytes).map_err(|e| CscError::Internal(e.to_string()))
}

/// A DER `TimeStampToken` (ContentInfo with SignedData over a TSTInfo) for `req` at `now`,
/// signed in the token.
pub fn stamp(
    qscd: &dyn Qscd,
    tsa: &Tsa,
    now: i64,
    req: &StampRequest<'_>,
) -> Result<Vec<u8>, CscError> {
    let secs = u64::try_from(now).map_err(|_| CscError::Internal("clock before 1970".into()))?;
    let gen_time = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(|e| CscError::Internal(e.to_string()))?;
    let tst = TstInfo {
        version: TspVersion::V1,
        policy: TSA_POLICY,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new(req.hash.oid())
                    .map_err(|e| CscError::Internal(e.to_string()))?,
                parameters: None,
            },
            hashed_message: OctetString::new(req.digest)
                .map_err(|e| CscError::Internal(e.to_string()))?,
        },
        serial_number: random_serial()?,
        gen_time,
        accuracy: Some(Accuracy {
            seconds: Some(1),
            millis: None,
            micros: None,
        }),
        ordering: false,
        nonce: req.nonce.clone(),
        tsa: None,
        extensions: None,
    };
    let content = tst
        .to_der()
        .map_err(|e| CscError::Internal(e.to_string()))?;
    let algorithm =
        SignerAlgorithm::for_sign_algo(SignAlgo::Ecdsa(HashAlg::Sha256), HashAlg::Sha256, None)
            .map_err(cms_error)?;
    let chain_only_signer;
    let chain: &[Vec<u8>] = if req.with_certs {
        &tsa.chain
    } else {
        chain_only_signer = tsa.chain.iter().take(1).cloned().collect::<Vec<_>>();
        &chain_only_signer
    };
    let signing = Signing {
        content_type: cades::ID_CT_TST_INFO,
        content: Some(&content),
        message_digest: &HashAlg::Sha256.digest(&content),
        signing_time: None,
        chain,
        algorithm: &algorithm,
    };
    let built = cades::sign(&signing, |digest| -> Result<Vec<u8>, CscError> {
        let raw = qscd
            .sign(TSA_ID, SignMechanism::Ecdsa, &[digest])?
            .into_iter()
            .next()
            .ok_or_else(|| CscError::Internal("token returned no signature".into()))?;
        Ok(crypto::ecdsa::raw_to_der(KeyType::EcP256, &raw)?)
    })
    .map_err(cms_error)??;
    let token = built.to_der().map_err(cms_error)?;
    if !req.with_certs {
        return strip_certificates(&token);
    }
    Ok(token)
}

/// RFC 3161 lets a token go without certificates when the request did not ask for them; the
/// signer certificate is needed above only to name the signer, so drop the set here.
fn strip_certificates(token: &[u8]) -> Result<Vec<u8>, CscError> {
    let internal = |e: der::Error| CscError::Internal(e.to_string());
    let info = cms::content_info::ContentInfo::from_der(token).map_err(internal)?;
    let mut sd = info
        .content
        .decode_as::<cms::signed_data::SignedData>()
        .map_err(internal)?;
    sd.certificates = None;
    cms::content_info::ContentInfo {
        content_type: info.content_type,
        content: Any::from_der(&sd.to_der().map_err(internal)?).map_err(internal)?,
    }
    .to_der()
    .map_err(internal)
}

/// A CSC `nonce` (hex, "a big random number") as an ASN.1 INTEGER.
pub fn parse_nonce(hex_nonce: &str) -> Result<Int, CscError> {
    let bad = || CscError::invalid("Invalid parameter nonce");
    let padded;
    let even = if hex_nonce.len() % 2 == 1 {
        padded = format!("0{hex_nonce}");
        padded.as_str()
    } else {
        hex_nonce
    };
    let bytes = hex::decode(even).map_err(|_| bad())?;
    if bytes.is_empty() || bytes.len() > 64 {
        return Err(bad());
    }
    positive_int(&bytes).map_err(|_| bad())
}

/// Big-endian unsigned bytes as a positive DER INTEGER.
fn positive_int(bytes: &[u8]) -> der::Result<Int> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut out = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| *b >= 0x80) {
        out.push(0);
    }
    out.extend_from_slice(&trimmed);
    Int::new(&out)
}

/// Why a time-stamp request is rejected: the PKIFailureInfo bit (RFC 3161 §2.4.2, numbered as
/// in RFC 4210 §5.2.3). cmpv2 0.2's `PkiFailureInfoValues` takes these numbers for masks
/// (badAlg = 0 sets no bit, unacceptedPolicy = 15 sets bits 0–3), so Quill writes the BIT STRING
/// itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    BadAlg = 0,
    BadDataFormat = 5,
    UnacceptedPolicy = 15,
    UnacceptedExtension = 16,
}

/// `TimeStampResp` of a rejection: `PKIStatusInfo { status, failInfo }` and no token.
#[derive(Sequence)]
struct RejectionResp {
    status: RejectionStatus,
}

#[derive(Sequence)]
struct RejectionStatus {
    status: PkiStatus,
    fail_info: BitString,
}

/// A DER rejection with exactly the failure's bit set (a named-bit BIT STRING, trailing zero
/// bits dropped).
fn rejection(failure: Failure) -> Result<Vec<u8>, CscError> {
    let bit = failure as usize;
    let mut bytes = vec![0u8; bit / 8 + 1];
    if let Some(last) = bytes.last_mut() {
        *last = 0x80 >> (bit % 8);
    }
    let unused = u8::try_from(7 - bit % 8).unwrap_or(0);
    let encode = || {
        RejectionResp {
            status: RejectionStatus {
                status: PkiStatus::Rejection,
                fail_info: BitString::new(unused, bytes)?,
            },
        }
        .to_der()
    };
    encode().map_err(|e| CscError::Internal(format!("TimeStampResp: {e}")))
}

/// Answer a DER `TimeStampReq` with a DER `TimeStampResp` (RFC 3161 §2.4.2): granted with a
/// token, or rejection with badDataFormat / badAlg / unacceptedPolicy / unacceptedExtension.
/// Only a token failure is an `Err`.
pub fn reply(qscd: &dyn Qscd, now: i64, request: &[u8]) -> Result<Vec<u8>, CscError> {
    let Ok(req) = TimeStampReq::from_der(request) else {
        return rejection(Failure::BadDataFormat);
    };
    if req.req_policy.is_some_and(|p| p != TSA_POLICY) {
        return rejection(Failure::UnacceptedPolicy);
    }
    if req.extensions.is_some() {
        return rejection(Failure::UnacceptedExtension);
    }
    let imprint = &req.message_imprint;
    let params_ok = imprint
        .hash_algorithm
        .parameters
        .as_ref()
        .is_none_or(|p| p.tag() == der::Tag::Null);
    let Ok(hash) = HashAlg::from_oid(&imprint.hash_algorithm.oid.to_string()) else {
        return rejection(Failure::BadAlg);
    };
    let digest = imprint.hashed_message.as_bytes();
    if !params_ok || digest.len() != hash.digest_len() {
        return rejection(Failure::BadDataFormat);
    }
    let tsa = Tsa::load(qscd)?;
    let token = stamp(
        qscd,
        &tsa,
        now,
        &StampRequest {
            hash,
            digest,
            nonce: req.nonce.clone(),
            with_certs: req.cert_req,
        },
    )?;
    let token = cms::content_info::ContentInfo::from_der(&token)
        .map_err(|e| CscError::Internal(e.to_string()))?;
    encode_resp(&TimeStampResp {
        status: PkiStatusInfo {
            status: PkiStatus::Accepted,
            status_string: None,
            fail_info: None,
        },
        time_stamp_token: Some(token),
    })
}

fn encode_resp(resp: &TimeStampResp<'_>) -> Result<Vec<u8>, CscError> {
    resp.to_der()
        .map_err(|e| CscError::Internal(format!("TimeStampResp: {e}")))
}

/// `signatures/timestamp` (CSC §4.4): a base64 `TimeStampToken` over `hash` (base64 digest of
/// `hash_algo`), echoing `nonce` (hex) when given.
pub async fn timestamp(
    state: &crate::state::AppState,
    hash: Option<String>,
    hash_algo: Option<String>,
    nonce: Option<String>,
) -> Result<String, CscError> {
    let hash = hash
        .filter(|h| !h.is_empty())
        .ok_or_else(|| CscError::invalid("Empty hash parameter"))?;
    let hash_algo = hash_algo
        .ok_or_else(|| CscError::invalid("Missing (or invalid type) string parameter hashAlgo"))?;
    let alg = HashAlg::from_oid(&hash_algo)
        .map_err(|_| CscError::invalid("Invalid parameter hashAlgo"))?;
    let digest = crypto::b64::decode_digest(&hash, alg)?;
    let nonce = nonce.as_deref().map(parse_nonce).transpose()?;
    let st = state.clone();
    let now = state.clock.now();
    let token = crate::blocking::run(move || {
        let tsa = Tsa::load(st.qscd.as_ref())?;
        stamp(
            st.qscd.as_ref(),
            &tsa,
            now,
            &StampRequest {
                hash: alg,
                digest: &digest,
                nonce,
                with_certs: true,
            },
        )
    })
    .await?;
    Ok(crypto::b64::encode(&token))
}

/// `POST /tsa`: RFC 3161 over HTTP, DER request in, DER response out.
pub async fn rfc3161(
    state: &crate::state::AppState,
    request: Vec<u8>,
) -> Result<Vec<u8>, CscError> {
    let st = state.clone();
    let now = state.clock.now();
    crate::blocking::run(move || reply(st.qscd.as_ref(), now, &request)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_positive_integers() {
        assert_eq!(parse_nonce("1").unwrap().as_bytes(), [1]);
        assert_eq!(parse_nonce("ff").unwrap().as_bytes(), [0, 0xff]);
        assert_eq!(parse_nonce("00ab").unwrap().as_bytes(), [0, 0xab]);
        assert_eq!(parse_nonce("0000").unwrap().as_bytes(), [0]);
        assert!(parse_nonce("").is_err());
        assert!(parse_nonce("xyz").is_err());
        assert!(parse_nonce(&"ab".repeat(65)).is_err());
    }

    /// Each rejection names its one failure bit, numbered from the first bit of the BIT STRING
    /// (RFC 4210 §5.2.3); `/tsa` in the API tests has OpenSSL read them.
    #[test]
    fn rejections_set_exactly_their_failure_bit() {
        for (failure, bit) in [
            (Failure::BadAlg, 0usize),
            (Failure::BadDataFormat, 5),
            (Failure::UnacceptedPolicy, 15),
            (Failure::UnacceptedExtension, 16),
        ] {
            let der = rejection(failure).unwrap();
            let resp = RejectionResp::from_der(&der).unwrap();
            assert_eq!(resp.status.status, PkiStatus::Rejection);
            let set: Vec<usize> = resp
                .status
                .fail_info
                .bits()
                .enumerate()
                .filter(|(_, b)| *b)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(set, [bit], "{failure:?}");
            assert_eq!(
                resp.status.fail_info.bit_len(),
                bit + 1,
                "{failure:?}: minimal"
            );
        }
    }
}
