//! Test-only software P-256 [`CaKey`] standing in for the token-held CA key.

use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;

use super::{CaKey, PkiError};

pub(crate) struct TestCaKey {
    pub(crate) key: p256::ecdsa::SigningKey,
    spki: Vec<u8>,
}

impl TestCaKey {
    pub(crate) fn new() -> Self {
        let key = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let spki = key.verifying_key().to_public_key_der().unwrap().into_vec();
        Self { key, spki }
    }
}

impl CaKey for TestCaKey {
    fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        let sig: p256::ecdsa::Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// A CA key whose token refuses to sign.
pub(crate) struct BrokenCaKey(pub(crate) TestCaKey);

impl CaKey for BrokenCaKey {
    fn spki_der(&self) -> &[u8] {
        self.0.spki_der()
    }

    fn sign_sha256(&self, _msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        Err(PkiError::Key("token removed".to_owned()))
    }
}
