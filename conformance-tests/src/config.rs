//! What the suite needs to know about the server under test and the signer it acts for.

use std::net::SocketAddr;
use std::path::PathBuf;
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

/// Which authorizations must never share a TOTP code (a time step of the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TotpScope {
    /// Each step of a secret (or of an OTP command) is presented once, whichever credential it
    /// authorizes: right for servers that count TOTP replays per user or per OTP token, and
    /// for those that count per credential. Every authorization of a run then needs its own
    /// 30-second step, so N credentials take about N + 1 steps.
    #[default]
    Secret,
    /// Each step is presented once per credential: credentials sharing the secret may use the
    /// same step. Faster with several credentials, but only right for servers that count
    /// replays per credential (as Quill does); a per-user server refuses the second use.
    Credential,
}

/// Where the suite remembers the TOTP steps it presented, so that a later run (or a
/// concurrent one) never presents them again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TotpState {
    /// `$XDG_STATE_HOME/csc-conformance/totp-steps.json`, else
    /// `<temp dir>/csc-conformance-<user>/totp-steps.json`.
    #[default]
    Default,
    /// This file.
    File(PathBuf),
    /// Nothing is kept between runs (a run right after another may present a code the server
    /// already accepted, and fail).
    Memory,
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
    /// Per secret (default) or per credential: which authorizations never share a TOTP step.
    pub totp_scope: TotpScope,
    /// Where the steps presented are kept across runs.
    pub totp_state: TotpState,
    /// Credentials to test; empty means every credential `credentials/list` returns.
    pub credentials: Vec<String>,
    /// Longest single wait the suite accepts for a SAD to expire; the expiry check is skipped
    /// when the SAD lives longer.
    pub max_wait: Duration,
    /// Timeout of one HTTP request.
    pub http_timeout: Duration,
    /// Where the suite listens for the `response_uri` callback of an asynchronous call (port
    /// 0: any free port); None: the callback row is SKIP.
    pub callback_listen: Option<SocketAddr>,
    /// The `response_uri` the server is given; None: `http://<the address bound>/csc-callback`
    /// (set it when the server reaches the suite through NAT or a proxy).
    pub callback_url: Option<String>,
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
            totp_scope: TotpScope::default(),
            totp_state: TotpState::default(),
            credentials: Vec::new(),
            max_wait: Duration::from_secs(30),
            http_timeout: Duration::from_secs(60),
            callback_listen: None,
            callback_url: None,
        }
    }
}
