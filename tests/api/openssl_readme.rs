//! The README's "Using Quill from OpenSSL" walk-through, run as written: its `sh` block goes to
//! `bash -euo pipefail` in a scratch directory against a real `quill serve`, with the variables
//! the demo banner would give. Every `openssl … -verify` in it must succeed.

use std::process::Command;

use crate::helpers::*;

const README: &str = include_str!("../../README.md");

/// The `sh` blocks of the README section `heading`, in order.
fn section_sh_blocks(heading: &str) -> String {
    let start = README
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let rest = &README[start + heading.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut out = String::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            for code in lines.by_ref() {
                if code.trim() == "```" {
                    break;
                }
                out.push_str(code);
                out.push('\n');
            }
        }
    }
    assert!(!out.is_empty(), "no sh block under {heading:?}");
    out
}

fn run_walkthrough(key: &str, user: &str) {
    let script = section_sh_blocks("## Using Quill from OpenSSL");
    let env = Env::new();
    let s = signer(user);
    let cred = env.enroll(&s, key);
    let app = env.spawn();
    let dir = tempfile::tempdir().unwrap();
    let quill_dir = std::path::Path::new(env!("CARGO_BIN_EXE_quill"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        quill_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("QUILL_URL", &app.base)
        .env("QUILL_USER", &s.user)
        .env("QUILL_PASSWORD", &s.password)
        .env("QUILL_PIN", &s.pin)
        .env("QUILL_TOTP_SECRET", &s.totp_secret)
        .env("CRED", &cred.credential_id)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "README OpenSSL walk-through failed ({key}):\n{stdout}\n{stderr}\n{}",
        env.server_log()
    );
    // openssl cms reports on stderr, openssl ts on stdout.
    assert_eq!(
        stderr.matches("CMS Verification successful").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stdout.matches("Verification: OK").count(), 2, "{stdout}");
    assert!(dir.path().join("doc.txt.p7s").exists());
}

#[test]
fn readme_openssl_walkthrough_with_an_ec_credential() {
    run_walkthrough("ec-p256", "erin");
}

#[test]
fn readme_openssl_walkthrough_with_an_rsa_credential() {
    run_walkthrough("rsa-2048", "frank");
}
