//! One-time passwords for `credentials/authorize`. A good server accepts a TOTP code once per
//! credential, so the suite remembers the last 30-second step it used for each credential and
//! waits for the next one instead of sending a code twice.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::OtpSource;

/// TOTP step length in seconds.
pub const STEP: u64 = 30;
/// Longest time the OTP command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Codes for the credentials under test.
pub struct OtpProvider {
    source: OtpSource,
    totp: Option<totp_rs::Totp>,
    last_step: HashMap<String, u64>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Decode a base32 secret (case-insensitive, spaces and padding ignored).
pub fn parse_base32(secret: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = secret
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    let bytes = totp_rs::Secret::try_from_base32(&cleaned)
        .map_err(|_| "the TOTP secret is not valid base32".to_string())?
        .as_bytes()
        .to_vec();
    if bytes.is_empty() {
        return Err("the TOTP secret is empty".into());
    }
    Ok(bytes)
}

impl OtpProvider {
    pub fn new(source: OtpSource) -> Result<OtpProvider, String> {
        let totp = match &source {
            OtpSource::TotpSecret(s) => Some(
                totp_rs::Builder::new()
                    .with_algorithm(totp_rs::Algorithm::SHA1)
                    .with_digits(6)
                    .with_step_duration(STEP)
                    .with_skew(0)
                    .with_secret(parse_base32(s)?)
                    .build_noncompliant(),
            ),
            OtpSource::Command(_) => None,
        };
        Ok(OtpProvider {
            source,
            totp,
            last_step: HashMap::new(),
        })
    }

    /// Whether codes come from a command (needed for online OTP credentials).
    pub fn has_command(&self) -> bool {
        matches!(self.source, OtpSource::Command(_))
    }

    /// Sleep until the current TOTP step is later than the last one used for `cred` (at most
    /// one step, about 30 s); returns that step.
    fn fresh_step(&self, cred: &str) -> u64 {
        loop {
            let now = now_secs();
            let step = now / STEP;
            match self.last_step.get(cred) {
                Some(last) if step <= *last => {
                    let next = (last + 1) * STEP;
                    let wait = next.saturating_sub(now).min(STEP + 1);
                    std::thread::sleep(Duration::from_secs(wait) + Duration::from_millis(200));
                }
                _ => return step,
            }
        }
    }

    /// A time-based code (offline OTP) for `cred` that the suite has not sent before.
    pub fn offline_code(&mut self, cred: &str) -> Result<String, String> {
        let step = self.fresh_step(cred);
        let code = match (&self.totp, &self.source) {
            (Some(totp), _) => totp.generate(step * STEP).to_string(),
            (None, OtpSource::Command(cmd)) => run_command(cmd, cred, None)?,
            (None, OtpSource::TotpSecret(_)) => return Err("no TOTP generator".into()),
        };
        // The command may have run into the next step: never reuse whatever it printed.
        let after = now_secs() / STEP;
        let used = if self.totp.is_some() {
            step
        } else {
            step.max(after)
        };
        self.last_step.insert(cred.to_string(), used);
        Ok(code)
    }

    /// A code that is not the current one (nor one of the two steps either side, which a
    /// server may accept for clock skew). The step history is left alone, so the real code is
    /// still unused afterwards.
    pub fn wrong_offline_code(&self, cred: &str) -> Result<String, String> {
        let real: Vec<String> = match (&self.totp, &self.source) {
            (Some(totp), _) => {
                let step = now_secs() / STEP;
                (step.saturating_sub(2)..=step + 2)
                    .map(|s| totp.generate(s * STEP).to_string())
                    .collect()
            }
            (None, OtpSource::Command(cmd)) => vec![run_command(cmd, cred, None)?],
            (None, OtpSource::TotpSecret(_)) => return Err("no TOTP generator".into()),
        };
        Ok(differing_code(&real))
    }

    /// A code for an online OTP (the challenge was already triggered): only a command can
    /// supply it.
    pub fn online_code(&self, cred: &str, challenge: Option<&str>) -> Result<String, String> {
        match &self.source {
            OtpSource::Command(cmd) => run_command(cmd, cred, challenge),
            OtpSource::TotpSecret(_) => Err(
                "the credential uses an online OTP (challenge); pass --otp-command to fetch it"
                    .into(),
            ),
        }
    }
}

/// A code of the same format as `real[0]` that equals none of `real`.
pub fn differing_code(real: &[String]) -> String {
    let base = real.first().cloned().unwrap_or_else(|| "000000".into());
    if base.is_empty() {
        return "000000".into();
    }
    let mut chars: Vec<char> = base.chars().collect();
    for _ in 0..40 {
        // Count up from the right, digit by digit (wrapping); a letter gets a suffix.
        for c in chars.iter_mut().rev() {
            match c.to_digit(10) {
                Some(9) => *c = '0',
                Some(d) => {
                    *c = char::from_digit(d + 1, 10).unwrap_or('0');
                    break;
                }
                None => {
                    *c = 'x';
                    break;
                }
            }
        }
        let candidate: String = chars.iter().collect();
        if !real.contains(&candidate) {
            return candidate;
        }
    }
    format!("{base}x")
}

/// Run `sh -c cmd` and return its first non-empty stdout line.
pub fn run_command(cmd: &str, cred: &str, challenge: Option<&str>) -> Result<String, String> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .env("CSC_CREDENTIAL_ID", cred)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(c) = challenge {
        command.env("CSC_CHALLENGE", c);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run the OTP command: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the OTP command did not finish within {} s",
                    COMMAND_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for the OTP command: {e}")),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut out)
            .map_err(|e| format!("reading the OTP command's output: {e}"))?;
    }
    if !status.success() {
        return Err(format!("the OTP command failed ({status})"));
    }
    out.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "the OTP command printed nothing".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vector_and_base32() {
        // RFC 6238 appendix B, SHA-1, T = 59 s, 8 digits "94287082" → 6 digits "287082".
        let secret = parse_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(secret, b"12345678901234567890");
        let p = OtpProvider::new(OtpSource::TotpSecret(
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq".into(),
        ))
        .unwrap();
        assert_eq!(p.totp.as_ref().unwrap().generate(59).to_string(), "287082");
        assert!(parse_base32("not base32!").is_err());
    }

    #[test]
    fn wrong_codes_match_no_nearby_step_and_keep_the_history() {
        let p = OtpProvider::new(OtpSource::TotpSecret("JBSWY3DPEHPK3PXP".into())).unwrap();
        let wrong = p.wrong_offline_code("a").unwrap();
        let step = now_secs() / STEP;
        let totp = p.totp.as_ref().unwrap();
        for s in step - 1..=step + 1 {
            assert_ne!(wrong, totp.generate(s * STEP).to_string());
        }
        assert_eq!(wrong.len(), 6);
        assert!(wrong.chars().all(|c| c.is_ascii_digit()));
        assert!(p.last_step.is_empty(), "the real code must stay unused");
        assert_eq!(
            differing_code(&["123459".into(), "123460".into()]),
            "123461"
        );
        assert_eq!(differing_code(&["999999".into()]), "000000");
    }

    #[test]
    fn command_gets_the_credential_id() {
        let out = run_command(
            "echo \"$CSC_CREDENTIAL_ID-$CSC_CHALLENGE\"",
            "c1",
            Some("x"),
        )
        .unwrap();
        assert_eq!(out, "c1-x");
        assert!(run_command("exit 3", "c1", None).is_err());
        assert!(run_command("true", "c1", None).is_err());
    }

    #[test]
    fn a_step_is_never_used_twice_per_credential() {
        let mut p = OtpProvider::new(OtpSource::TotpSecret("JBSWY3DPEHPK3PXP".into())).unwrap();
        let before = now_secs() / STEP;
        p.last_step.insert("a".into(), before - 1);
        let code = p.offline_code("a").unwrap();
        let step = p.last_step["a"];
        assert!(step >= before && step <= now_secs() / STEP);
        assert_eq!(
            code,
            p.totp.as_ref().unwrap().generate(step * STEP).to_string()
        );
        // another credential has its own history
        p.offline_code("b").unwrap();
        assert!(p.last_step["b"] >= before);
        assert_eq!(code.len(), 6);
    }
}
