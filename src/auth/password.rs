//! Passwords and PINs: argon2id with parameters from configuration, PHC strings in the database,
//! and a dummy verification when the user is unknown so timing does not tell who exists.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::secret::Secret;

/// argon2id cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            memory_kib: 19_456,
            iterations: 2,
        }
    }
}

fn argon2(params: HashParams) -> Result<Argon2<'static>, String> {
    let p = Params::new(params.memory_kib, params.iterations, 1, None)
        .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

/// Hash a secret into a PHC string (`$argon2id$v=19$m=…`).
pub fn hash(secret: &Secret, params: HashParams) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(params)?
        .hash_password(secret.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2 hashing failed: {e}"))
}

/// Verify a secret against a PHC string; the parameters come from the string itself.
/// A malformed stored hash verifies as false.
pub fn verify(secret: &Secret, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(secret.expose().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spend the same time as a real verification, for unknown users.
pub fn verify_dummy(secret: &Secret, params: HashParams) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash(&Secret::new("quill-dummy-password"), params).ok());
    if let Some(phc) = phc {
        let _ = verify(secret, phc);
    }
}

/// A PIN is 6 to 8 decimal digits.
pub fn is_valid_pin(pin: &str) -> bool {
    (6..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: HashParams = HashParams {
        memory_kib: 1024,
        iterations: 1,
    };

    #[test]
    fn hash_then_verify() {
        let h = hash(&Secret::new("correct horse"), FAST).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(verify(&Secret::new("correct horse"), &h));
        assert!(!verify(&Secret::new("correct horsf"), &h));
        assert!(!verify(&Secret::new("x"), "not a phc string"));
    }

    #[test]
    fn salts_differ() {
        let a = hash(&Secret::new("123456"), FAST).unwrap();
        let b = hash(&Secret::new("123456"), FAST).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn pin_rules() {
        assert!(is_valid_pin("123456"));
        assert!(is_valid_pin("12345678"));
        assert!(!is_valid_pin("12345"));
        assert!(!is_valid_pin("123456789"));
        assert!(!is_valid_pin("12345a"));
        assert!(!is_valid_pin("１２３４５６"));
    }

    #[test]
    fn bad_params_are_an_error() {
        assert!(
            hash(
                &Secret::new("x"),
                HashParams {
                    memory_kib: 1,
                    iterations: 0
                }
            )
            .is_err()
        );
    }
}
