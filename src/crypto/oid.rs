//! Digest, key and signature algorithm identifiers used on the CSC wire (CSC API v2 §8.1, §8.2,
//! §8.4): parsing of dotted OID strings into typed values, the OIDs we emit, and which
//! signature algorithms each key type accepts (`credentials/info` `key.algo`, §8.5).

use sha2::Digest as _;

use super::CryptoError;

/// SHA-1: recognised so that it can be refused.
const OID_SHA1: &str = "1.3.14.3.2.26";
/// MD5: recognised so that it can be refused.
const OID_MD5: &str = "1.2.840.113549.2.5";
/// SHA-224: recognised so that it can be refused (CSC requires at least SHA-256 strength).
const OID_SHA224: &str = "2.16.840.1.101.3.4.2.4";

/// A digest algorithm Quill signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// Parse a `hashAlgorithmOID`; weak digests are recognised and refused.
    pub fn from_oid(oid: &str) -> Result<Self, CryptoError> {
        match oid {
            "2.16.840.1.101.3.4.2.1" => Ok(Self::Sha256),
            "2.16.840.1.101.3.4.2.2" => Ok(Self::Sha384),
            "2.16.840.1.101.3.4.2.3" => Ok(Self::Sha512),
            OID_SHA1 | OID_MD5 | OID_SHA224 => Err(CryptoError::WeakHashAlgo),
            _ => Err(CryptoError::UnknownHashAlgo),
        }
    }

    /// The dotted OID of this digest algorithm.
    pub fn oid(self) -> &'static str {
        match self {
            Self::Sha256 => "2.16.840.1.101.3.4.2.1",
            Self::Sha384 => "2.16.840.1.101.3.4.2.2",
            Self::Sha512 => "2.16.840.1.101.3.4.2.3",
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The digest algorithm whose output has this length, if any.
    pub fn from_digest_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(Self::Sha256),
            48 => Some(Self::Sha384),
            64 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Human-readable name, e.g. "SHA-256".
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
        }
    }

    /// Hash `data` with this algorithm.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// The kind of key behind a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    Rsa,
    EcP256,
    EcP384,
}

impl KeyType {
    /// The named-curve OID for EC keys (`key.curve` in `credentials/info`); `None` for RSA.
    pub fn curve_oid(self) -> Option<&'static str> {
        match self {
            Self::Rsa => None,
            Self::EcP256 => Some("1.2.840.10045.3.1.7"),
            Self::EcP384 => Some("1.3.132.0.34"),
        }
    }
}

/// A CSC `signAlgo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignAlgo {
    /// `rsaEncryption`: PKCS#1 v1.5, digest named separately by `hashAlgorithmOID`.
    RsaPkcs1,
    /// `sha{256,384,512}WithRSAEncryption`.
    RsaPkcs1With(HashAlg),
    /// `RSASSA-PSS`, parameters in `signAlgoParams`.
    RsaPss,
    /// `ecdsa-with-SHA{256,384,512}`.
    Ecdsa(HashAlg),
}

impl SignAlgo {
    /// Parse a `signAlgo` OID.
    pub fn from_oid(oid: &str) -> Result<Self, CryptoError> {
        match oid {
            "1.2.840.113549.1.1.1" => Ok(Self::RsaPkcs1),
            "1.2.840.113549.1.1.11" => Ok(Self::RsaPkcs1With(HashAlg::Sha256)),
            "1.2.840.113549.1.1.12" => Ok(Self::RsaPkcs1With(HashAlg::Sha384)),
            "1.2.840.113549.1.1.13" => Ok(Self::RsaPkcs1With(HashAlg::Sha512)),
            "1.2.840.113549.1.1.10" => Ok(Self::RsaPss),
            "1.2.840.10045.4.3.2" => Ok(Self::Ecdsa(HashAlg::Sha256)),
            "1.2.840.10045.4.3.3" => Ok(Self::Ecdsa(HashAlg::Sha384)),
            "1.2.840.10045.4.3.4" => Ok(Self::Ecdsa(HashAlg::Sha512)),
            _ => Err(CryptoError::UnknownSignAlgo),
        }
    }

    /// The dotted OID of this signature algorithm.
    pub fn oid(self) -> &'static str {
        match self {
            Self::RsaPkcs1 => "1.2.840.113549.1.1.1",
            Self::RsaPkcs1With(HashAlg::Sha256) => "1.2.840.113549.1.1.11",
            Self::RsaPkcs1With(HashAlg::Sha384) => "1.2.840.113549.1.1.12",
            Self::RsaPkcs1With(HashAlg::Sha512) => "1.2.840.113549.1.1.13",
            Self::RsaPss => "1.2.840.113549.1.1.10",
            Self::Ecdsa(HashAlg::Sha256) => "1.2.840.10045.4.3.2",
            Self::Ecdsa(HashAlg::Sha384) => "1.2.840.10045.4.3.3",
            Self::Ecdsa(HashAlg::Sha512) => "1.2.840.10045.4.3.4",
        }
    }

    /// The digest a combined OID implies; `None` for generic `rsaEncryption` and RSASSA-PSS.
    pub fn implied_hash(self) -> Option<HashAlg> {
        match self {
            Self::RsaPkcs1With(h) | Self::Ecdsa(h) => Some(h),
            Self::RsaPkcs1 | Self::RsaPss => None,
        }
    }

    /// Whether a key of type `key` can produce this signature.
    pub fn fits(self, key: KeyType) -> bool {
        match self {
            Self::RsaPkcs1 | Self::RsaPkcs1With(_) | Self::RsaPss => key == KeyType::Rsa,
            Self::Ecdsa(_) => matches!(key, KeyType::EcP256 | KeyType::EcP384),
        }
    }
}

const RSA_ALGOS: [SignAlgo; 5] = [
    SignAlgo::RsaPkcs1With(HashAlg::Sha256),
    SignAlgo::RsaPkcs1With(HashAlg::Sha384),
    SignAlgo::RsaPkcs1With(HashAlg::Sha512),
    SignAlgo::RsaPss,
    SignAlgo::RsaPkcs1,
];

const EC_ALGOS: [SignAlgo; 3] = [
    SignAlgo::Ecdsa(HashAlg::Sha256),
    SignAlgo::Ecdsa(HashAlg::Sha384),
    SignAlgo::Ecdsa(HashAlg::Sha512),
];

/// Every signAlgo a key of this type accepts, in the order `credentials/info` lists them in
/// `key.algo`: RSA → [.1.1.11, .1.1.12, .1.1.13, .1.1.10, .1.1.1]; EC → [4.3.2, 4.3.3, 4.3.4]
/// (ECDSA with any of the three digests on either curve).
pub fn sign_algos_for(key: KeyType) -> &'static [SignAlgo] {
    match key {
        KeyType::Rsa => &RSA_ALGOS,
        KeyType::EcP256 | KeyType::EcP384 => &EC_ALGOS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_HASHES: [HashAlg; 3] = [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];

    #[test]
    fn hash_oids_roundtrip_and_weak_ones_are_refused() {
        for h in ALL_HASHES {
            assert_eq!(HashAlg::from_oid(h.oid()), Ok(h));
            assert_eq!(HashAlg::from_digest_len(h.digest_len()), Some(h));
            assert_eq!(h.digest(b"abc").len(), h.digest_len());
        }
        for weak in [OID_SHA1, OID_MD5, OID_SHA224] {
            assert_eq!(HashAlg::from_oid(weak), Err(CryptoError::WeakHashAlgo));
        }
        assert_eq!(
            HashAlg::from_oid("1.2.3"),
            Err(CryptoError::UnknownHashAlgo)
        );
        assert_eq!(HashAlg::from_oid(""), Err(CryptoError::UnknownHashAlgo));
        assert_eq!(HashAlg::from_digest_len(20), None);
        assert_eq!(HashAlg::Sha384.name(), "SHA-384");
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            hex::encode(HashAlg::Sha256.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sign_algo_oids_roundtrip() {
        for key in [KeyType::Rsa, KeyType::EcP256] {
            for algo in sign_algos_for(key) {
                assert_eq!(SignAlgo::from_oid(algo.oid()), Ok(*algo));
                assert!(algo.fits(key));
            }
        }
        assert_eq!(
            SignAlgo::from_oid("1.2.840.10045.2.1"),
            Err(CryptoError::UnknownSignAlgo)
        );
        assert!(!SignAlgo::Ecdsa(HashAlg::Sha256).fits(KeyType::Rsa));
        assert!(!SignAlgo::RsaPss.fits(KeyType::EcP384));
        assert!(SignAlgo::Ecdsa(HashAlg::Sha512).fits(KeyType::EcP256));
    }

    #[test]
    fn key_algo_lists_in_wire_order() {
        let rsa: Vec<&str> = sign_algos_for(KeyType::Rsa)
            .iter()
            .map(|a| a.oid())
            .collect();
        assert_eq!(
            rsa,
            [
                "1.2.840.113549.1.1.11",
                "1.2.840.113549.1.1.12",
                "1.2.840.113549.1.1.13",
                "1.2.840.113549.1.1.10",
                "1.2.840.113549.1.1.1"
            ]
        );
        let ec: Vec<&str> = sign_algos_for(KeyType::EcP384)
            .iter()
            .map(|a| a.oid())
            .collect();
        assert_eq!(
            ec,
            [
                "1.2.840.10045.4.3.2",
                "1.2.840.10045.4.3.3",
                "1.2.840.10045.4.3.4"
            ]
        );
        assert_eq!(KeyType::EcP256.curve_oid(), Some("1.2.840.10045.3.1.7"));
        assert_eq!(KeyType::EcP384.curve_oid(), Some("1.3.132.0.34"));
        assert_eq!(KeyType::Rsa.curve_oid(), None);
    }
}
