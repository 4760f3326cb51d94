#![allow(clippy::all, unused)]
use super::*;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
pub struct Pkcs11Config {
    pub module: PathBuf,
    pub token_label: String,
    pub pin: SecretString,
    pub max_sessions: usize,
}
pub struct Pkcs11Qscd;
impl Pkcs11Qscd {
    pub fn open(cfg: &Pkcs11Config) -> Result<Self, QscdError> {
        todo!()
    }
    pub fn init_token(
        module: &Path,
        label: &str,
        so_pin: &SecretString,
        user_pin: &SecretString,
    ) -> Result<bool, QscdError> {
        todo!()
    }
}
impl Qscd for Pkcs11Qscd {
    fn generate_key_pair(
        &self,
        spec: KeySpec,
        id: &[u8],
        label: &str,
    ) -> Result<Vec<u8>, QscdError> {
        todo!()
    }
    fn public_key(&self, id: &[u8]) -> Result<Vec<u8>, QscdError> {
        todo!()
    }
    fn sign(
        &self,
        id: &[u8],
        mechanism: SignMechanism,
        inputs: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, QscdError> {
        todo!()
    }
    fn destroy_key_pair(&self, id: &[u8]) -> Result<(), QscdError> {
        todo!()
    }
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, QscdError> {
        todo!()
    }
    fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, QscdError> {
        todo!()
    }
    fn put_certificate(&self, id: &[u8], label: &str, der: &[u8]) -> Result<(), QscdError> {
        todo!()
    }
    fn find_certificate(&self, label: &str) -> Result<Option<Vec<u8>>, QscdError> {
        todo!()
    }
    fn has_key(&self, id: &[u8]) -> Result<bool, QscdError> {
        todo!()
    }
    fn check(&self) -> Result<(), QscdError> {
        todo!()
    }
}
