//! The black-box CSC v2 conformance suite (`conformance-tests/`, crate `csc-conformance`)
//! against Quill: in process it finds nothing wrong and really runs its core checks (PASS, not
//! SKIP); the `csc-conformance` binary does the same and writes JUnit XML; and given a wrong PIN
//! the suite fails — so it can fail — without locking the credentials.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use csc_conformance::{Config, OtpSource, Outcome, Report, names as n};

use crate::helpers::*;

/// A Quill with one user holding an RSA-2048 and an EC P-256 credential, and SADs that live
/// 5 s, so the expiry check runs (yet a loaded machine still signs well within the lifetime).
struct Served {
    env: Env,
    app: TestApp,
    s: Signer,
    rsa: String,
    ec: String,
}

fn serve(name: &str) -> Served {
    let env = Env::new();
    let s = signer(name);
    let rsa = env.enroll(&s, "rsa-2048").credential_id;
    let ec = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn_with(&["--sad-ttl", "5"]);
    Served {
        env,
        app,
        s,
        rsa,
        ec,
    }
}

fn config(w: &Served, pin: &str) -> Config {
    let mut c = Config::new(
        &w.app.base,
        &w.s.user,
        &w.s.password,
        pin,
        OtpSource::TotpSecret(w.s.totp_secret.clone()),
    );
    c.max_wait = Duration::from_secs(10);
    c
}

/// The one row `name` has for `cred` (None: a service-level row).
fn row<'r>(report: &'r Report, name: &str, cred: Option<&str>) -> &'r csc_conformance::CheckResult {
    let rows: Vec<_> = report
        .named(name)
        .into_iter()
        .filter(|r| cred.is_none() || r.credential.as_deref() == cred)
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "one row {name:?} for {cred:?}:\n{}",
        report.table()
    );
    rows[0]
}

fn assert_pass(report: &Report, name: &str, cred: Option<&str>) -> String {
    let r = row(report, name, cred);
    assert_eq!(
        r.outcome,
        Outcome::Pass,
        "{name} [{cred:?}]: {}\n{}",
        r.detail,
        report.table()
    );
    r.detail.clone()
}

#[test]
fn conformance_suite_passes_against_quill() {
    let w = serve("conny");
    let report = csc_conformance::run(&config(&w, &w.s.pin)).expect("the suite runs");
    println!("{}", report.table());
    let failures: Vec<String> = report
        .failures()
        .iter()
        .map(|r| format!("{}: {}", r.label(), r.detail))
        .collect();
    assert!(
        failures.is_empty(),
        "{}\nserver log:\n{}\nFAILED: {failures:#?}",
        report.table(),
        w.env.server_log()
    );
    assert_eq!(
        report.count(Outcome::Skip),
        0,
        "Quill implements everything the suite checks:\n{}",
        report.table()
    );
    assert_eq!(report.exit_code(), 0);

    for name in [
        n::INFO,
        n::INFO_FORMATS,
        n::NO_TOKEN,
        n::BAD_TOKEN,
        n::LOGIN_MALFORMED,
        n::LOGIN,
        n::LIST,
        n::LIST_INFOS,
        n::INFO_MISSING_ID,
        n::INFO_UNKNOWN_ID,
        n::INFO_BAD_CERTIFICATES,
        n::AUTHZ_MISSING_ID,
        n::AUTHZ_UNKNOWN_ID,
        n::REVOKE,
        n::REVOKED_TOKEN,
        n::REQUESTS,
    ] {
        assert_pass(&report, name, None);
    }
    for cred in [&w.rsa, &w.ec] {
        let c = Some(cred.as_str());
        for name in [
            n::CRED_INFO,
            n::CRED_FORMATS,
            n::CRED_CHAIN,
            n::CRED_KEY,
            n::AUTHZ,
        ] {
            assert_pass(&report, name, c);
        }
        for name in n::MAIN_TASK {
            assert_pass(&report, name, c);
        }
    }
    // Several credentials: the wrong-PIN check runs on the last listed one, the SAD lifecycle
    // (second SAD, extendTransaction, expiry) on the first.
    assert_pass(&report, n::AUTHZ_WRONG_PIN, None);
    for name in n::LIFECYCLE_TASK {
        assert_pass(&report, name, None);
    }
    let expiry = assert_pass(&report, n::SAD_EXPIRY, None);
    assert!(expiry.contains("SAD expired"), "{expiry}");
    // Both RSA schemes were signed and verified.
    let rsa = Some(w.rsa.as_str());
    assert!(assert_pass(&report, n::SIGN_FIRST, rsa).contains("sha256WithRSAEncryption"));
    assert!(assert_pass(&report, n::SIGN_SECOND, rsa).contains("RSASSA-PSS"));
    assert!(assert_pass(&report, n::SIGN_FIRST, Some(w.ec.as_str())).contains("ecdsa-with-SHA256"));
}

/// `target/<profile>/csc-conformance`, built next to `quill` by a workspace build.
fn conformance_binary() -> PathBuf {
    let quill = PathBuf::from(env!("CARGO_BIN_EXE_quill"));
    let bin = quill
        .parent()
        .unwrap()
        .join(format!("csc-conformance{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the csc-conformance binary is not at {}: build the whole workspace first \
         (`cargo build --workspace`, or run the tests with `cargo nextest run --workspace` / \
         `cargo test --workspace`), which builds it next to quill",
        bin.display()
    );
    bin
}

#[test]
fn conformance_binary_passes_and_writes_junit() {
    let bin = conformance_binary();
    let w = serve("junie");
    let junit = w.env.dir.path().join("conformance.xml");
    // The OTP comes from a command (`quill otp`), as it would for a hardware token or an app.
    let otp_command = format!(
        "'{}' otp --totp-secret {}",
        env!("CARGO_BIN_EXE_quill"),
        w.s.totp_secret
    );
    let out = Command::new(&bin)
        .args(["--base-url", &w.app.base])
        .args(["--user", &w.s.user, "--password", &w.s.password])
        .args(["--pin", &w.s.pin, "--otp-command", &otp_command])
        .args(["--max-wait-secs", "10", "--junit"])
        .arg(&junit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        w.env.server_log()
    );
    assert!(stdout.contains(" passed, 0 failed, 0 skipped"), "{stdout}");
    assert!(stdout.lines().next().unwrap().starts_with("check "));

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("the JUnit file is well-formed XML");
    let suite = doc
        .descendants()
        .find(|e| e.has_tag_name("testsuite"))
        .expect("a testsuite");
    let cases: Vec<_> = suite
        .children()
        .filter(|e| e.has_tag_name("testcase"))
        .collect();
    assert!(cases.len() > 40, "{} testcases", cases.len());
    assert_eq!(
        suite.attribute("tests"),
        Some(cases.len().to_string().as_str())
    );
    assert_eq!(suite.attribute("failures"), Some("0"));
    assert!(
        cases
            .iter()
            .all(|c| !c.children().any(|x| x.has_tag_name("failure")))
    );
    let names: Vec<&str> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    assert!(names.contains(&n::INFO), "{names:?}");
    assert!(
        names
            .iter()
            .any(|x| x.starts_with(n::SIGN_SECOND) && x.contains(&w.rsa)),
        "{names:?}"
    );

    // Usage and connection errors are exit code 2.
    let usage = Command::new(&bin)
        .args(["--base-url", &w.app.base, "--user", "u", "--password", "p"])
        .args(["--pin", "123456"])
        .output()
        .unwrap();
    assert_eq!(
        usage.status.code(),
        Some(2),
        "neither --totp-secret nor --otp-command"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = Command::new(&bin)
        .args(["--base-url", &dead, "--user", "u", "--password", "p"])
        .args(["--pin", "123456", "--totp-secret", &w.s.totp_secret])
        .output()
        .unwrap();
    assert_eq!(
        unreachable.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&unreachable.stderr)
    );
}

#[test]
fn conformance_suite_fails_with_a_wrong_pin_without_locking() {
    let w = serve("wendy");
    let wrong = csc_conformance::checks::wrong_pin(&w.s.pin);
    let report = csc_conformance::run(&config(&w, &wrong)).expect("the suite runs");
    println!("{}", report.table());
    assert_eq!(report.exit_code(), 1);
    let failed: Vec<String> = report.failures().iter().map(|r| r.label()).collect();
    for cred in [&w.rsa, &w.ec] {
        let r = row(&report, n::AUTHZ, Some(cred.as_str()));
        assert_eq!(r.outcome, Outcome::Fail, "{}", report.table());
        assert!(
            r.detail.contains("invalid_authentication_data"),
            "{}",
            r.detail
        );
        assert_eq!(
            row(&report, n::SIGN_FIRST, Some(cred.as_str())).outcome,
            Outcome::Skip
        );
    }
    assert_eq!(failed.len(), 2, "{failed:?}");
    // The suite never retried a failed authorization: at most two failures per credential, so
    // both still work with the right PIN (and that success resets Quill's counters).
    let token = w.app.login(&w.s.user, &w.s.password);
    for cred in [&w.rsa, &w.ec] {
        let info = w.app.credential_info(&token, cred);
        assert_eq!(info["key"]["status"], "enabled");
        w.app
            .authorize(&token, &w.s, cred, &[digest(SHA256, b"after")], SHA256);
    }
}
