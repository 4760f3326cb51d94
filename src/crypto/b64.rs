//! Base64 as CSC clients send it (design §5): decode the standard or URL-safe alphabet, padded or
//! not (no whitespace); always emit standard padded base64. Also decodes and length-checks a
//! digest from `hashes` (CSC API v2 §8.1).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{CryptoError, HashAlg};

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decode standard or URL-safe base64, with or without padding.
pub fn decode(s: &str) -> Result<Vec<u8>, CryptoError> {
    STANDARD_LENIENT
        .decode(s)
        .or_else(|_| URL_SAFE_LENIENT.decode(s))
        .map_err(|_| CryptoError::InvalidBase64)
}

/// Encode as standard padded base64.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decode a base64 digest and check its length against `hash`.
pub fn decode_digest(s: &str, hash: HashAlg) -> Result<Vec<u8>, CryptoError> {
    let digest = decode(s)?;
    if digest.len() != hash.digest_len() {
        return Err(CryptoError::InvalidDigestLength);
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_dialect() {
        // 0xfb 0xff 0xbf uses both alphabet-specific characters.
        let bytes = [0xfb, 0xff, 0xbf, 0x01];
        for s in ["+/+/AQ==", "+/+/AQ", "-_-_AQ==", "-_-_AQ"] {
            assert_eq!(decode(s).unwrap(), bytes, "{s}");
        }
        assert_eq!(encode(&bytes), "+/+/AQ==");
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn rejects_garbage() {
        for s in ["+/-_AQ==", "AQ= =", " AQ==", "AQ=\n", "A", "AQ===", "*"] {
            assert_eq!(decode(s), Err(CryptoError::InvalidBase64), "{s:?}");
        }
    }

    #[test]
    fn digest_lengths_checked() {
        let d = HashAlg::Sha256.digest(b"x");
        let s = encode(&d);
        assert_eq!(decode_digest(&s, HashAlg::Sha256).unwrap(), d);
        assert_eq!(
            decode_digest(&s, HashAlg::Sha384),
            Err(CryptoError::InvalidDigestLength)
        );
        assert_eq!(
            decode_digest("not base64!", HashAlg::Sha256),
            Err(CryptoError::InvalidBase64)
        );
        // SHA-256 digest of "abc", URL-safe and unpadded.
        assert_eq!(
            hex::encode(
                decode_digest(
                    "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0",
                    HashAlg::Sha256
                )
                .unwrap()
            ),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
