//! An asynchronous call's answer at rest (CSC v2 §11.11 `signPolling` gives it back): sealed with
//! AES-256-GCM under a key derived by HKDF-SHA256 from the call's responseID. Only the caller
//! holds that ID (the database stores its SHA-256), so a copy of the database reads neither the
//! signed documents nor the signatures, and neither can the server until the caller polls. The
//! row's ID hash and the answer's HTTP status are bound in as associated data: an answer moved to
//! another row, or given another status, does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::CscError;

/// HKDF `info`: this key is for nothing else.
const INFO: &[u8] = b"quill sign_jobs answer v1";
const NONCE_LEN: usize = 12;

/// What a sealed answer is bound to besides its key.
pub struct Bound<'a> {
    /// The row's key: the SHA-256 of the responseID.
    pub id_hash: &'a [u8],
    /// The answer's HTTP status.
    pub status: i32,
}

impl Bound<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.id_hash.len() + 4);
        aad.extend_from_slice(self.id_hash);
        aad.extend_from_slice(&self.status.to_be_bytes());
        aad
    }
}

fn cipher(response_id: &str) -> Result<Aes256Gcm, CscError> {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, response_id.as_bytes())
        .expand(INFO, key.as_mut())
        .map_err(|e| CscError::Internal(format!("answer key: {e}")))?;
    Aes256Gcm::new_from_slice(key.as_ref())
        .map_err(|e| CscError::Internal(format!("answer key: {e}")))
}

/// The answer sealed for the caller holding `response_id`: a random nonce, then the ciphertext
/// with its tag.
pub fn seal(response_id: &str, bound: &Bound<'_>, answer: &[u8]) -> Result<Vec<u8>, CscError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let aad = bound.aad();
    let sealed = cipher(response_id)?
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: answer,
                aad: &aad,
            },
        )
        .map_err(|_| CscError::Internal("answer could not be sealed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The answer `seal` made, if `response_id` and `bound` are the ones it was sealed for and the
/// bytes are as written. Anything else is a fault of the stored row, not of the caller (whose
/// responseID found it by its hash).
pub fn open(response_id: &str, bound: &Bound<'_>, sealed: &[u8]) -> Result<Vec<u8>, CscError> {
    let broken = || CscError::Internal("a stored asynchronous answer does not open".into());
    let (nonce, text) = sealed.split_first_chunk::<NONCE_LEN>().ok_or_else(broken)?;
    let aad = bound.aad();
    cipher(response_id)?
        .decrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: text,
                aad: &aad,
            },
        )
        .map_err(|_| broken())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "Zm9yIHRoZSB0ZXN0IG9ubHksIGEgcmVzcG9uc2VJRA";

    #[test]
    fn an_answer_opens_only_with_its_id_row_and_status() {
        let hash = crate::auth::token::hash(ID);
        let bound = Bound {
            id_hash: &hash,
            status: 200,
        };
        let answer = br#"{"signatures":["c2lnbmF0dXJl"]}"#;
        let sealed = seal(ID, &bound, answer).unwrap();
        assert_eq!(open(ID, &bound, &sealed).unwrap(), answer);
        // Nothing of the answer is readable, and two seals of it differ (fresh nonces).
        assert!(!sealed.windows(9).any(|w| w == b"signature"));
        assert_ne!(sealed, seal(ID, &bound, answer).unwrap());

        // Another responseID, another row, another status, or a changed byte: no answer.
        assert!(open("another-response-id", &bound, &sealed).is_err());
        let other_row = crate::auth::token::hash("another-response-id");
        let moved = Bound {
            id_hash: &other_row,
            status: 200,
        };
        assert!(open(ID, &moved, &sealed).is_err());
        let restated = Bound {
            id_hash: &hash,
            status: 400,
        };
        assert!(open(ID, &restated, &sealed).is_err());
        for i in [0, NONCE_LEN, sealed.len() - 1] {
            let mut bent = sealed.clone();
            bent[i] ^= 1;
            assert!(open(ID, &bound, &bent).is_err(), "byte {i}");
        }
        assert!(open(ID, &bound, &sealed[..NONCE_LEN - 1]).is_err());
        assert!(open(ID, &bound, &sealed[..sealed.len() - 1]).is_err());
    }
}
