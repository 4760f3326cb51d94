//! STUB
#![allow(clippy::all, unused)]
pub mod pkcs11;
use crate::crypto::HashAlg;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    Rsa { bits: u32 },
    EcP256,
    EcP384,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignMechanism {
    RsaPkcs1,
    RsaPss {
        hash: HashAlg,
        mgf_hash: HashAlg,
        salt_len: u64,
    },
    Ecdsa,
}
#[derive(Debug, thiserror::Error)]
pub enum QscdError {
    #[error("{0}")]
    Config(String),
    #[error("k")]
    KeyNotFound,
    #[error("{0}")]
    BadInput(String),
    #[error("u")]
    Unseal,
    #[error("{0}")]
    Device(String),
}
pub trait Qscd: Send + Sync + 'static {
    fn generate_key_pair(
        &self,
        spec: KeySpec,
        id: &[u8],
        label: &str,
    ) -> Result<Vec<u8>, QscdError>;
    fn public_key(&self, id: &[u8]) -> Result<Vec<u8>, QscdError>;
    fn sign(
        &self,
        id: &[u8],
        mechanism: SignMechanism,
        inputs: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, QscdError>;
    fn destroy_key_pair(&self, id: &[u8]) -> Result<(), QscdError>;
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, QscdError>;
    fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, QscdError>;
    fn put_certificate(&self, id: &[u8], label: &str, der: &[u8]) -> Result<(), QscdError>;
    fn find_certificate(&self, label: &str) -> Result<Option<Vec<u8>>, QscdError>;
    fn has_key(&self, id: &[u8]) -> Result<bool, QscdError>;
    fn check(&self) -> Result<(), QscdError>;
}
