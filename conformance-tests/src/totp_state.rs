//! The TOTP time steps the suite presented, kept in a small JSON file across runs so that a
//! run started right after another (or next to it) never presents a code the server already
//! accepted — a correct server refuses that as a replay.
//!
//! The file maps a key to the last step presented:
//!
//! - `<identity>`: a step presented for the whole secret ([`TotpScope::Secret`]);
//! - `<identity>/<credential hash>`: a step presented for one credential
//!   ([`TotpScope::Credential`]).
//!
//! `<identity>` is a SHA-256 hash of the service base URL and the TOTP secret (or the OTP
//! command): the secret itself is never written. Every access holds an exclusive lock on
//! `<file>.lock`, and the file is replaced by renaming a complete new one over it, so
//! concurrent runs neither corrupt it nor reserve the same step twice. A missing, unreadable
//! or corrupt file counts as empty (and is overwritten).
//!
//! [`TotpScope::Secret`]: crate::TotpScope::Secret
//! [`TotpScope::Credential`]: crate::TotpScope::Credential

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Steps recorded this far ahead of the current one are ignored (and dropped): a clock that
/// went back, or a damaged file, must not make the suite wait for ever.
pub const MAX_AHEAD: u64 = 2;
/// Steps this far behind the current one are dropped when the file is written: no server
/// accepts such old codes (2 h).
const KEEP_BEHIND: u64 = 240;
const FORMAT: u64 = 1;
const ABOUT: &str = "csc-conformance: the last TOTP time step (Unix time / 30 s) the suite \
                     presented, per server and secret (SHA-256 keys; no secret is stored). \
                     Safe to delete.";

/// The state file.
#[derive(Debug, Clone)]
pub struct StepFile {
    path: PathBuf,
    /// The directory is in a shared place (the temp dir): refuse it unless it is a real
    /// directory that only its owner can write.
    private_dir: bool,
}

/// The key of a code source: the service and the secret (or command), hashed.
pub fn identity(base_url: &str, kind: &str, material: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"csc-conformance TOTP state v1\0");
    h.update(base_url.as_bytes());
    h.update(b"\0");
    h.update(kind.as_bytes());
    h.update(b"\0");
    h.update(material);
    hex(&h.finalize())
}

/// The part of a key naming one credential (a hash too: IDs can be personal data).
pub fn credential_key(identity: &str, credential: &str) -> String {
    let mut h = Sha256::new();
    h.update(identity.as_bytes());
    h.update(b"\0");
    h.update(credential.as_bytes());
    let digest = h.finalize();
    hex(digest.get(..16).unwrap_or_default())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A user name fit for a file name.
fn user_tag() -> String {
    let user = ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|u| !u.is_empty())
        .unwrap_or_default();
    let tag: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    if tag.is_empty() { "user".into() } else { tag }
}

impl StepFile {
    pub fn new(path: impl Into<PathBuf>) -> StepFile {
        StepFile {
            path: path.into(),
            private_dir: false,
        }
    }

    /// `$XDG_STATE_HOME/csc-conformance/totp-steps.json` when `XDG_STATE_HOME` is an absolute
    /// path, else `<temp dir>/csc-conformance-<user>/totp-steps.json` (that directory is
    /// created 0700 and refused if it is a symbolic link or others can write it).
    pub fn default_location() -> StepFile {
        let xdg = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        match xdg {
            Some(dir) => StepFile::new(dir.join("csc-conformance").join("totp-steps.json")),
            None => StepFile {
                path: std::env::temp_dir()
                    .join(format!("csc-conformance-{}", user_tag()))
                    .join("totp-steps.json"),
                private_dir: true,
            },
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last step recorded for `identity` that matters to `credential`: with a credential
    /// (per-credential scope), the steps presented for the whole secret and for that
    /// credential; without (per-secret scope), every step presented with the secret.
    pub fn last(
        &self,
        identity: &str,
        credential: Option<&str>,
        now_step: u64,
    ) -> Result<Option<u64>, String> {
        self.locked(now_step, |steps| {
            (relevant(steps, identity, credential, now_step), false)
        })
    }

    /// Take `step` for `identity` (and `credential`) unless a step at least as late is
    /// recorded that matters to it (another run took it meanwhile): returns whether it was
    /// taken.
    pub fn reserve(
        &self,
        identity: &str,
        credential: Option<&str>,
        step: u64,
    ) -> Result<bool, String> {
        self.locked(step, |steps| {
            if relevant(steps, identity, credential, step).is_some_and(|last| last >= step) {
                return (false, false);
            }
            steps.insert(key(identity, credential), step);
            (true, true)
        })
    }

    /// Record that `step` was presented (keeps the later of it and what is recorded).
    pub fn record(
        &self,
        identity: &str,
        credential: Option<&str>,
        step: u64,
        now_step: u64,
    ) -> Result<(), String> {
        self.locked(now_step, |steps| {
            let k = key(identity, credential);
            let later = steps.get(&k).is_none_or(|s| *s < step);
            if later {
                steps.insert(k, step);
            }
            ((), later)
        })
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    fn prepare_dir(&self) -> Result<(), String> {
        let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if self.private_dir {
            let meta = fs::symlink_metadata(dir)
                .map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
            if !meta.is_dir() {
                return Err(format!("{} is not a directory", dir.display()));
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o022 != 0 {
                    return Err(format!(
                        "{} can be written by other users: not used",
                        dir.display()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Run `f` on the steps under the lock; write them back when it says they changed.
    fn locked<T>(
        &self,
        now_step: u64,
        f: impl FnOnce(&mut BTreeMap<String, u64>) -> (T, bool),
    ) -> Result<T, String> {
        self.prepare_dir()?;
        let lock_path = self.lock_path();
        let lock = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        lock.lock()
            .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        let mut steps = self.read();
        let (out, changed) = f(&mut steps);
        if changed {
            steps.retain(|_, s| {
                s.saturating_add(KEEP_BEHIND) >= now_step && *s <= now_step + MAX_AHEAD
            });
            self.write(&steps)?;
        }
        drop(lock);
        Ok(out)
    }

    /// The recorded steps; a missing or unparsable file is empty.
    fn read(&self) -> BTreeMap<String, u64> {
        let Ok(text) = fs::read_to_string(&self.path) else {
            return BTreeMap::new();
        };
        parse(&text).unwrap_or_default()
    }

    /// Replace the file: a new one (0600) written in full, renamed over the old one.
    fn write(&self, steps: &BTreeMap<String, u64>) -> Result<(), String> {
        let body = json!({"about": ABOUT, "format": FORMAT, "steps": steps});
        let mut text = serde_json::to_string_pretty(&body).map_err(|e| e.to_string())?;
        text.push('\n');
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(format!(
            ".tmp-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let tmp = PathBuf::from(tmp_name);
        let written = (|| {
            let mut file: File = private_options().write(true).create_new(true).open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("cannot write {}: {e}", self.path.display())
        })
    }
}

/// Open options that create files readable and writable by their owner only.
fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn parse(text: &str) -> Option<BTreeMap<String, u64>> {
    let v: Value = serde_json::from_str(text).ok()?;
    if v.get("format").and_then(Value::as_u64) != Some(FORMAT) {
        return None;
    }
    let steps = v.get("steps")?.as_object()?;
    Some(
        steps
            .iter()
            .filter_map(|(k, s)| Some((k.clone(), s.as_u64()?)))
            .collect(),
    )
}

fn key(identity: &str, credential: Option<&str>) -> String {
    match credential {
        Some(c) => format!("{identity}/{c}"),
        None => identity.to_string(),
    }
}

/// See [`StepFile::last`]; steps more than [`MAX_AHEAD`] after `now_step` are ignored.
fn relevant(
    steps: &BTreeMap<String, u64>,
    identity: &str,
    credential: Option<&str>,
    now_step: u64,
) -> Option<u64> {
    let prefix = format!("{identity}/");
    steps
        .iter()
        .filter(|(k, _)| match credential {
            Some(c) => *k == identity || k.strip_prefix(&prefix) == Some(c),
            None => *k == identity || k.starts_with(&prefix),
        })
        .map(|(_, s)| *s)
        .filter(|s| *s <= now_step + MAX_AHEAD)
        .max()
}

/// A throwaway directory for tests (the crate has no `tempfile` dependency).
#[cfg(test)]
pub(crate) struct TempDir {
    pub path: PathBuf,
}

#[cfg(test)]
impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "csc-conformance-test-{name}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> (TempDir, StepFile) {
        let dir = TempDir::new(name);
        let file = StepFile::new(dir.path.join("sub").join("steps.json"));
        (dir, file)
    }

    #[test]
    fn scopes_and_reservations() {
        let (_d, f) = temp_file("scopes");
        let id = identity("http://h/csc/v2", "totp", b"secret");
        let other = identity("http://h/csc/v2", "totp", b"another secret");
        let (a, b) = (credential_key(&id, "a"), credential_key(&id, "b"));
        assert_eq!(f.last(&id, None, 100).unwrap(), None);
        // Per credential: a's step does not concern b, but does the whole secret.
        assert!(f.reserve(&id, Some(&a), 100).unwrap());
        assert!(!f.reserve(&id, Some(&a), 100).unwrap(), "taken already");
        assert_eq!(f.last(&id, Some(&b), 100).unwrap(), None);
        assert_eq!(f.last(&id, None, 100).unwrap(), Some(100));
        assert!(!f.reserve(&id, None, 100).unwrap());
        assert!(f.reserve(&id, Some(&b), 100).unwrap());
        // Per secret: concerns every credential.
        assert!(f.reserve(&id, None, 101).unwrap());
        assert_eq!(f.last(&id, Some(&a), 101).unwrap(), Some(101));
        assert!(!f.reserve(&id, Some(&b), 101).unwrap());
        // Another secret (or server) is independent.
        assert_eq!(f.last(&other, None, 101).unwrap(), None);
        // record keeps the later step.
        f.record(&id, None, 99, 101).unwrap();
        assert_eq!(f.last(&id, None, 101).unwrap(), Some(101));
        f.record(&id, None, 102, 101).unwrap();
        assert_eq!(f.last(&id, None, 102).unwrap(), Some(102));
    }

    #[test]
    fn steps_far_ahead_or_behind_are_dropped() {
        let (_d, f) = temp_file("ahead");
        let id = identity("u", "totp", b"s");
        f.record(&id, None, 1000, 1000).unwrap();
        // The clock went back an hour: the entry from the "future" is ignored.
        assert_eq!(f.last(&id, None, 880).unwrap(), None);
        assert!(f.reserve(&id, None, 880).unwrap());
        let text = fs::read_to_string(f.path()).unwrap();
        assert!(!text.contains("1000"), "{text}");
        // Two hours later the entry is pruned on the next write.
        let other = identity("u", "totp", b"t");
        f.record(&other, None, 880 + KEEP_BEHIND + 1, 880 + KEEP_BEHIND + 1)
            .unwrap();
        assert_eq!(f.read().len(), 1);
    }

    #[test]
    fn a_corrupt_file_counts_as_empty_and_is_replaced() {
        let (_d, f) = temp_file("corrupt");
        let id = identity("u", "totp", b"s");
        for garbage in [
            "{not json",
            "",
            "[1, 2]",
            r#"{"format": 99, "steps": {}}"#,
            "\u{0}\u{1}",
        ] {
            fs::create_dir_all(f.path().parent().unwrap()).unwrap();
            fs::write(f.path(), garbage).unwrap();
            assert_eq!(f.last(&id, None, 5).unwrap(), None, "{garbage:?}");
            assert!(f.reserve(&id, None, 5).unwrap(), "{garbage:?}");
            assert_eq!(f.last(&id, None, 5).unwrap(), Some(5));
            assert!(parse(&fs::read_to_string(f.path()).unwrap()).is_some());
        }
        // Entries of the wrong type are skipped, the others kept.
        fs::write(
            f.path(),
            format!(r#"{{"format": 1, "steps": {{"{id}": 7, "x": "y"}}}}"#),
        )
        .unwrap();
        assert_eq!(f.last(&id, None, 7).unwrap(), Some(7));
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, f) = temp_file("private");
        f.record(&identity("u", "totp", b"s"), None, 1, 1).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(f.path()), 0o600);
        assert_eq!(mode(&f.lock_path()), 0o600);
        assert_eq!(mode(f.path().parent().unwrap()), 0o700);
        // A shared-place directory others can write is refused.
        let open = f.path().parent().unwrap();
        fs::set_permissions(open, fs::Permissions::from_mode(0o777)).unwrap();
        let shared = StepFile {
            path: f.path().to_path_buf(),
            private_dir: true,
        };
        let e = shared.last("x", None, 1).unwrap_err();
        assert!(e.contains("other users"), "{e}");
    }

    #[test]
    fn an_unusable_location_is_an_error_not_a_panic() {
        let (d, _f) = temp_file("unusable");
        let blocker = d.path.join("file");
        fs::write(&blocker, "x").unwrap();
        let f = StepFile::new(blocker.join("steps.json"));
        assert!(f.last("x", None, 1).is_err());
        assert!(f.reserve("x", None, 1).is_err());
    }

    /// Concurrent runs (threads here; processes lock the same way) never take the same step,
    /// and the file stays valid.
    #[test]
    fn concurrent_reservations_take_each_step_once() {
        let (_d, f) = temp_file("concurrent");
        let id = identity("u", "totp", b"s");
        for step in 1000..1010 {
            let takers = std::thread::scope(|s| {
                let handles: Vec<_> = (0..6)
                    .map(|_| s.spawn(|| f.reserve(&id, None, step).unwrap()))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .filter(|taken| *taken)
                    .count()
            });
            assert_eq!(takers, 1, "step {step}");
            assert!(parse(&fs::read_to_string(f.path()).unwrap()).is_some());
        }
        assert_eq!(f.last(&id, None, 1009).unwrap(), Some(1009));
    }

    #[test]
    fn the_default_location() {
        let f = StepFile::default_location();
        assert!(
            f.path().ends_with("totp-steps.json"),
            "{}",
            f.path().display()
        );
        assert!(f.path().is_absolute());
        assert!(!user_tag().is_empty());
    }
}
