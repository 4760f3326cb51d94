//! STUB (replaced by the real module).
#![allow(clippy::all, unused)]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("x")]
    UnknownHashAlgo,
    #[error("x")]
    WeakHashAlgo,
    #[error("x")]
    UnknownSignAlgo,
    #[error("x")]
    SignAlgoNotForKey,
    #[error("x")]
    MissingHashAlgo,
    #[error("x")]
    HashAlgoContradicts,
    #[error("x")]
    InvalidSignAlgoParams(String),
    #[error("x")]
    InvalidBase64,
    #[error("x")]
    InvalidDigestLength,
    #[error("x")]
    InvalidSignature,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}
impl HashAlg {
    pub fn from_oid(oid: &str) -> Result<Self, CryptoError> {
        todo!()
    }
    pub fn oid(self) -> &'static str {
        todo!()
    }
    pub fn digest_len(self) -> usize {
        todo!()
    }
    pub fn from_digest_len(len: usize) -> Option<Self> {
        todo!()
    }
    pub fn name(self) -> &'static str {
        todo!()
    }
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        todo!()
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    Rsa,
    EcP256,
    EcP384,
}
impl KeyType {
    pub fn curve_oid(self) -> Option<&'static str> {
        todo!()
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignAlgo {
    RsaPkcs1,
    RsaPkcs1With(HashAlg),
    RsaPss,
    Ecdsa(HashAlg),
}
impl SignAlgo {
    pub fn oid(self) -> &'static str {
        todo!()
    }
}
pub fn sign_algos_for(key: KeyType) -> &'static [SignAlgo] {
    todo!()
}
pub enum Scheme {
    Pkcs1v15,
    Pss { mgf_hash: HashAlg, salt_len: u32 },
    Ecdsa,
}
pub struct ResolvedSign {
    pub algo: SignAlgo,
    pub hash: HashAlg,
    pub scheme: Scheme,
}
pub fn resolve(
    key: KeyType,
    rsa_modulus_bytes: Option<usize>,
    sign_algo: &str,
    hash_algo: Option<&str>,
    sign_algo_params: Option<&[u8]>,
) -> Result<ResolvedSign, CryptoError> {
    todo!()
}
pub mod digest_info {
    use super::*;
    pub fn digest_info(hash: HashAlg, digest: &[u8]) -> Result<Vec<u8>, CryptoError> {
        todo!()
    }
}
pub mod ecdsa {
    use super::*;
    pub fn raw_to_der(key: KeyType, raw: &[u8]) -> Result<Vec<u8>, CryptoError> {
        todo!()
    }
}
pub mod b64 {
    use super::*;
    pub fn decode(s: &str) -> Result<Vec<u8>, CryptoError> {
        todo!()
    }
    pub fn encode(bytes: &[u8]) -> String {
        todo!()
    }
    pub fn decode_digest(s: &str, hash: HashAlg) -> Result<Vec<u8>, CryptoError> {
        todo!()
    }
}
