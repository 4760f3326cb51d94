//! The config file, `quill.toml`: `--config FILE`, else `QUILL_CONFIG`, else `./quill.toml` when
//! it exists. Its keys are the long names of the settings that have a `QUILL_*` environment
//! variable, with `_` or `-` (`database_url = "…"`, `listen = "0.0.0.0:8443"`, `token-pin = …`);
//! one file serves every subcommand, each taking the keys it knows. A value becomes the default
//! of its flag, so clap's own order gives the documented precedence:
//! **flag > `QUILL_*` environment variable > config file > built-in default**.
//! An unknown key, a table or an array is refused, naming the key and the file. Values never
//! appear in messages, and `--help` does not show the value of a secret (the token PIN).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Arg, Command};

/// Read when neither `--config` nor `QUILL_CONFIG` is given and it exists.
pub const DEFAULT_PATH: &str = "quill.toml";

/// The settings of one config file: normalised key (`_`, not `-`) → value as text.
#[derive(Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    values: BTreeMap<String, String>,
    /// The file's permission bits, when it was read from disk.
    mode: Option<u32>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The file named by `--config FILE` / `--config=FILE` among `args`, else by `QUILL_CONFIG`,
/// else `./quill.toml` when it exists.
pub fn locate(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    if let Some(path) = std::env::var_os("QUILL_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let default = PathBuf::from(DEFAULT_PATH);
    default.is_file().then_some(default)
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// Parse a config file's text (`path` only names it in messages).
pub fn parse(path: &Path, text: &str) -> anyhow::Result<ConfigFile> {
    // toml's full error display quotes the offending line, which may hold a secret: report the
    // line number and the message only.
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        anyhow::anyhow!(
            "config file {}: invalid TOML at line {line}: {}",
            path.display(),
            e.message().trim_end()
        )
    })?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => anyhow::bail!(
                "config file {}: key `{key}` must be a string, number or boolean",
                path.display()
            ),
        };
        let normalised = key.replace('-', "_");
        anyhow::ensure!(
            values.insert(normalised, text).is_none(),
            "config file {}: key `{key}` is given twice",
            path.display()
        );
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        values,
        mode: None,
    })
}

/// Read and parse a config file.
pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let mut file = parse(path, &text)?;
    file.mode = std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777);
    Ok(file)
}

impl ConfigFile {
    /// The secrets this file holds (keys whose values `--help` hides: the token PIN, URLs that
    /// may carry a password, the TOTP secret) when users other than its owner may read it.
    pub fn exposed_secrets(&self, cmd: &Command) -> Vec<String> {
        if self.mode.is_none_or(|m| m & 0o077 == 0) {
            return Vec::new();
        }
        let mut secret = std::collections::BTreeSet::new();
        collect_secret_keys(cmd, &mut secret);
        self.values
            .iter()
            .filter(|(k, v)| secret.contains(*k) && holds_secret(k, v))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// Whether the value of a secret-hiding key holds a secret. The token PIN and the TOTP secret
/// always do; the database URL and the OTP sender when one of their URLs carries a password
/// (in its user part, or a query parameter named like one), and a `webhook:` gateway URL always
/// (gateways take their credential in the path as often as in the query). A SQLite path, a
/// PostgreSQL URL without password or an `outbox:` file holds none.
fn holds_secret(key: &str, value: &str) -> bool {
    if !matches!(key, "database_url" | "otp_sender") {
        return true;
    }
    value.split(',').map(str::trim).any(|part| {
        if part.starts_with("webhook:") {
            return true;
        }
        let Ok(url) = url::Url::parse(part) else {
            return false;
        };
        url.password().is_some()
            || url.query_pairs().any(|(name, _)| {
                let name = name.to_ascii_lowercase();
                ["pass", "secret", "token", "key"]
                    .iter()
                    .any(|w| name.contains(w))
            })
    })
}

fn collect_secret_keys(cmd: &Command, keys: &mut std::collections::BTreeSet<String>) {
    keys.extend(
        cmd.get_arguments()
            .filter(|a| a.is_hide_env_values_set())
            .filter_map(key_of),
    );
    for sub in cmd.get_subcommands() {
        collect_secret_keys(sub, keys);
    }
}

/// The file key of an argument, when it is a setting (has a `QUILL_*` variable).
fn key_of(arg: &Arg) -> Option<String> {
    let env = arg.get_env()?.to_str()?;
    // One enrolment's secrets (QUILL_ENROLL_*) are no setting: a file would give every
    // enrolment the same password and PIN.
    if !env.starts_with("QUILL_") || env == "QUILL_CONFIG" || env.starts_with("QUILL_ENROLL_") {
        return None;
    }
    Some(arg.get_long()?.replace('-', "_"))
}

fn collect_keys(cmd: &Command, keys: &mut std::collections::BTreeSet<String>) {
    keys.extend(cmd.get_arguments().filter_map(key_of));
    for sub in cmd.get_subcommands() {
        collect_keys(sub, keys);
    }
}

fn with_defaults(cmd: Command, values: &BTreeMap<String, String>) -> Command {
    cmd.mut_args(|arg| match key_of(&arg).and_then(|k| values.get(&k)) {
        Some(value) => {
            let secret = arg.is_hide_env_values_set();
            // clap checks a required argument before defaults count: the file's value
            // satisfies it, so the argument is no longer required
            arg.default_value(value.clone())
                .hide_default_value(secret)
                .required(false)
        }
        None => arg,
    })
    .mut_subcommands(|sub| with_defaults(sub, values))
}

/// Make every value of `file` the default of its argument, in `cmd` and its subcommands; a key
/// no subcommand knows is an error.
pub fn apply(cmd: Command, file: &ConfigFile) -> anyhow::Result<Command> {
    let mut known = std::collections::BTreeSet::new();
    collect_keys(&cmd, &mut known);
    if let Some(unknown) = file.values.keys().find(|k| !known.contains(*k)) {
        anyhow::bail!(
            "unknown key `{unknown}` in config file {} (known keys: {})",
            file.path.display(),
            known.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(with_defaults(cmd, &file.values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> Command {
        Command::new("q")
            .arg(
                Arg::new("log_format")
                    .long("log-format")
                    .env("QUILL_LOG_FORMAT")
                    .default_value("text")
                    .global(true),
            )
            .subcommand(
                Command::new("serve")
                    .arg(
                        Arg::new("listen")
                            .long("listen")
                            .env("QUILL_LISTEN")
                            .default_value("127.0.0.1:8080"),
                    )
                    .arg(
                        Arg::new("token_pin")
                            .long("token-pin")
                            .env("QUILL_TOKEN_PIN")
                            .hide_env_values(true),
                    )
                    .arg(Arg::new("user").long("user")),
            )
    }

    fn file(text: &str) -> anyhow::Result<ConfigFile> {
        parse(Path::new("q.toml"), text)
    }

    #[test]
    fn values_become_defaults_and_flags_still_win() {
        let f = file("listen = \"0.0.0.0:9\"\ntoken-pin = 1234\nlog_format = \"json\"").unwrap();
        let m = apply(cmd(), &f)
            .unwrap()
            .try_get_matches_from(["q", "serve"])
            .unwrap();
        assert_eq!(m.get_one::<String>("log_format").unwrap(), "json");
        let (_, s) = m.subcommand().unwrap();
        assert_eq!(s.get_one::<String>("listen").unwrap(), "0.0.0.0:9");
        assert_eq!(s.get_one::<String>("token_pin").unwrap(), "1234");
        let m = apply(cmd(), &f)
            .unwrap()
            .try_get_matches_from(["q", "serve", "--listen", "1.2.3.4:5"])
            .unwrap();
        let (_, s) = m.subcommand().unwrap();
        assert_eq!(s.get_one::<String>("listen").unwrap(), "1.2.3.4:5");
    }

    #[test]
    fn secrets_are_not_shown_in_help() {
        let f = file("token_pin = \"9876-secret\"\nlisten = \"0.0.0.0:9\"").unwrap();
        let mut c = apply(cmd(), &f).unwrap();
        let serve = c.find_subcommand_mut("serve").unwrap();
        let help = serve.render_long_help().to_string();
        assert!(help.contains("0.0.0.0:9"), "{help}");
        assert!(!help.contains("9876-secret"), "{help}");
    }

    /// The real `quill serve --help`: URLs that may carry a password (database, SMTP relay)
    /// are not shown from the config file either.
    #[test]
    fn urls_with_passwords_are_not_shown_in_help() {
        use clap::CommandFactory;
        let f = file(
            "database_url = \"postgres://quill:FileDbPass@db/quill\"\n\
             otp_sender = \"smtps://quill:SmtpPass@relay\"\nservice_name = \"Shown TSP\"",
        )
        .unwrap();
        let mut c = apply(crate::cli::Cli::command(), &f).unwrap();
        let help = c
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("Shown TSP"), "{help}");
        for secret in ["FileDbPass", "SmtpPass"] {
            assert!(!help.contains(secret), "{secret} in {help}");
        }
    }

    /// A setting clap requires (`quill otp --totp-secret`) is satisfied by the file's key.
    #[test]
    fn a_required_setting_may_come_from_the_file() {
        use clap::{CommandFactory, FromArgMatches};
        let secret = "JBSWY3DPEHPK3PXP";
        let parse = |c: Command| {
            c.try_get_matches_from(["quill", "otp"])
                .map(|m| crate::cli::Cli::from_arg_matches(&m).unwrap())
        };
        assert!(
            parse(crate::cli::Cli::command()).is_err(),
            "required without the file"
        );
        let f = file(&format!("totp_secret = \"{secret}\"")).unwrap();
        let cli = parse(apply(crate::cli::Cli::command(), &f).unwrap()).unwrap();
        match cli.command {
            crate::cli::Command::Otp(a) => assert_eq!(a.totp_secret, secret),
            _ => panic!("not the otp command"),
        }
    }

    #[test]
    fn refusals_name_the_key_and_file_but_no_value() {
        let e = apply(cmd(), &file("user = \"alice\"").unwrap()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("`user`") && msg.contains("q.toml"), "{msg}");
        let e = apply(cmd(), &file("lisen = 1").unwrap()).unwrap_err();
        assert!(e.to_string().contains("`lisen`"));
        let e = file("listen = [1]").unwrap_err().to_string();
        assert!(e.contains("`listen`"), "{e}");
        let e = file("listen = 1\nlisten = 2").unwrap_err().to_string();
        assert!(e.contains("q.toml"), "{e}");
        let e = file("listen = 1\nlisten = 2").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = file("token_pin = \"1234\"\ntoken-pin = \"5678\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice") && !e.contains("1234") && !e.contains("5678"));
        let e = file("token_pin = \"1234-secret\" x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("1234-secret"), "{e}");
    }

    /// A file holding the token PIN that others may read is reported (by key, not value);
    /// a private one, or one without secrets, is not.
    #[test]
    fn secrets_in_a_file_others_may_read_are_reported() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quill.toml");
        let chmod =
            |mode| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::write(&path, "token_pin = \"1234\"\nlisten = \"0.0.0.0:9\"").unwrap();
        chmod(0o644);
        assert_eq!(load(&path).unwrap().exposed_secrets(&cmd()), ["token_pin"]);
        chmod(0o640);
        assert_eq!(load(&path).unwrap().exposed_secrets(&cmd()), ["token_pin"]);
        chmod(0o600);
        assert!(load(&path).unwrap().exposed_secrets(&cmd()).is_empty());
        std::fs::write(&path, "listen = \"0.0.0.0:9\"").unwrap();
        chmod(0o644);
        assert!(load(&path).unwrap().exposed_secrets(&cmd()).is_empty());
        // URLs count when they carry a password; a SQLite path or an outbox does not.
        for (text, exposed) in [
            ("database_url = \"sqlite://var/q.db\"", &[][..]),
            ("database_url = \"postgres://quill@db/quill\"", &[]),
            (
                "database_url = \"postgres://quill:pw@db/quill\"",
                &["database_url"],
            ),
            (
                "database_url = \"postgres://db/quill?password=pw\"",
                &["database_url"],
            ),
            ("otp_sender = \"outbox:var/o.jsonl\"", &[]),
            ("otp_sender = \"outbox:o.jsonl,smtp://relay:25\"", &[]),
            ("otp_sender = \"smtp://u:p@relay:25\"", &["otp_sender"]),
            (
                "otp_sender = \"outbox:o.jsonl,webhook:https://gw/x\"",
                &["otp_sender"],
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            chmod(0o644);
            let quill = <crate::cli::Cli as clap::CommandFactory>::command();
            assert_eq!(
                load(&path).unwrap().exposed_secrets(&quill),
                exposed,
                "{text}"
            );
        }
    }

    #[test]
    fn locate_prefers_the_flag() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            locate(&args(&["quill", "serve", "--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            locate(&args(&["quill", "--config=b.toml", "serve"])),
            Some(PathBuf::from("b.toml"))
        );
    }
}
