//! One-time passwords for `credentials/authorize`. A good server accepts a TOTP code once, so
//! the suite never presents a 30-second step twice: per secret (default) or per credential
//! ([`TotpScope`]), in this run and — through the state file of [`crate::totp_state`] — in
//! earlier or concurrent runs against the same server. When the step is used, it waits for
//! the next one.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{OtpSource, TotpScope, TotpState};
use crate::totp_state::{self, StepFile};

/// TOTP step length in seconds.
pub const STEP: u64 = 30;
/// Longest time the OTP command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The time source (replaced in tests).
struct Clock {
    now: Box<dyn Fn() -> u64>,
    sleep: Box<dyn Fn(Duration)>,
}

impl Clock {
    fn system() -> Clock {
        Clock {
            now: Box::new(now_secs),
            sleep: Box::new(std::thread::sleep),
        }
    }
}

/// Codes for the credentials under test.
pub struct OtpProvider {
    source: OtpSource,
    totp: Option<totp_rs::Totp>,
    scope: TotpScope,
    /// The last step used in this run, by [`OtpProvider::history_key`].
    last_step: HashMap<String, u64>,
    /// Steps used in earlier runs; None: this run's memory only.
    file: Option<StepFile>,
    /// The code source in the file: hash of the service URL and the secret or command.
    identity: String,
    clock: Clock,
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
    /// Codes from `source` for the service at `service_url` (the key of the state file).
    pub fn new(
        source: OtpSource,
        service_url: &str,
        scope: TotpScope,
        state: &TotpState,
    ) -> Result<OtpProvider, String> {
        let (totp, identity) = match &source {
            OtpSource::TotpSecret(s) => {
                let secret = parse_base32(s)?;
                let identity = totp_state::identity(service_url, "totp", &secret);
                let totp = totp_rs::Builder::new()
                    .with_algorithm(totp_rs::Algorithm::SHA1)
                    .with_digits(6)
                    .with_step_duration(STEP)
                    .with_skew(0)
                    .with_secret(secret)
                    .build_noncompliant();
                (Some(totp), identity)
            }
            // The command may print a TOTP of a secret only it knows: its text stands for the
            // secret (hashed, as the secret would be).
            OtpSource::Command(cmd) => (
                None,
                totp_state::identity(service_url, "command", cmd.as_bytes()),
            ),
        };
        let file = match state {
            TotpState::Default => Some(StepFile::default_location()),
            TotpState::File(path) => Some(StepFile::new(path)),
            TotpState::Memory => None,
        };
        Ok(OtpProvider {
            source,
            totp,
            scope,
            last_step: HashMap::new(),
            file,
            identity,
            clock: Clock::system(),
        })
    }

    /// Whether codes come from a command (needed for online OTP credentials).
    pub fn has_command(&self) -> bool {
        matches!(self.source, OtpSource::Command(_))
    }

    /// The state file in use (None: memory only, or it failed and was given up).
    pub fn state_file(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(StepFile::path)
    }

    /// This run's history key of `cred`: one history for the secret, or one per credential.
    fn history_key(&self, cred: &str) -> String {
        match self.scope {
            TotpScope::Secret => String::new(),
            TotpScope::Credential => cred.to_string(),
        }
    }

    /// The credential part of the state file's key (None: the whole secret).
    fn file_credential(&self, cred: &str) -> Option<String> {
        match self.scope {
            TotpScope::Secret => None,
            TotpScope::Credential => Some(totp_state::credential_key(&self.identity, cred)),
        }
    }

    /// The state file failed: say so once and go on with this run's memory.
    fn give_up_file(&mut self, e: &str) {
        eprintln!(
            "csc-conformance: warning: TOTP state file: {e}; going on without it (a code \
             presented by an earlier run may be presented again)"
        );
        self.file = None;
    }

    /// Sleep until the current TOTP step is later than every step used for `cred` (in this
    /// run, earlier runs or concurrent ones) and take it; returns that step.
    fn fresh_step(&mut self, cred: &str) -> u64 {
        let key = self.history_key(cred);
        let file_cred = self.file_credential(cred);
        loop {
            let now = (self.clock.now)();
            let step = now / STEP;
            let mut last = self.last_step.get(&key).copied();
            if let Some(file) = &self.file {
                match file.last(&self.identity, file_cred.as_deref(), step) {
                    Ok(l) => last = last.max(l),
                    Err(e) => self.give_up_file(&e),
                }
            }
            if let Some(last) = last.filter(|l| step <= *l) {
                let next = (last + 1) * STEP;
                let wait = next.saturating_sub(now).min(STEP + 1);
                (self.clock.sleep)(Duration::from_secs(wait) + Duration::from_millis(200));
                continue;
            }
            if let Some(file) = &self.file {
                match file.reserve(&self.identity, file_cred.as_deref(), step) {
                    Ok(true) => {}
                    // Another run took it since: look again.
                    Ok(false) => continue,
                    Err(e) => self.give_up_file(&e),
                }
            }
            self.last_step.insert(key, step);
            return step;
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
        let after = (self.clock.now)() / STEP;
        if self.totp.is_none() && after > step {
            self.last_step.insert(self.history_key(cred), after);
            let file_cred = self.file_credential(cred);
            if let Some(file) = &self.file
                && let Err(e) = file.record(&self.identity, file_cred.as_deref(), after, after)
            {
                self.give_up_file(&e);
            }
        }
        Ok(code)
    }

    /// A code that is not the current one (nor one of the two steps either side, which a
    /// server may accept for clock skew). The step history is left alone, so the real code is
    /// still unused afterwards.
    pub fn wrong_offline_code(&self, cred: &str) -> Result<String, String> {
        let real: Vec<String> = match (&self.totp, &self.source) {
            (Some(totp), _) => {
                let step = (self.clock.now)() / STEP;
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
    use crate::totp_state::TempDir;
    use std::cell::Cell;
    use std::rc::Rc;

    const SECRET: &str = "JBSWY3DPEHPK3PXP";
    const URL: &str = "http://127.0.0.1:9/csc/v2";

    fn memory(secret: &str) -> OtpProvider {
        OtpProvider::new(
            OtpSource::TotpSecret(secret.into()),
            URL,
            TotpScope::Secret,
            &TotpState::Memory,
        )
        .unwrap()
    }

    /// A provider whose clock is `t` (seconds); sleeping advances it.
    fn at(
        t: &Rc<Cell<u64>>,
        source: OtpSource,
        scope: TotpScope,
        state: &TotpState,
    ) -> OtpProvider {
        let mut p = OtpProvider::new(source, URL, scope, state).unwrap();
        let (now, slept) = (t.clone(), t.clone());
        p.clock = Clock {
            now: Box::new(move || now.get()),
            sleep: Box::new(move |d| slept.set(slept.get() + d.as_secs())),
        };
        p
    }

    fn totp() -> OtpSource {
        OtpSource::TotpSecret(SECRET.into())
    }

    fn code_of(step: u64) -> String {
        memory(SECRET)
            .totp
            .unwrap()
            .generate(step * STEP)
            .to_string()
    }

    #[test]
    fn rfc6238_vector_and_base32() {
        // RFC 6238 appendix B, SHA-1, T = 59 s, 8 digits "94287082" → 6 digits "287082".
        let secret = parse_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(secret, b"12345678901234567890");
        let p = memory("gezd gnbv gy3t qojq gezd gnbv gy3t qojq");
        assert_eq!(p.totp.as_ref().unwrap().generate(59).to_string(), "287082");
        assert!(parse_base32("not base32!").is_err());
    }

    #[test]
    fn wrong_codes_match_no_nearby_step_and_keep_the_history() {
        let p = memory(SECRET);
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
    fn a_step_is_never_used_twice_in_a_run() {
        let t = Rc::new(Cell::new(1000 * STEP + 5));
        // Per secret: the second credential waits for the next step.
        let mut p = at(&t, totp(), TotpScope::Secret, &TotpState::Memory);
        assert_eq!(p.offline_code("a").unwrap(), code_of(1000));
        assert_eq!(p.offline_code("b").unwrap(), code_of(1001));
        assert_eq!(t.get() / STEP, 1001, "it waited for the next step");
        assert_eq!(p.offline_code("a").unwrap(), code_of(1002));
        // Per credential: each credential has its own history.
        t.set(2000 * STEP + 5);
        let mut p = at(&t, totp(), TotpScope::Credential, &TotpState::Memory);
        assert_eq!(p.offline_code("a").unwrap(), code_of(2000));
        assert_eq!(p.offline_code("b").unwrap(), code_of(2000));
        assert_eq!(t.get(), 2000 * STEP + 5, "no wait");
        assert_eq!(p.offline_code("a").unwrap(), code_of(2001));
        let real = now_secs() / STEP;
        let mut p = memory(SECRET);
        p.last_step.insert(String::new(), real - 1);
        let code = p.offline_code("a").unwrap();
        let step = p.last_step[""];
        assert!(step >= real && step <= now_secs() / STEP);
        assert_eq!(code, code_of(step));
    }

    /// The bug the state file fixes: without it, a run right after another presents the step
    /// the first one ended with.
    #[test]
    fn memory_only_runs_forget_each_other() {
        let t = Rc::new(Cell::new(1000 * STEP + 5));
        let mut first = at(&t, totp(), TotpScope::Secret, &TotpState::Memory);
        let mut second = at(&t, totp(), TotpScope::Secret, &TotpState::Memory);
        assert_eq!(first.offline_code("a").unwrap(), code_of(1000));
        assert_eq!(second.offline_code("a").unwrap(), code_of(1000));
    }

    #[test]
    fn a_step_used_in_one_run_is_not_used_in_the_next() {
        let dir = TempDir::new("otp-runs");
        let state = TotpState::File(dir.path.join("steps.json"));
        let t = Rc::new(Cell::new(1000 * STEP + 5));
        let mut first = at(&t, totp(), TotpScope::Secret, &state);
        assert_eq!(first.offline_code("a").unwrap(), code_of(1000));
        drop(first);
        // A new run (a new provider, nothing in memory), started in the same step.
        let mut second = at(&t, totp(), TotpScope::Secret, &state);
        assert_eq!(second.offline_code("a").unwrap(), code_of(1001));
        assert_eq!(t.get() / STEP, 1001, "it waited for the next step");
        // Per secret: another credential of the secret does not reuse it either.
        let mut third = at(&t, totp(), TotpScope::Secret, &state);
        assert_eq!(third.offline_code("b").unwrap(), code_of(1002));
        // A per-credential run respects what a per-secret run used, and vice versa.
        let mut per_cred = at(&t, totp(), TotpScope::Credential, &state);
        assert_eq!(per_cred.offline_code("c").unwrap(), code_of(1003));
        assert_eq!(per_cred.offline_code("d").unwrap(), code_of(1003));
        let mut per_cred2 = at(&t, totp(), TotpScope::Credential, &state);
        assert_eq!(per_cred2.offline_code("c").unwrap(), code_of(1004));
        assert_eq!(per_cred2.offline_code("e").unwrap(), code_of(1004));
        let mut per_secret = at(&t, totp(), TotpScope::Secret, &state);
        assert_eq!(per_secret.offline_code("x").unwrap(), code_of(1005));
        assert!(per_secret.state_file().is_some(), "the file stayed in use");
        // Another server, or another secret, has its own steps.
        let mut elsewhere = at(&t, totp(), TotpScope::Secret, &state);
        elsewhere.identity = totp_state::identity("http://other/csc/v2", "totp", b"k");
        let before = t.get();
        elsewhere.offline_code("a").unwrap();
        assert_eq!(t.get(), before, "no wait");
    }

    #[test]
    fn a_corrupt_state_file_is_tolerated() {
        let dir = TempDir::new("otp-corrupt");
        let path = dir.path.join("steps.json");
        std::fs::write(&path, "{\"format\": 1, \"steps\": [garbage").unwrap();
        let t = Rc::new(Cell::new(1000 * STEP + 5));
        let mut p = at(
            &t,
            totp(),
            TotpScope::Secret,
            &TotpState::File(path.clone()),
        );
        assert_eq!(p.offline_code("a").unwrap(), code_of(1000));
        assert!(p.state_file().is_some());
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["steps"].as_object().unwrap().len(), 1, "{text}");
        // An unusable location: a warning, and the run goes on from memory.
        let blocker = dir.path.join("a-file");
        std::fs::write(&blocker, "x").unwrap();
        let state = TotpState::File(blocker.join("steps.json"));
        let mut p = at(&t, totp(), TotpScope::Secret, &state);
        assert_eq!(p.offline_code("a").unwrap(), code_of(1000));
        assert!(p.state_file().is_none(), "given up");
        assert_eq!(p.offline_code("a").unwrap(), code_of(1001));
    }

    #[test]
    fn the_state_file_holds_no_secret() {
        let dir = TempDir::new("otp-secret");
        let path = dir.path.join("steps.json");
        let state = TotpState::File(path.clone());
        let t = Rc::new(Cell::new(1000 * STEP + 5));
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let source = OtpSource::TotpSecret(secret.into());
        at(&t, source.clone(), TotpScope::Secret, &state)
            .offline_code("cred-one")
            .unwrap();
        at(&t, source, TotpScope::Credential, &state)
            .offline_code("cred-two")
            .unwrap();
        let command = format!("echo 123456 # quill otp --totp-secret {secret}");
        at(&t, OtpSource::Command(command), TotpScope::Secret, &state)
            .offline_code("cred-three")
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lower = text.to_ascii_lowercase();
        for needle in [
            secret.to_ascii_lowercase(),
            "3132333435363738393031323334353637383930".into(), // the secret's bytes in hex
            "1234567890".into(),
            "quill otp".into(),
            "cred-".into(),
            "127.0.0.1".into(),
        ] {
            assert!(!lower.contains(&needle), "{needle:?} in {text}");
        }
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let steps = v["steps"].as_object().unwrap();
        assert_eq!(steps.len(), 3, "{text}");
        for (key, step) in steps {
            assert!(
                key.chars().all(|c| c.is_ascii_hexdigit() || c == '/'),
                "{key}"
            );
            assert!(step.is_u64());
        }
    }
}
