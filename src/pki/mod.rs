//! Certificates for Quill's credentials (CSC API v2 §3.2 `cert/*`): the development CA and
//! end-entity issuance with rcgen over a CA key that lives in the token ([`ca`]), and parsing of
//! stored certificates into what `credentials/info` reports ([`cert`]); for another CA, a
//! certification request for a credential's key ([`csr`]) and the check of the chain it
//! issued ([`chain`]).

pub mod ca;
pub mod cert;
pub mod chain;
pub mod csr;
mod dn;
mod keys;
#[cfg(test)]
pub(crate) mod testkey;

pub use ca::{issue_end_entity, issue_time_stamping, renew_end_entity, self_signed_ca};
pub use cert::{CertInfo, Validity, generalized_time, parse, split_chain, verify_signed_by_p256};
pub use chain::{IssuedChain, check_issued_chain, pem_certificates};
pub use csr::{SubjectKey, certification_request};

/// Something that signs with the CA's private key (in Quill: a P-256 key inside the PKCS#11 token).
pub trait CaKey {
    /// DER SubjectPublicKeyInfo of the CA key (P-256 only for now).
    fn spki_der(&self) -> &[u8];
    /// ECDSA-with-SHA256 signature over `msg`, DER Ecdsa-Sig-Value.
    fn sign_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError>;
}

/// Why a certificate could not be issued or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A public key we cannot certify, or a CA key that failed or does not match.
    #[error("key: {0}")]
    Key(String),
    /// rcgen refused the certificate parameters.
    #[error("certificate generation: {0}")]
    Rcgen(String),
    /// A certificate or SubjectPublicKeyInfo that does not parse.
    #[error("certificate parsing: {0}")]
    Parse(String),
}
