//! Random bearer tokens and SADs: 32 bytes from the OS RNG, base64url on the wire, stored as
//! SHA-256 (a fast hash is enough for 256-bit random values; the database never holds the value).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// A fresh random token (43 base64url characters).
pub fn generate() -> Secret {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut());
    Secret::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// The value stored in the database for a token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A random identifier (hex) for users and credentials.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = generate();
        let b = generate();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(hash(a.expose()), hash(a.expose()));
        assert_ne!(hash(a.expose()), hash(b.expose()));
        assert_eq!(hash(a.expose()).len(), 32);
    }

    #[test]
    fn ids() {
        assert_eq!(random_id(16).len(), 32);
        assert_ne!(random_id(16), random_id(16));
    }
}
