//! Pure cryptographic helpers for the CSC signing path (CSC API v2 §8): digest and signature
//! algorithm OIDs, resolution of `signAlgo` / `hashAlgorithmOID` / `signAlgoParams` into a
//! signing plan, RSASSA-PSS parameters, PKCS#1 v1.5 `DigestInfo`, ECDSA signature encoding and
//! lenient base64. Nothing here performs I/O or touches a key.

pub mod b64;
pub mod digest_info;
pub mod ecdsa;
pub mod oid;
pub mod pss;
pub mod resolve;

pub use digest_info::digest_info;
pub use ecdsa::raw_to_der;
pub use oid::{HashAlg, KeyType, SignAlgo, sign_algos_for};
pub use pss::PssParams;
pub use resolve::{ResolvedSign, Scheme, resolve, resolve_any_key};

/// Why a CSC signing request's algorithm fields or values were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The digest algorithm OID is not recognised at all.
    #[error("unknown hash algorithm")]
    UnknownHashAlgo,
    /// SHA-1, MD5 or SHA-224: recognised, but too weak to sign with.
    #[error("hash algorithm too weak")]
    WeakHashAlgo,
    /// The signature algorithm OID is not recognised.
    #[error("unknown signature algorithm")]
    UnknownSignAlgo,
    /// The signature algorithm does not fit the key (e.g. an ECDSA OID on an RSA key).
    #[error("signature algorithm not supported by this key")]
    SignAlgoNotForKey,
    /// Generic `rsaEncryption` without `hashAlgorithmOID`.
    #[error("hashAlgorithmOID is required for this signature algorithm")]
    MissingHashAlgo,
    /// `hashAlgorithmOID` disagrees with the hash implied by `signAlgo` or its parameters.
    #[error("hashAlgorithmOID contradicts signAlgo")]
    HashAlgoContradicts,
    /// `signAlgoParams` missing, malformed or unacceptable.
    #[error("invalid signAlgoParams: {0}")]
    InvalidSignAlgoParams(String),
    /// Not valid base64 (standard or URL-safe alphabet, padded or not).
    #[error("invalid base64")]
    InvalidBase64,
    /// A digest whose length does not match its algorithm.
    #[error("invalid digest value length")]
    InvalidDigestLength,
    /// A raw ECDSA signature of the wrong length or not a valid scalar pair.
    #[error("invalid signature value")]
    InvalidSignature,
}
