//! Time-based one-time passwords (RFC 6238 via totp-rs): SHA-1, 6 digits, 30-second steps, one
//! step of skew either side — what every authenticator app speaks.

use totp_rs::{Algorithm, Builder, Secret as TotpSecret, Totp};
use zeroize::Zeroizing;

use crate::secret::Secret;

pub const ISSUER: &str = "Quill";

fn totp(secret: &[u8], account: Option<&str>) -> Result<Totp, String> {
    let mut b = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(secret.to_vec());
    if let Some(account) = account {
        b = b
            .with_account_name(account.replace(':', "_"))
            .with_issuer(Some(ISSUER));
    }
    b.build().map_err(|e| format!("invalid TOTP secret: {e}"))
}

/// Decode a base32 TOTP secret (RFC 4648, padding optional, case-insensitive). At least 128 bits.
pub fn parse_secret(base32: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let cleaned: String = base32
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect::<String>()
        .to_ascii_uppercase();
    let bytes = TotpSecret::try_from_base32(&cleaned)
        .map_err(|_| "the TOTP secret is not valid base32".to_string())?
        .as_bytes()
        .to_vec();
    if bytes.len() < 16 {
        return Err("the TOTP secret must be at least 128 bits".into());
    }
    Ok(Zeroizing::new(bytes))
}

/// A new random 160-bit secret.
pub fn generate_secret() -> Zeroizing<Vec<u8>> {
    use rand::RngCore;
    let mut bytes = vec![0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    Zeroizing::new(bytes)
}

pub fn to_base32(secret: &[u8]) -> Secret {
    Secret::new(TotpSecret::from(secret.to_vec()).to_base32())
}

/// `otpauth://totp/Quill:<account>?secret=…&issuer=Quill` for authenticator apps.
pub fn otpauth_uri(secret: &[u8], account: &str) -> Result<Secret, String> {
    totp(secret, Some(account))?
        .to_url()
        .map(Secret::new)
        .map_err(|e| format!("cannot build otpauth URI: {e}"))
}

/// The time step matched by `code` at `now` (±1 step), if any. Comparison is constant-time.
pub fn verify(secret: &[u8], code: &Secret, now: i64) -> Option<u64> {
    let code = code.expose();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(now).ok()?;
    totp(secret, None).ok()?.check(code, now)
}

/// The code for `now` (tests, the demo walk-through and the conformance suite use this).
pub fn generate(secret: &[u8], now: i64) -> Result<String, String> {
    let now = u64::try_from(now).map_err(|_| "time before 1970".to_string())?;
    Ok(totp(secret, None)?.generate(now).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B secret "12345678901234567890" (SHA-1), 8-digit vectors truncated to
    // the last 6 digits: T=59 → 94287082 → 287082; T=1111111109 → 07081804 → 081804.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_vectors() {
        assert_eq!(generate(RFC_SECRET, 59).unwrap(), "287082");
        assert_eq!(generate(RFC_SECRET, 1_111_111_109).unwrap(), "081804");
    }

    #[test]
    fn verify_window() {
        let now = 1_700_000_000;
        let code = Secret::new(generate(RFC_SECRET, now).unwrap());
        // The matched step is the code's own, wherever in the ±1 step window it is judged
        // (replay protection stores it); two steps away it is refused.
        let step = u64::try_from(now / 30).unwrap();
        for at in [now, now + 30, now - 30] {
            assert_eq!(verify(RFC_SECRET, &code, at), Some(step), "at {at}");
        }
        for at in [now + 60, now - 60, now + 90] {
            assert_eq!(verify(RFC_SECRET, &code, at), None, "at {at}");
        }
        assert!(verify(RFC_SECRET, &Secret::new("12345"), now).is_none());
        assert!(verify(RFC_SECRET, &Secret::new("abcdef"), now).is_none());
    }

    #[test]
    fn secrets() {
        let s = generate_secret();
        let b32 = to_base32(&s);
        assert_eq!(parse_secret(b32.expose()).unwrap().as_slice(), s.as_slice());
        assert_eq!(
            parse_secret(&b32.expose().to_lowercase())
                .unwrap()
                .as_slice(),
            s.as_slice()
        );
        assert!(parse_secret("AAAA").is_err());
        assert!(parse_secret("not base32!").is_err());
        let uri = otpauth_uri(&s, "alice").unwrap();
        assert!(uri.expose().starts_with("otpauth://totp/Quill:alice?"));
        assert!(uri.expose().contains(b32.expose()));
    }
}
