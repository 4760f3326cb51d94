//! DER `RSASSA-PSS-params` (RFC 8017 A.2.3), the payload of CSC `signAlgoParams` for
//! `signAlgo` 1.2.840.113549.1.1.10 (CSC API v2 §8.2). The salt length is a `u32`, not a `u8`:
//! pyHanko asks for the maximum salt, k − hLen − 2 (222 bytes for RSA-2048 with SHA-256).

use der::asn1::{Any, Null, ObjectIdentifier};
use der::{Decode, Encode, Sequence, Tag, Tagged};
use spki::AlgorithmIdentifierOwned;

use super::{CryptoError, HashAlg};

/// id-mgf1.
const OID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// DEFAULT saltLength.
const DEFAULT_SALT_LEN: u32 = 20;
/// DEFAULT (and only allowed) trailerField: trailerFieldBC.
const TRAILER_FIELD_BC: u32 = 1;

/// RSASSA-PSS parameters, all defaults resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PssParams {
    pub hash: HashAlg,
    pub mgf_hash: HashAlg,
    pub salt_len: u32,
}

/// The ASN.1 structure; absent fields take their DEFAULT in [`parse`], and [`encode`] omits
/// fields equal to their DEFAULT as DER requires.
#[derive(Sequence)]
struct RsaPssParamsDer {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen_algorithm: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_length: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer_field: Option<u32>,
}

fn invalid(why: &str) -> CryptoError {
    CryptoError::InvalidSignAlgoParams(why.to_owned())
}

/// A hash `AlgorithmIdentifier`; parameters must be absent or NULL (RFC 4055 accepts both).
fn hash_from_alg_id(alg: &AlgorithmIdentifierOwned) -> Result<HashAlg, CryptoError> {
    let params_ok = alg
        .parameters
        .as_ref()
        .is_none_or(|p| p.tag() == Tag::Null && p.value().is_empty());
    if !params_ok {
        return Err(invalid("hash algorithm parameters must be absent or NULL"));
    }
    HashAlg::from_oid(&alg.oid.to_string())
}

/// Decode DER `RSASSA-PSS-params`. An absent hash or mask generation function means the
/// SHA-1 default and gives [`CryptoError::WeakHashAlgo`].
pub fn parse(der: &[u8]) -> Result<PssParams, CryptoError> {
    let raw = RsaPssParamsDer::from_der(der).map_err(|e| {
        CryptoError::InvalidSignAlgoParams(format!("malformed RSASSA-PSS-params: {e}"))
    })?;
    let hash = match &raw.hash_algorithm {
        None => return Err(CryptoError::WeakHashAlgo),
        Some(alg) => hash_from_alg_id(alg)?,
    };
    let mgf_hash = match &raw.mask_gen_algorithm {
        None => return Err(CryptoError::WeakHashAlgo),
        Some(mgf) if mgf.oid != OID_MGF1 => {
            return Err(invalid("mask generation function must be MGF1"));
        }
        Some(mgf) => {
            let inner = mgf
                .parameters
                .as_ref()
                .ok_or_else(|| invalid("MGF1 without a hash algorithm"))?
                .decode_as::<AlgorithmIdentifierOwned>()
                .map_err(|_| invalid("malformed MGF1 hash algorithm"))?;
            hash_from_alg_id(&inner)?
        }
    };
    if raw.trailer_field.unwrap_or(TRAILER_FIELD_BC) != TRAILER_FIELD_BC {
        return Err(invalid("trailerField must be 1"));
    }
    Ok(PssParams {
        hash,
        mgf_hash,
        salt_len: raw.salt_length.unwrap_or(DEFAULT_SALT_LEN),
    })
}

fn hash_alg_id(hash: HashAlg) -> der::Result<AlgorithmIdentifierOwned> {
    Ok(AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new(hash.oid())?,
        parameters: Some(Any::encode_from(&Null)?),
    })
}

fn try_encode(params: &PssParams) -> der::Result<Vec<u8>> {
    let mgf_hash = hash_alg_id(params.mgf_hash)?;
    RsaPssParamsDer {
        hash_algorithm: Some(hash_alg_id(params.hash)?),
        mask_gen_algorithm: Some(AlgorithmIdentifierOwned {
            oid: OID_MGF1,
            parameters: Some(Any::encode_from(&mgf_hash)?),
        }),
        salt_length: (params.salt_len != DEFAULT_SALT_LEN).then_some(params.salt_len),
        trailer_field: None,
    }
    .to_der()
}

/// Encode DER `RSASSA-PSS-params` (hash parameters NULL, as OpenSSL writes them).
///
/// Encoding cannot fail for the values a [`PssParams`] can hold (fixed OIDs, small
/// integers); should the `der` crate ever refuse, the result is empty, which [`parse`] rejects.
pub fn encode(params: &PssParams) -> Vec<u8> {
    try_encode(params).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 / MGF1-SHA-256 / salt 32, as written by OpenSSL 3.0 for
    /// `openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_pss_keygen_md:sha256
    /// -pkeyopt rsa_pss_keygen_mgf1_md:sha256 -pkeyopt rsa_pss_keygen_saltlen:32`
    /// (the AlgorithmIdentifier parameters of the resulting public key).
    const OPENSSL_SHA256_SALT32: &str = "3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120";

    fn params(hash: HashAlg, mgf_hash: HashAlg, salt_len: u32) -> PssParams {
        PssParams {
            hash,
            mgf_hash,
            salt_len,
        }
    }

    #[test]
    fn openssl_known_answer() {
        let der = hex::decode(OPENSSL_SHA256_SALT32).unwrap();
        let expected = params(HashAlg::Sha256, HashAlg::Sha256, 32);
        assert_eq!(parse(&der), Ok(expected));
        assert_eq!(hex::encode(encode(&expected)), OPENSSL_SHA256_SALT32);
    }

    #[test]
    fn roundtrips_including_large_salts() {
        for p in [
            params(HashAlg::Sha256, HashAlg::Sha256, 222),
            params(HashAlg::Sha256, HashAlg::Sha256, 350),
            params(HashAlg::Sha384, HashAlg::Sha256, 0),
            params(HashAlg::Sha512, HashAlg::Sha512, 20),
            params(HashAlg::Sha512, HashAlg::Sha384, 70_000),
        ] {
            assert_eq!(parse(&encode(&p)), Ok(p), "{p:?}");
        }
        // DEFAULT salt length is omitted from the encoding.
        let default_salt = encode(&params(HashAlg::Sha256, HashAlg::Sha256, 20));
        assert!(!default_salt.windows(2).any(|w| w == [0xa2, 0x03]));
    }

    #[test]
    fn empty_sequence_means_sha1_and_is_refused() {
        assert_eq!(parse(&[0x30, 0x00]), Err(CryptoError::WeakHashAlgo));
    }

    #[test]
    fn absent_hash_parameters_accepted() {
        // Same as the OpenSSL vector but without the NULLs and with salt 222 (as pyHanko sends).
        let der = hex::decode(
            "3031a00d300b0609608648016503040201a11a301806092a864886f70d010108300b0609608648016503040201a204020200de",
        )
        .unwrap();
        assert_eq!(
            parse(&der),
            Ok(params(HashAlg::Sha256, HashAlg::Sha256, 222))
        );
    }

    #[test]
    fn refuses_bad_fields() {
        let good = encode(&params(HashAlg::Sha256, HashAlg::Sha256, 32));
        // trailerField 2 appended (and the SEQUENCE length bumped).
        let mut bad_trailer = good.clone();
        bad_trailer.extend_from_slice(&[0xa3, 0x03, 0x02, 0x01, 0x02]);
        bad_trailer[1] += 5;
        assert!(matches!(
            parse(&bad_trailer),
            Err(CryptoError::InvalidSignAlgoParams(_))
        ));
        // Mask generation OID changed from MGF1 (…1.1.8) to …1.1.9.
        let mut bad_mgf = good.clone();
        let pos = bad_mgf
            .windows(3)
            .position(|w| w == [0x01, 0x01, 0x08])
            .unwrap();
        bad_mgf[pos + 2] = 0x09;
        assert!(matches!(
            parse(&bad_mgf),
            Err(CryptoError::InvalidSignAlgoParams(_))
        ));
        // Hash OID changed to SHA-224 (…4.2.4) and to an unknown one (…4.2.7).
        let mut weak = good.clone();
        weak[16] = 0x04;
        assert_eq!(parse(&weak), Err(CryptoError::WeakHashAlgo));
        weak[16] = 0x07;
        assert_eq!(parse(&weak), Err(CryptoError::UnknownHashAlgo));
        // Trailing garbage and truncation.
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            parse(&trailing),
            Err(CryptoError::InvalidSignAlgoParams(_))
        ));
        assert!(matches!(
            parse(&good[..10]),
            Err(CryptoError::InvalidSignAlgoParams(_))
        ));
        assert!(matches!(
            parse(&[]),
            Err(CryptoError::InvalidSignAlgoParams(_))
        ));
    }
}
