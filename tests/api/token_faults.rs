//! Token faults: `quill serve` runs on SoftHSM2 through a fault-injecting PKCS#11 module
//! (`tests/faults/pkcs11_fault.c`, compiled here with the system C compiler) that can make the
//! real module close every session of the process (a genuine PKCS#11 session loss: the process is
//! logged out too) or fail calls with CKR_DEVICE_ERROR (a broken HSM). Session loss must be
//! absorbed (sessions re-opened, token logged in again, no failed request); a token error must be
//! a 503 CSC error with the SAD given back, `/readyz` failing, and full service once it clears.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

const ES256: &str = "1.2.840.10045.4.3.2";

/// The fault module, built once per test process.
fn fault_module() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/faults/pkcs11_fault.c");
        let out =
            std::env::temp_dir().join(format!("quill-pkcs11-fault-{}.so", std::process::id()));
        let status = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror"])
            .args(["-I/usr/include/p11-kit-1", "-o"])
            .arg(&out)
            .arg(src)
            .args(["-ldl", "-lpthread"])
            .status()
            .expect("a C compiler (cc) for the fault module");
        assert!(
            status.success(),
            "cannot build {src} (needs libp11-kit-dev: .ci/deps installs it)"
        );
        out
    })
}

/// A server whose token goes through the fault module.
struct Faulty {
    _dir: tempfile::TempDir,
    app: Arc<TestApp>,
    control: PathBuf,
    calls: PathBuf,
}

impl Faulty {
    fn spawn(env: &Env) -> Faulty {
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("fault");
        let calls = dir.path().join("calls.log");
        std::fs::write(&control, "").unwrap();
        let (app, _) = env.spawn_custom(&[], |cmd| {
            cmd.env("QUILL_PKCS11_MODULE", fault_module())
                .env("QUILL_FAULT_REAL_MODULE", SOFTHSM_MODULE)
                .env("QUILL_FAULT_CONTROL", &control)
                .env("QUILL_FAULT_LOG", &calls);
        });
        Faulty {
            _dir: dir,
            app: Arc::new(app),
            control,
            calls,
        }
    }

    fn fault(&self, mode: &str) {
        std::fs::write(&self.control, mode).unwrap();
    }

    /// PKCS#11 calls the server made so far, one `C_Name rv=0x…` per line.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A 200 whose one signature verifies over `digest`.
fn signed(key: &p256::ecdsa::VerifyingKey, digest: &[u8], r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.body);
    verify_p256(key, digest, r.body["signatures"][0].as_str().unwrap());
}

/// signHash of `hs[i]` for each `i` in `range`, all at once; the answers by index.
fn sign_in_parallel(
    app: &Arc<TestApp>,
    token: &str,
    cred: &str,
    sad: &str,
    hs: &[Vec<u8>],
    range: std::ops::Range<usize>,
) -> Vec<(usize, Resp)> {
    let workers: Vec<_> = range
        .map(|i| {
            let (app, token, cred, sad, h) = (
                app.clone(),
                token.to_string(),
                cred.to_string(),
                sad.to_string(),
                hs[i].clone(),
            );
            std::thread::spawn(move || (i, sign_one(&app, &token, &cred, &sad, &h)))
        })
        .collect();
    workers.into_iter().map(|w| w.join().unwrap()).collect()
}

fn sign_one(app: &TestApp, token: &str, cred: &str, sad: &str, h: &[u8]) -> Resp {
    app.sign_hash_raw(
        token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(h)], "signAlgo": ES256}),
    )
}

/// The index of the first line at or after `from` that starts with `prefix`.
fn find_call(calls: &[String], from: usize, prefix: &str) -> Option<usize> {
    calls
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.starts_with(prefix))
        .map(|(i, _)| i)
}

fn hashes(n: u32) -> Vec<Vec<u8>> {
    (0..n).map(|i| digest(SHA256, &i.to_be_bytes())).collect()
}

#[test]
fn session_loss_is_absorbed_sessions_reopened_and_token_logged_in_again() {
    let env = Env::new();
    let s = signer("olga");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let f = Faulty::spawn(&env);
    let app = f.app.clone();
    let token = app.login(&s.user, &s.password);
    let key = p256_key(&app, &token, &cred);
    let hs = hashes(12);
    let sad = app.authorize(&token, &s, &cred, &hs, SHA256);
    signed(&key, &hs[0], &sign_one(&app, &token, &cred, &sad, &hs[0]));

    // Loss in the middle of a signHash: the module closes every session of the process.
    let mark = f.calls().len();
    f.fault("close-sessions");
    signed(&key, &hs[1], &sign_one(&app, &token, &cred, &sad, &hs[1]));
    assert_eq!(std::fs::read_to_string(&f.control).unwrap(), "", "it fired");
    let calls = f.calls();
    let closed = find_call(&calls, mark, "fault:C_CloseAllSessions rv=0x0")
        .unwrap_or_else(|| panic!("{calls:#?}"));
    // The session in use was found dead, a new one opened and the token logged in again.
    assert!(
        find_call(&calls, closed, "C_SignInit rv=0xb3").is_some(),
        "CKR_SESSION_HANDLE_INVALID seen: {calls:#?}"
    );
    let opened =
        find_call(&calls, closed, "C_OpenSession rv=0x0").unwrap_or_else(|| panic!("{calls:#?}"));
    find_call(&calls, opened, "C_Login rv=0x0").unwrap_or_else(|| panic!("{calls:#?}"));
    find_call(&calls, opened, "C_Sign rv=0x0").unwrap_or_else(|| panic!("{calls:#?}"));

    // Loss while idle, found by the readiness probe: still ready, then signing works.
    f.fault("close-sessions");
    assert_eq!(app.get("/readyz").status(), 200);
    assert_eq!(std::fs::read_to_string(&f.control).unwrap(), "");
    signed(&key, &hs[2], &sign_one(&app, &token, &cred, &sad, &hs[2]));

    // Loss under concurrent load (several pooled sessions in use at once): every call succeeds.
    f.fault("close-sessions");
    for (i, r) in sign_in_parallel(&app, &token, &cred, &sad, &hs, 3..12) {
        signed(&key, &hs[i], &r);
    }
    assert_eq!(std::fs::read_to_string(&f.control).unwrap(), "");
    let closes = f
        .calls()
        .iter()
        .filter(|l| l.starts_with("fault:C_CloseAllSessions"))
        .count();
    assert_eq!(closes, 3);
    // Twelve spends, each a signature made: no token error was recorded.
    let count = |outcome: &str| {
        env.db_i64(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log WHERE outcome = '{outcome}'"
        ))
    };
    assert_eq!(count("sad_spent"), 12);
    assert_eq!(count("token_error"), 0);
    audit_verifies(&env);
}

#[test]
fn token_error_is_503_the_sad_is_refunded_and_service_returns_when_it_clears() {
    let env = Env::new();
    let s = signer("pavel");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let f = Faulty::spawn(&env);
    let app = f.app.clone();
    let token = app.login(&s.user, &s.password);
    let key = p256_key(&app, &token, &cred);
    let hs = hashes(6);
    let sad = app.authorize(&token, &s, &cred, &hs, SHA256);

    f.fault("device-error");
    let r = sign_one(&app, &token, &cred, &sad, &hs[0]);
    r.assert_error(503, "temporarily_unavailable");
    // Concurrent calls while the token is down: every one a 503, never a 500 or a signature.
    for (_, r) in sign_in_parallel(&app, &token, &cred, &sad, &hs, 1..6) {
        r.assert_error(503, "temporarily_unavailable");
    }
    assert_eq!(app.get("/healthz").status(), 200);
    let ready = app.get("/readyz");
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("token"),
        "{body}"
    );

    // An authorization while the token is down (the TOTP secret cannot be unsealed) is a 503
    // and no guess: the attempt it reserved is given back, so outages cannot lock signers.
    for _ in 0..2 {
        app.authorize_raw(&token, &s, &cred, &[digest(SHA256, b"outage")], SHA256)
            .assert_error(503, "temporarily_unavailable");
    }
    assert_eq!(
        env.db_i64(&format!(
            "SELECT CAST(failed_auths AS BIGINT) AS n FROM credentials WHERE id = '{cred}'"
        )),
        0
    );

    // Nothing was spent: the SAD still holds its six signatures and every hash is unused,
    // and each failure is in the audit trail as a refunded token error.
    assert_eq!(
        env.db_i64("SELECT CAST(remaining AS BIGINT) AS n FROM sads"),
        6
    );
    assert_eq!(env.used_digests("TRUE"), 0);
    assert_eq!(
        env.db_i64(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log \
             WHERE outcome = 'token_error' AND detail LIKE '%\"refunded\":true%'"
        ),
        6
    );

    // The token comes back: ready again, sessions re-opened and logged in, same SAD signs.
    let mark = f.calls().len();
    f.fault("");
    let until = Instant::now() + Duration::from_secs(10);
    while app.get("/readyz").status() != 200 {
        assert!(Instant::now() < until, "not ready again");
        std::thread::sleep(Duration::from_millis(50));
    }
    let calls = f.calls();
    let opened =
        find_call(&calls, mark, "C_OpenSession rv=0x0").unwrap_or_else(|| panic!("{calls:#?}"));
    find_call(&calls, opened, "C_Login rv=0x0").unwrap_or_else(|| panic!("{calls:#?}"));
    for h in &hs {
        signed(&key, h, &sign_one(&app, &token, &cred, &sad, h));
    }
    // …and no more than it authorized.
    sign_one(&app, &token, &cred, &sad, &hs[0]).assert_error(400, "invalid_request");
    assert_eq!(
        env.db_i64("SELECT CAST(remaining AS BIGINT) AS n FROM sads"),
        0
    );
    audit_verifies(&env);
}
