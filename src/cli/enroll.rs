//! `quill enroll`: onboard an identity-proofed user and print one JSON object
//! `{"user", "credential_id", "totp_secret", "otpauth_uri"}`.

use std::sync::Arc;

use clap::Args;

use crate::clock::SystemClock;
use crate::config::{HashArgs, StoreArgs, TokenArgs};
use crate::qscd::Qscd;
use crate::secret::Secret;
use crate::service::enrol::{self, EnrolRequest};
use crate::store::Store;

#[derive(Args)]
pub struct EnrollArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub token: TokenArgs,
    #[command(flatten)]
    pub hash: HashArgs,
    /// User name (the login name for auth/login).
    #[arg(long)]
    pub user: String,
    /// Password for auth/login (at least 8 characters; must match for an existing user).
    /// Prefer the environment variable: a command line is visible to every local user
    /// (`/proc/PID/cmdline`) and stays in shell history.
    #[arg(long, env = "QUILL_ENROLL_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Signing PIN: 6 to 8 digits (environment variable preferred, as for the password).
    #[arg(long, env = "QUILL_ENROLL_PIN", hide_env_values = true)]
    pub pin: String,
    /// Key algorithm: rsa-2048, rsa-3072, ec-p256 or ec-p384.
    #[arg(long)]
    pub key: String,
    /// Base32 TOTP secret (generated when absent; environment variable preferred).
    #[arg(
        long,
        env = "QUILL_ENROLL_TOTP_SECRET",
        hide_env_values = true,
        conflicts_with = "otp"
    )]
    pub totp_secret: Option<String>,
    /// Online OTP instead of TOTP: sms:+NUMBER or email:ADDRESS (a code is sent per signature).
    #[arg(long)]
    pub otp: Option<String>,
    /// Certificate subject common name (defaults to the user name).
    #[arg(long)]
    pub common_name: Option<String>,
    /// Most signatures one authorization may produce.
    #[arg(long, default_value_t = 100)]
    pub multisign: i32,
    /// Free-text description shown by credentials/info.
    #[arg(long)]
    pub description: Option<String>,
    /// Validity of the certificate from now, in days.
    #[arg(long, default_value_t = enrol::CERT_DAYS)]
    pub cert_days: u32,
}

pub fn run(args: EnrollArgs) -> anyhow::Result<()> {
    // Validate what needs no token or database first, so bad input fails fast.
    enrol::key_spec(&args.key)?;
    enrol::check_cert_days(args.cert_days)?;
    anyhow::ensure!(
        crate::auth::password::is_valid_pin(&args.pin),
        "weak PIN: a PIN is 6 to 8 digits"
    );
    let store = Store::open_for_command(&args.store.database_url, 2)?;
    let qscd: Arc<dyn Qscd> = args.token.open()?;
    let outcome = enrol::enrol(
        &store,
        &qscd,
        &SystemClock,
        args.hash.params(),
        EnrolRequest {
            user: args.user,
            password: Secret::new(args.password),
            pin: Secret::new(args.pin),
            key: args.key,
            totp_secret: args.totp_secret.map(Secret::new),
            online_otp: args.otp,
            common_name: args.common_name,
            multisign: args.multisign,
            cert_days: args.cert_days,
            description: args.description,
        },
    )?;
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}
