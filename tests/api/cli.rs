//! `quill enroll` and `quill demo` from the outside.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::*;

#[test]
fn enroll_validates_input_and_adds_credentials() {
    let env = Env::new();
    let s = signer("gina");
    let base = |key: &str, pin: &str, pw: &str| {
        vec![
            "--user".to_string(),
            s.user.clone(),
            "--password".into(),
            pw.into(),
            "--pin".into(),
            pin.into(),
            "--key".into(),
            key.into(),
        ]
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        env.try_enroll(&refs)
    };
    let err = run(base("dsa-1024", "123456", &s.password)).unwrap_err();
    assert!(err.contains("unknown key algorithm"), "{err}");
    // the certificate's common name: not empty, blank, over 64 characters or with controls
    for cn in ["", "  ", &"é".repeat(65), "Ann\nCN=Evil"] {
        let mut args = base("ec-p256", "123456", &s.password);
        args.extend(["--common-name".into(), cn.to_string()]);
        let err = run(args).unwrap_err();
        assert!(err.contains("common name"), "{cn:?}: {err}");
    }
    for pin in ["12345", "123456789", "12a456"] {
        let err = run(base("ec-p256", pin, &s.password)).unwrap_err();
        assert!(err.contains("PIN"), "{err}");
    }
    // generated TOTP secret, one JSON object
    let first = run(base("ec-p256", "123456", &s.password)).unwrap();
    assert_eq!(first.user, s.user);
    assert!(
        first
            .otpauth_uri
            .as_deref()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert!(quill::auth::otp::parse_secret(first.totp_secret.as_deref().unwrap()).is_ok());
    // an existing user with the wrong password
    let err = run(base("ec-p256", "123456", "wrong-password")).unwrap_err();
    assert!(err.contains("password"), "{err}");
    // same password: a second credential, with a certificate of 10 days
    for days in ["0", "3654"] {
        let mut args = base("ec-p384", "123456", &s.password);
        args.extend(["--cert-days".into(), days.into()]);
        let err = run(args).unwrap_err();
        assert!(err.contains("between 1 and 3653 days"), "{days}: {err}");
    }
    let mut args = base("ec-p384", "123456", &s.password);
    args.extend(["--cert-days".into(), "10".into()]);
    let enrolled_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let second = run(args).unwrap();
    assert_ne!(first.credential_id, second.credential_id);
    let not_after = |id: &str| {
        env.db_i64(&format!(
            "SELECT not_after AS n FROM credentials WHERE id = '{id}'"
        ))
    };
    let ten_days = not_after(&second.credential_id) - enrolled_at;
    assert!(
        (10 * 86_400 - 5..=10 * 86_400 + 5).contains(&ten_days),
        "{ten_days}"
    );
    let two_years = not_after(&first.credential_id) - enrolled_at;
    assert!(
        (730 * 86_400 - 60..=730 * 86_400).contains(&two_years),
        "{two_years}"
    );
    // bad TOTP secret
    let mut args = base("ec-p256", "123456", &s.password);
    args.extend(["--totp-secret".into(), "not-base32!".into()]);
    assert!(run(args).is_err());
    // missing token PIN is a clear error
    let out = env
        .quill()
        .env_remove("QUILL_TOKEN_PIN")
        .arg("enroll")
        .args(base("ec-p256", "123456", &s.password))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token PIN"));

    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let list = app.post(
        "/csc/v2/credentials/list",
        Some(&token),
        &serde_json::json!({}),
    );
    assert_eq!(list.body["credentialIDs"].as_array().unwrap().len(), 2);
}

/// Start `quill demo` in a directory and return what it printed before serving.
fn demo_once(dir: &std::path::Path) -> (String, std::process::Child) {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_quill"));
    demo.args(["demo", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("SOFTHSM2_CONF")
        .env("QUILL_LOG", "warn")
        .stderr(Stdio::null());
    demo_until_serving(demo)
}

/// Spawn a `quill demo` command and return what it printed on stdout before serving.
fn demo_until_serving(mut demo: Command) -> (String, std::process::Child) {
    let mut child = demo.stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        text.push_str(&line);
        if line.starts_with("{\"listening\"") {
            break;
        }
    }
    (text, child)
}

/// `quill demo` with a PKCS#11 module other than SoftHSM2's (here SoftHSM2 under another file
/// name, configured by the caller's SOFTHSM2_CONF) makes its token with that module's own
/// configuration: no SoftHSM2 configuration or token directory of its own, a message that names
/// the module, a banner that says the token outlives the demo's directory, and a working server.
#[test]
fn demo_with_another_module_uses_that_module_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let conf = softhsm_conf(dir.path(), "module-tokens", "module.conf");
    let tokens = dir.path().join("module-tokens");
    let module = dir.path().join("libother-pkcs11.so");
    std::os::unix::fs::symlink(SOFTHSM_MODULE, &module).unwrap();
    let log = dir.path().join("demo.err");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_quill"));
    demo.args(["demo", "--listen", "127.0.0.1:0", "--pkcs11-module"])
        .arg(&module)
        .current_dir(dir.path())
        .env("SOFTHSM2_CONF", &conf)
        .env("QUILL_LOG", "warn")
        .stderr(std::fs::File::create(&log).unwrap());
    let (text, mut child) = demo_until_serving(demo);
    let listening =
        serde_json::from_str::<Value>(text.lines().last().unwrap()).unwrap()["listening"]
            .as_str()
            .unwrap()
            .to_string();
    let info = reqwest::blocking::Client::new()
        .post(format!("http://{listening}/csc/v2/info"))
        .json(&json!({}))
        .send()
        .unwrap();
    let status = info.status();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200);
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        err.contains(&format!(
            "created token \"quill-demo\" with {}",
            module.display()
        )),
        "{err}"
    );
    assert!(!err.contains("SoftHSM2 token"), "{err}");
    let var = dir.path().join("var");
    assert!(var.join("demo-user.json").exists());
    assert!(!var.join("softhsm2.conf").exists() && !var.join("tokens").exists());
    // the token is in the module's own directory
    assert_eq!(std::fs::read_dir(&tokens).unwrap().count(), 1);
    assert!(text.contains("is the PKCS#11 module's"), "{text}");
    assert!(field(&text, "password").starts_with("demo-"));
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .map(|r| r.trim_start().trim_start_matches(':').trim())
        })
        .unwrap_or_else(|| panic!("{name} missing from demo output:\n{text}"))
}

#[test]
fn demo_starts_serves_and_restarts_without_enrolling_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (text, mut child) = demo_once(dir.path());
    let user = field(&text, "user").to_string();
    let password = field(&text, "password").to_string();
    let pin = field(&text, "PIN").to_string();
    let totp = field(&text, "TOTP secret").to_string();
    let rsa = field(&text, "RSA-2048 credential").to_string();
    assert!(field(&text, "otpauth URI").starts_with("otpauth://"));
    assert!(text.contains("curl"));
    let addr: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let listening = addr["listening"].as_str().unwrap().to_string();
    let app_base = format!("http://{listening}");
    // the banner names the port it got (asked for port 0) and the directory it uses
    assert_eq!(
        field(&text, "CSC API v2 base URL"),
        format!("{app_base}/csc/v2")
    );
    let state_dir = std::fs::canonicalize(dir.path()).unwrap().join("var");
    assert!(
        text.contains(&format!("delete the {} directory", state_dir.display())),
        "{text}"
    );
    // a second demo on the taken port fails before it makes or prints any secret, naming it
    let other = tempfile::tempdir().unwrap();
    let taken = Command::new(env!("CARGO_BIN_EXE_quill"))
        .args(["demo", "--listen", &listening])
        .current_dir(other.path())
        .env_remove("SOFTHSM2_CONF")
        .output()
        .unwrap();
    assert!(!taken.status.success());
    let out = String::from_utf8_lossy(&taken.stdout);
    assert!(!out.contains("password") && !out.contains("PIN"), "{out}");
    let err = String::from_utf8_lossy(&taken.stderr);
    assert!(
        err.contains(&format!("cannot listen on {listening}")),
        "{err}"
    );
    assert!(!other.path().join("var/demo-user.json").exists());
    let client = reqwest::blocking::Client::new();
    let login = |base: &str| -> String {
        let path = "/csc/v2/auth/login";
        let req = client
            .post(format!("{base}{path}"))
            .basic_auth(&user, Some(&password));
        send_checked(path, req, "{}").body["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let post = |base: &str, token: &str, path: &str, body: serde_json::Value| {
        let req = client.post(format!("{base}{path}")).bearer_auth(token);
        send_checked(path, req, &body.to_string()).body
    };
    let token = login(&app_base);
    let h = digest(SHA256, b"demo");
    let s = Signer {
        user: user.clone(),
        password: password.clone(),
        pin,
        totp_secret: totp,
        used_steps: Default::default(),
    };
    let r = post(
        &app_base,
        &token,
        "/csc/v2/credentials/authorize",
        serde_json::json!({"credentialID": rsa, "numSignatures": 1, "hashes": [b64(&h)], "hashAlgorithmOID": SHA256,
            "authData": [{"id": "PIN", "value": s.pin}, {"id": "OTP", "value": s.next_otp(&rsa)}]}),
    );
    let sad = r["SAD"].as_str().expect("demo credentials authorize");
    let r = post(
        &app_base,
        &token,
        "/csc/v2/signatures/signHash",
        serde_json::json!({"credentialID": rsa, "SAD": sad, "hashes": [b64(&h)], "signAlgo": "1.2.840.113549.1.1.11"}),
    );
    assert_eq!(r["signatures"].as_array().unwrap().len(), 1);
    let _ = child.kill();
    let _ = child.wait();

    // second start: same user, same credentials, nothing enrolled again
    let (text2, mut child2) = demo_once(dir.path());
    assert_eq!(field(&text2, "RSA-2048 credential"), rsa);
    let addr: serde_json::Value = serde_json::from_str(text2.lines().last().unwrap()).unwrap();
    let base2 = format!("http://{}", addr["listening"].as_str().unwrap());
    let token = login(&base2);
    let list = post(
        &base2,
        &token,
        "/csc/v2/credentials/list",
        serde_json::json!({}),
    );
    assert_eq!(list["credentialIDs"].as_array().unwrap().len(), 2);
    let _ = child2.kill();
    let _ = child2.wait();
}

/// Two P-256 credentials of one signer on a running server, and a SAD for one digest of the
/// first, issued before an operator command acts on it.
struct OperatorCase {
    env: Env,
    s: Signer,
    app: TestApp,
    token: String,
    cred: String,
    other: String,
    h: Vec<u8>,
    sad: String,
}

impl OperatorCase {
    fn new(name: &str) -> OperatorCase {
        let env = Env::new();
        let s = signer(name);
        let cred = env.enroll(&s, "ec-p256").credential_id;
        let other = env.enroll(&s, "ec-p256").credential_id;
        let app = env.spawn();
        let token = app.login(&s.user, &s.password);
        let h = digest(SHA256, name.as_bytes());
        let sad = app.authorize(&token, &s, &cred, std::slice::from_ref(&h), SHA256);
        OperatorCase {
            env,
            s,
            app,
            token,
            cred,
            other,
            h,
            sad,
        }
    }

    /// signHash of the digest with the SAD.
    fn sign(&self) -> Resp {
        self.app.sign_hash_raw(
            &self.token,
            json!({"credentialID": self.cred, "SAD": self.sad, "hashes": [b64(&self.h)],
                   "hashAlgorithmOID": SHA256, "signAlgo": "1.2.840.10045.4.3.2"}),
        )
    }

    /// A 200 whose signature verifies under the credential's certificate as served now.
    fn assert_signed(&self, r: &Resp) {
        assert_eq!(r.status, 200, "{}", r.body);
        let key = p256_key(&self.app, &self.token, &self.cred);
        verify_p256(&key, &self.h, r.body["signatures"][0].as_str().unwrap());
    }

    /// Operator records of `action` on the credential.
    fn audited(&self, action: &str) -> i64 {
        self.env.db_i64(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = '{action}' \
             AND credential_id = '{}' AND actor = 'operator'",
            self.cred
        ))
    }
}

/// A certificate signs from its notBefore second through its notAfter second: one not yet
/// valid (set in the database behind Quill's back) signs nothing by signHash or signDoc, with
/// its own error, is left out of `onlyValid`, and its SAD is not spent.
#[test]
fn a_certificate_not_yet_valid_does_not_sign() {
    let case = OperatorCase::new("early");
    let OperatorCase {
        env,
        app,
        token,
        cred,
        other,
        sad,
        h,
        ..
    } = &case;
    let set_not_before = |t: i64| {
        assert_eq!(
            env.db_execute(&format!(
                "UPDATE credentials SET not_before = {t} WHERE id = '{cred}'"
            )),
            1
        );
    };
    set_not_before(4_102_444_800);
    let r = case.sign();
    r.assert_error(400, "invalid_request");
    assert_eq!(r.description(), "Signing certificate is not yet valid");
    let r = app.post(
        "/csc/v2/signatures/signDoc",
        Some(token),
        &json!({"credentialID": cred, "SAD": sad,
                "documentDigests": [{"hashes": [b64(h)], "hashAlgorithmOID": SHA256,
                    "signature_format": "C", "signAlgo": "1.2.840.10045.4.3.2"}]}),
    );
    r.assert_error(400, "invalid_request");
    assert_eq!(r.description(), "Signing certificate is not yet valid");
    let valid = app.post(
        "/csc/v2/credentials/list",
        Some(token),
        &json!({"onlyValid": true}),
    );
    assert_eq!(
        valid.body["credentialIDs"],
        json!([other]),
        "{}",
        valid.body
    );
    set_not_before(0);
    let r = case.sign();
    case.assert_signed(&r);
}

/// `quill credential renew`: a new certificate for the credential's key, same subject, new
/// serial and validity, issued by the development CA and served at once by a running server;
/// a SAD issued before the renewal still signs, and the signature verifies under the new
/// certificate. The certificate's expiry (here set in the database behind Quill's back) stops
/// signing until then. Bad input changes nothing.
#[test]
fn renew_gives_a_credential_a_new_certificate_for_its_key() {
    let case = OperatorCase::new("renewer");
    let OperatorCase {
        env,
        app,
        token,
        cred,
        other,
        ..
    } = &case;
    let (old, ca) = chain(&app.credential_info(token, cred));
    let (other_before, _) = chain(&app.credential_info(token, other));

    // An expired certificate: no signature, and the SAD is not spent.
    assert_eq!(
        env.db_execute(&format!(
            "UPDATE credentials SET not_after = 1000 WHERE id = '{cred}'"
        )),
        1
    );
    let r = case.sign();
    r.assert_error(400, "invalid_request");
    assert_eq!(r.description(), "Signing certificate is expired");

    // `expiring` lists it (ended), the other only in a wider window, soonest first.
    let expiring = |args: &[&str]| -> Vec<(String, String, String)> {
        let args = [&["credential", "expiring"], args].concat();
        env.quill_ok(&args)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let field = |k: &str| v[k].as_str().unwrap().to_owned();
                (field("credential_id"), field("user"), field("status"))
            })
            .collect()
    };
    let row = |id: &str| (id.to_owned(), "renewer".to_owned(), "enabled".to_owned());
    assert_eq!(expiring(&["--within-days", "0"]), [row(cred)]);
    assert_eq!(expiring(&["--within-days", "800"]), [row(cred), row(other)]);
    assert_eq!(
        expiring(&["--within-days", "800", "--limit", "1"]),
        [row(cred)]
    );

    let renew = |args: &[&str]| {
        env.quill()
            .args(["credential", "renew"])
            .args(args)
            .output()
            .unwrap()
    };
    // Refusals first: nothing changes.
    for (args, says) in [
        (vec!["--credential", "no-such-credential"], "no credential"),
        (
            vec!["--credential", cred, "--days", "0"],
            "between 1 and 3653",
        ),
        (
            vec!["--credential", cred, "--days", "3654"],
            "between 1 and 3653",
        ),
    ] {
        let out = renew(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
    }
    assert_eq!(case.audited("renew_certificate"), 0);

    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let stdout = env.quill_ok(&["credential", "renew", "--credential", cred, "--days", "30"]);
    let after = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    let renewed: Value = serde_json::from_str(&stdout).unwrap();
    let hex_serial =
        |c: &x509_cert::Certificate| hex::encode_upper(c.tbs_certificate.serial_number.as_bytes());
    assert_eq!(renewed["credential_id"], cred.as_str());
    assert_eq!(renewed["previous_serial_number"], hex_serial(&old));
    let not_after = renewed["not_after"].as_i64().unwrap();
    assert!((before + 30 * 86_400..=after + 30 * 86_400).contains(&not_after));

    // The running server serves the new certificate: same key and subject, new serial, the
    // same CA; the chain still ends with it.
    let info = app.credential_info(token, cred);
    assert_eq!(info["cert"]["status"], "valid");
    let (new, ca_now) = chain(&info);
    assert_eq!(ca_now, ca);
    assert_issued_by(&new, &ca);
    assert_eq!(renewed["serial_number"], hex_serial(&new));
    assert_ne!(hex_serial(&new), hex_serial(&old));
    assert_eq!(spki_der(&new), spki_der(&old));
    assert_eq!(new.tbs_certificate.subject, old.tbs_certificate.subject);
    assert_eq!(
        new.tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs(),
        u64::try_from(not_after).unwrap()
    );
    assert_eq!(expiring(&["--within-days", "29"]), []);
    assert_eq!(expiring(&["--within-days", "31"]), [row(cred)]);
    // The other credential is untouched.
    assert_eq!(chain(&app.credential_info(token, other)).0, other_before);

    // The SAD from before the renewal signs now, under the new certificate.
    case.assert_signed(&case.sign());

    // One audit record, with both serial numbers; the chain still verifies.
    assert_eq!(case.audited("renew_certificate"), 1);
    let serials = env.db_i64(&format!(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'renew_certificate' \
         AND detail LIKE '%{}%' AND detail LIKE '%{}%'",
        hex_serial(&old),
        hex_serial(&new)
    ));
    assert_eq!(serials, 1);
    audit_verifies(env);
    assert!(!env.server_log().contains("panicked"));
}

/// `quill credential disable` suspends a credential while the server runs: `key.status`
/// disabled, left out of `onlyValid`, no authorization and no signature even with a SAD issued
/// before (nothing spent); `enable` lifts it and that SAD signs. Both are audited with the
/// reason, idempotent, and leave other statuses alone.
#[test]
fn disable_and_enable_suspend_a_credential_while_serving() {
    let case = OperatorCase::new("suspended");
    let OperatorCase {
        env,
        app,
        token,
        cred,
        other,
        h,
        ..
    } = &case;
    let run = |args: &[&str]| {
        let out = env.quill().arg("credential").args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr)
    };
    let key_status = |id: &str| app.credential_info(token, id)["key"]["status"].clone();

    let (ok, out, err) = run(&["disable", "--credential", cred, "--reason", "lost phone"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        json!({"credential_id": cred, "status": "disabled", "changed": true})
    );
    assert_eq!(key_status(cred), "disabled");
    assert_eq!(key_status(other), "enabled");
    let valid = app.post(
        "/csc/v2/credentials/list",
        Some(token),
        &json!({"onlyValid": true}),
    );
    assert_eq!(valid.body["credentialIDs"], json!([other]));
    let r = case.sign();
    r.assert_error(400, "invalid_request");
    assert_eq!(
        r.description(),
        "The credential identified by credentialID is disabled"
    );
    assert_eq!(env.used_digests(&format!("credential_id = '{cred}'")), 0);
    let r = app.authorize_raw(token, &case.s, cred, std::slice::from_ref(h), SHA256);
    r.assert_error(400, "invalid_request");
    // Twice: a success that changes nothing and is not audited again.
    let (ok, out, _) = run(&["disable", "--credential", cred]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["changed"],
        false
    );
    assert_eq!(case.audited("disable_credential"), 1);
    let reason = env.db_i64(
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'disable_credential' \
         AND detail LIKE '%lost phone%'",
    );
    assert_eq!(reason, 1);

    let (ok, out, err) = run(&["enable", "--credential", cred]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "enabled"
    );
    assert_eq!(key_status(cred), "enabled");
    assert_eq!(case.audited("enable_credential"), 1);
    case.assert_signed(&case.sign());

    // Unknown credentials and other statuses: an error, nothing changed.
    let (ok, _, err) = run(&["disable", "--credential", "no-such-credential"]);
    assert!(!ok && err.contains("no credential"), "{err}");
    env.db_execute(&format!(
        "UPDATE credentials SET status = 'scale-test' WHERE id = '{other}'"
    ));
    for cmd in ["disable", "enable"] {
        let (ok, _, err) = run(&[cmd, "--credential", other]);
        assert!(!ok && err.contains("is \"scale-test\""), "{cmd}: {err}");
    }
    assert_eq!(
        env.db_i64(&format!(
            "SELECT COUNT(*) AS n FROM credentials WHERE id = '{other}' AND status = 'scale-test'"
        )),
        1
    );
    audit_verifies(env);
}

/// Commands that inspect or change what a database holds refuse a SQLite path with no database
/// (a typo) instead of creating an empty one that verifies as a clean audit log.
#[test]
fn inspection_commands_refuse_a_missing_database() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo").join("quill.db");
    let url = format!("sqlite://{}", missing.display());
    for args in [
        vec!["audit", "verify"],
        vec!["audit", "export"],
        vec!["credential", "expiring"],
        vec!["credential", "unblock", "--credential", "x"],
        vec!["user", "unblock", "--user", "x"],
    ] {
        let out = env
            .quill()
            .args(&args)
            .args(["--database-url", &url])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no database at"), "{args:?}: {err}");
    }
    assert!(!missing.parent().unwrap().exists(), "nothing was created");
}

/// Enrolments (and instances) that find a fresh token at once make one development CA, one
/// time-stamping unit and one sealing key between them: before, each made its own, later
/// enrolments failed ("CA key does not match the CA certificate") and credentials sealed under
/// another sealing key could not authorize. Asserted: every enrolment and a later one succeed,
/// all certificates come from one CA, and every credential authorizes (its TOTP secret
/// unseals) and signs a digest that verifies against its certificate.
#[test]
fn concurrent_first_enrolments_share_one_ca_and_one_sealing_key() {
    let env = Env::new();
    // the database exists and is migrated; the token is still empty
    env.quill_ok(&["client", "list"]);
    let signers: Vec<Signer> = (0..4).map(|i| signer(&format!("first{i}"))).collect();
    let enrolled: Vec<Enrolled> = std::thread::scope(|scope| {
        let runs: Vec<_> = signers
            .iter()
            .map(|s| scope.spawn(|| env.try_enroll_signer(s, "ec-p256", &[])))
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap().expect("every enrolment succeeds"))
            .collect()
    });
    let later = signer("later");
    let later_cred = env.enroll(&later, "ec-p256").credential_id;
    let app = env.spawn();
    let mut cas = std::collections::BTreeSet::new();
    let everyone = signers
        .iter()
        .zip(enrolled.iter().map(|e| e.credential_id.clone()))
        .chain([(&later, later_cred)]);
    for (s, cred) in everyone {
        let token = app.login(&s.user, &s.password);
        let info = app.credential_info(&token, &cred);
        cas.insert(
            info["cert"]["certificates"][1]
                .as_str()
                .unwrap()
                .to_string(),
        );
        // the TOTP secret unseals: the credential authorizes and signs
        let signed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            app.sign_p256_verified(&token, s, &cred, &digest(SHA256, cred.as_bytes()))
        }));
        assert!(signed.is_ok(), "server log:\n{}", env.server_log());
    }
    assert_eq!(cas.len(), 1, "one development CA");
}

/// `quill enroll` takes the password, PIN and TOTP secret from the environment, off the command
/// line (which every local user can read in /proc); they are no config-file settings.
#[test]
fn enroll_takes_its_secrets_from_the_environment() {
    let env = Env::new();
    let s = signer("vera");
    let out = env
        .quill()
        .args(["enroll", "--user", &s.user, "--key", "ec-p256"])
        .env("QUILL_ENROLL_PASSWORD", &s.password)
        .env("QUILL_ENROLL_PIN", &s.pin)
        .env("QUILL_ENROLL_TOTP_SECRET", &s.totp_secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e: Enrolled = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e.totp_secret.as_deref(), Some(s.totp_secret.as_str()));
    // both hashed with the token's pepper (argon2's secret input, keyid "qp1")
    for sql in [
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM credentials WHERE pin_hash LIKE '%keyid=cXAx%'",
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM users WHERE password_hash LIKE '%keyid=cXAx%'",
    ] {
        assert_eq!(env.db_i64(sql), 1, "{sql}");
    }
    let app = env.spawn();
    let token = app.login(&s.user, &s.password);
    let h = digest(SHA256, b"env");
    app.authorize(
        &token,
        &s,
        &e.credential_id,
        std::slice::from_ref(&h),
        SHA256,
    );
    // not from a config file
    let conf = env.dir.path().join("enroll.toml");
    std::fs::write(&conf, "password = \"from-a-file\"\n").unwrap();
    let out = env
        .quill()
        .args(["--config", conf.to_str().unwrap(), "enroll", "--help"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown key `password`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `quill credential orphan-keys` finds the key pairs no credential refers to (an enrolment
/// killed between making the key and storing the credential leaves one), and with --delete
/// destroys them, audited; the credentials' own keys, the CA's and the TSA's are left alone.
#[test]
fn orphan_keys_are_found_and_destroyed() {
    let env = Env::new();
    let kept = signer("kept");
    let lost = signer("lost");
    let kept_cred = env.enroll(&kept, "ec-p256").credential_id;
    let lost_cred = env.enroll(&lost, "ec-p256").credential_id;
    // The row goes; the key pair stays in the token, as after a killed enrolment.
    assert_eq!(
        env.db_execute(&format!("DELETE FROM credentials WHERE id = '{lost_cred}'")),
        1
    );
    let lines = |args: &[&str]| -> Vec<Value> {
        env.quill_ok(args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let listed = lines(&["credential", "orphan-keys"]);
    assert_eq!(
        listed,
        [json!({"orphan_key": lost_cred, "destroyed": false})]
    );
    let destroyed = lines(&["credential", "orphan-keys", "--delete"]);
    assert_eq!(
        destroyed,
        [json!({"orphan_key": lost_cred, "destroyed": true})]
    );
    assert!(lines(&["credential", "orphan-keys"]).is_empty());
    assert_eq!(
        env.db_i64(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log \
             WHERE action = 'destroy_orphan_key' AND actor = 'operator'"
        ),
        1
    );
    audit_verifies(&env);
    // The kept credential signs, with a time-stamp (CA and TSA keys untouched).
    let app = env.spawn();
    let token = app.login(&kept.user, &kept.password);
    let h = digest(SHA256, b"still here");
    app.sign_p256_verified(&token, &kept, &kept_cred, &h);
    let r = app.post(
        "/csc/v2/signatures/timestamp",
        Some(&token),
        &json!({"hash": b64(&h), "hashAlgo": SHA256}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}
