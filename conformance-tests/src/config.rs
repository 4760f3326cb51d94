//! What the suite needs to know about the server under test and the signer it acts for.

use std::time::Duration;

/// Where one-time passwords come from.
#[derive(Debug, Clone)]
pub enum OtpSource {
    /// An RFC 6238 TOTP secret (base32; SHA-1, 6 digits, 30-second steps — what authenticator
    /// apps use). The suite computes the codes itself.
    TotpSecret(String),
    /// A shell command (`sh -c`) that prints the current OTP on stdout. It runs with
    /// `CSC_CREDENTIAL_ID` set (and `CSC_CHALLENGE` when `credentials/getChallenge` returned one).
    /// For online OTP credentials the suite calls `credentials/getChallenge` (or
    /// `credentials/sendOTP`) before running it.
    Command(String),
}

/// A conformance run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Service base URL; the suite calls `<base>/csc/v2/<method>` (a base already ending in
    /// `/csc/v2` is used as is).
    pub base_url: String,
    /// `auth/login` user name (HTTP Basic).
    pub user: String,
    pub password: String,
    /// The signing PIN of the credentials under test.
    pub pin: String,
    pub otp: OtpSource,
    /// Credentials to test; empty means every credential `credentials/list` returns.
    pub credentials: Vec<String>,
    /// Longest single wait the suite accepts for a SAD to expire; the expiry check is skipped
    /// when the SAD lives longer.
    pub max_wait: Duration,
    /// Timeout of one HTTP request.
    pub http_timeout: Duration,
}

impl Config {
    /// Settings with the defaults for everything optional.
    pub fn new(
        base_url: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
        pin: impl Into<String>,
        otp: OtpSource,
    ) -> Config {
        Config {
            base_url: base_url.into(),
            user: user.into(),
            password: password.into(),
            pin: pin.into(),
            otp,
            credentials: Vec::new(),
            max_wait: Duration::from_secs(30),
            http_timeout: Duration::from_secs(60),
        }
    }
}
