//! What Quill needs from a QSCD (qualified signature creation device): generate a key pair that
//! never leaves the device, read its public key, sign with a mechanism, and seal small secrets
//! with a device-resident key. `pkcs11` implements it over any PKCS#11 token (SoftHSM2 in tests
//! and CI). This module is the only one that imports cryptoki. All calls block: the service
//! layer runs them through `crate::blocking`.

pub mod multi;
pub mod pkcs11;
mod pool;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::crypto::HashAlg;

/// Open the configured token, or several as one `multi::TokenSet` (the first is the primary).
pub fn open(configs: &[pkcs11::Pkcs11Config]) -> Result<Arc<dyn Qscd>, QscdError> {
    match configs {
        [] => Err(QscdError::Config("no token configured".into())),
        [one] => Ok(Arc::new(pkcs11::Pkcs11Qscd::open(one)?)),
        many => {
            let members = many
                .iter()
                .map(|c| {
                    Ok(multi::Member {
                        label: c.token_label.clone(),
                        qscd: Box::new(pkcs11::Pkcs11Qscd::open(c)?),
                    })
                })
                .collect::<Result<Vec<_>, QscdError>>()?;
            Ok(Arc::new(multi::TokenSet::new(members)?))
        }
    }
}

/// Key pair types Quill generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    Rsa { bits: u32 },
    EcP256,
    EcP384,
}

/// How to sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignMechanism {
    /// CKM_RSA_PKCS over a caller-built DER DigestInfo; output k bytes.
    RsaPkcs1,
    /// CKM_RSA_PKCS_PSS over a digest of `hash`; MGF1 with `mgf_hash`; salt length in bytes.
    RsaPss {
        hash: HashAlg,
        mgf_hash: HashAlg,
        salt_len: u64,
    },
    /// CKM_ECDSA over a digest; output raw r‖s as the token returns it.
    Ecdsa,
}

#[derive(Debug, thiserror::Error)]
pub enum QscdError {
    /// Module cannot be loaded, token not found, login failed.
    #[error("token configuration: {0}")]
    Config(String),
    /// No key with that CKA_ID in the token.
    #[error("key not found in the token")]
    KeyNotFound,
    /// The token refused the input (data length, mechanism parameters …).
    #[error("token refused the input: {0}")]
    BadInput(String),
    /// A sealed secret failed authentication.
    #[error("sealed data could not be opened")]
    Unseal,
    /// Any other device error.
    #[error("token error: {0}")]
    Device(String),
}

/// A QSCD as Quill uses it.
pub trait Qscd: Send + Sync + 'static {
    /// Generate a non-extractable, sensitive key pair with CKA_ID `id`; returns the DER SPKI.
    fn generate_key_pair(
        &self,
        spec: KeySpec,
        id: &[u8],
        label: &str,
    ) -> Result<Vec<u8>, QscdError>;
    /// DER SPKI of an existing key pair.
    fn public_key(&self, id: &[u8]) -> Result<Vec<u8>, QscdError>;
    /// Sign each input with the private key `id`, in order, in one session.
    fn sign(
        &self,
        id: &[u8],
        mechanism: SignMechanism,
        inputs: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, QscdError>;
    /// Destroy both halves of a key pair; a missing key is not an error.
    fn destroy_key_pair(&self, id: &[u8]) -> Result<(), QscdError>;
    /// AES-256-GCM with a token-resident key (created on first use); output iv ‖ ct ‖ tag.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, QscdError>;
    /// Inverse of `seal`; wrong `aad` or tampered data → `QscdError::Unseal`.
    fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, QscdError>;
    /// HMAC-SHA256 of `context` under a token-resident key (created on first use): a secret
    /// that is the same for every process using the token and that no copy of the database
    /// holds (argon2's secret input, `auth::password::Pepper`).
    fn derive_secret(&self, context: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, QscdError>;
    /// Store a DER X.509 certificate as a token object.
    fn put_certificate(&self, id: &[u8], label: &str, der: &[u8]) -> Result<(), QscdError>;
    /// A certificate object's DER by label.
    fn find_certificate(&self, label: &str) -> Result<Option<Vec<u8>>, QscdError>;
    /// Whether a private key with this CKA_ID exists.
    fn has_key(&self, id: &[u8]) -> Result<bool, QscdError>;
    /// The CKA_IDs of the private keys labelled `label_prefix…` (credentials' keys are
    /// `quill:<id>`), on every token.
    fn key_ids_labelled(&self, label_prefix: &str) -> Result<Vec<Vec<u8>>, QscdError>;
    /// Cheap liveness check.
    fn check(&self) -> Result<(), QscdError>;
}
