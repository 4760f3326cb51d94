//! `quill otp --totp-secret BASE32`: print the current 6-digit TOTP code (what an authenticator
//! app would show). For the demo walk-through and the conformance suite's `--otp-command`.

use clap::Args;

use crate::auth::otp;
use crate::clock::{Clock, SystemClock};

#[derive(Args)]
pub struct OtpArgs {
    /// Base32 TOTP secret, as printed by `quill enroll`.
    #[arg(long, env = "QUILL_TOTP_SECRET", hide_env_values = true)]
    pub totp_secret: String,
    /// Seconds to add to the current time (e.g. 30 for the next code).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub offset: i64,
}

pub fn run(args: OtpArgs) -> anyhow::Result<()> {
    let secret = otp::parse_secret(&args.totp_secret).map_err(anyhow::Error::msg)?;
    let code =
        otp::generate(&secret, SystemClock.now() + args.offset).map_err(anyhow::Error::msg)?;
    println!("{code}");
    Ok(())
}
