//! ECDSA signature value encoding (CSC API v2 §8.3): PKCS#11 `CKM_ECDSA` returns raw `r‖s`,
//! while pyHanko and CMS expect the DER `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.

use super::{CryptoError, KeyType};

/// Convert a raw `r‖s` signature (64 bytes for P-256, 96 for P-384) into DER `Ecdsa-Sig-Value`.
/// A wrong length or an invalid scalar (zero, or not below the group order) gives
/// [`CryptoError::InvalidSignature`]; an RSA key gives [`CryptoError::SignAlgoNotForKey`].
pub fn raw_to_der(key: KeyType, raw: &[u8]) -> Result<Vec<u8>, CryptoError> {
    match key {
        KeyType::EcP256 => p256::ecdsa::Signature::from_slice(raw)
            .map(|sig| sig.to_der().as_bytes().to_vec())
            .map_err(|_| CryptoError::InvalidSignature),
        KeyType::EcP384 => p384::ecdsa::Signature::from_slice(raw)
            .map(|sig| sig.to_der().as_bytes().to_vec())
            .map_err(|_| CryptoError::InvalidSignature),
        KeyType::Rsa => Err(CryptoError::SignAlgoNotForKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;

    #[test]
    fn p256_raw_to_der_matches_and_verifies() {
        let key = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let digest = crate::crypto::HashAlg::Sha256.digest(b"hello");
        let sig: p256::ecdsa::Signature = key.sign_prehash(&digest).unwrap();
        let raw = sig.to_bytes();
        assert_eq!(raw.len(), 64);
        let der = raw_to_der(KeyType::EcP256, &raw).unwrap();
        assert_eq!(der, sig.to_der().as_bytes());
        let parsed = p256::ecdsa::DerSignature::from_bytes(&der).unwrap();
        key.verifying_key()
            .verify_prehash(&digest, &parsed)
            .unwrap();
    }

    #[test]
    fn p384_raw_to_der_matches_and_verifies() {
        let key = p384::ecdsa::SigningKey::random(&mut p384::elliptic_curve::rand_core::OsRng);
        let digest = crate::crypto::HashAlg::Sha384.digest(b"hello");
        let sig: p384::ecdsa::Signature = key.sign_prehash(&digest).unwrap();
        let raw = sig.to_bytes();
        assert_eq!(raw.len(), 96);
        let der = raw_to_der(KeyType::EcP384, &raw).unwrap();
        assert_eq!(der, sig.to_der().as_bytes());
        let parsed = p384::ecdsa::DerSignature::from_bytes(&der).unwrap();
        key.verifying_key()
            .verify_prehash(&digest, &parsed)
            .unwrap();
    }

    #[test]
    fn known_answer_small_scalars() {
        // r = 1, s = 2 on P-256: SEQUENCE { INTEGER 1, INTEGER 2 }.
        let mut raw = [0u8; 64];
        raw[31] = 1;
        raw[63] = 2;
        assert_eq!(
            raw_to_der(KeyType::EcP256, &raw).unwrap(),
            [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]
        );
        // High bit set: a leading zero keeps the INTEGER positive.
        let mut raw = [0u8; 64];
        raw[31] = 0x80;
        raw[63] = 0x01;
        assert_eq!(
            raw_to_der(KeyType::EcP256, &raw).unwrap(),
            [0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x01]
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            raw_to_der(KeyType::EcP256, &[1; 96]),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            raw_to_der(KeyType::EcP384, &[1; 64]),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            raw_to_der(KeyType::EcP256, &[0; 64]),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            raw_to_der(KeyType::EcP256, &[0xff; 64]),
            Err(CryptoError::InvalidSignature)
        );
        assert_eq!(
            raw_to_der(KeyType::Rsa, &[1; 64]),
            Err(CryptoError::SignAlgoNotForKey)
        );
    }
}
