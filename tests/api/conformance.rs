//! The black-box CSC v2 conformance suite (`conformance-tests/`, crate `csc-conformance`)
//! against Quill: in process it finds nothing wrong and really runs its core checks, the
//! asynchronous mode's (with its `response_uri` callback) and signDoc's included (PASS, not
//! SKIP); the `csc-conformance` binary
//! does the same and writes JUnit XML; and given a wrong PIN the suite fails — so it can fail —
//! without locking the credentials. Two runs back to back never present a TOTP code twice, and
//! behind a proxy that breaks one thing (certInfo, OTP checks and signDoc signatures, SAD
//! binding, per-user TOTP counting) the matching row fails or passes as it should; a
//! `response_uri` Quill refuses is a WARN, one it cannot reach a FAIL.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use csc_conformance::{Config, OtpSource, Outcome, Report, TotpScope, TotpState, names as n};

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
    serve_with(name, &[])
}

/// [`serve`], Quill started with `extra` flags too.
fn serve_with(name: &str, extra: &[&str]) -> Served {
    let env = Env::new();
    let s = signer(name);
    let rsa = env.enroll(&s, "rsa-2048").credential_id;
    let ec = env.enroll(&s, "ec-p256").credential_id;
    let mut flags = vec!["--sad-ttl", "5"];
    flags.extend_from_slice(extra);
    let app = env.spawn_with(&flags);
    Served {
        env,
        app,
        s,
        rsa,
        ec,
    }
}

/// A port of 127.0.0.1 free a moment ago (bound, read and let go).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A Quill that calls back `http://127.0.0.1:<port>` and `port`: the suite's
/// `--callback-listen 127.0.0.1:<port>` makes the callback row run.
fn serve_calling_back(name: &str) -> (Served, u16) {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    (
        serve_with(name, &["--async-callback-origins", &origin]),
        port,
    )
}

/// The suite's settings for `w`. Quill counts TOTP replays per credential, so the faster
/// per-credential scope is right for it (the tests of the default per-secret scope set it
/// back); the steps presented are kept in the test's own directory.
fn config(w: &Served, pin: &str) -> Config {
    let mut c = Config::new(
        &w.app.base,
        &w.s.user,
        &w.s.password,
        pin,
        OtpSource::TotpSecret(w.s.totp_secret.clone()),
    );
    c.max_wait = Duration::from_secs(10);
    c.totp_scope = TotpScope::Credential;
    c.totp_state = TotpState::File(w.env.dir.path().join("totp-steps.json"));
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

/// Print the report's table; its failed rows as `label: detail`.
fn printed_failures(report: &csc_conformance::Report) -> Vec<String> {
    println!("{}", report.table());
    report
        .failures()
        .iter()
        .map(|r| format!("{}: {}", r.label(), r.detail))
        .collect()
}

#[test]
fn conformance_suite_passes_against_quill() {
    let (w, port) = serve_calling_back("conny");
    // Quill counts TOTP replays per credential: the per-credential scope (its default, the
    // per-secret scope, waits a step per credential; it runs in
    // `conformance_suite_passes_a_server_that_counts_totp_per_user`).
    let mut cfg = config(&w, &w.s.pin);
    // Quill calls back the suite's listener (its origin is among --async-callback-origins).
    cfg.callback_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let report = csc_conformance::run(&cfg).expect("the suite runs");
    let failures = printed_failures(&report);
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
            n::LIST_CERT_INFO,
        ] {
            assert_pass(&report, name, c);
        }
        for name in n::MAIN_TASK.iter().chain(n::CERT_INFO_ROWS) {
            assert_pass(&report, name, c);
        }
        // Quill's certInfo is compared field by field, not merely present.
        let serial = assert_pass(&report, n::CERT_SERIAL, c);
        assert!(
            serial.contains("is the certificate's serial number"),
            "{serial}"
        );
        let subject = assert_pass(&report, n::CERT_SUBJECT, c);
        assert!(subject.contains("RFC 4514 order"), "{subject}");
        let status = assert_pass(&report, n::CERT_STATUS, c);
        assert!(status.starts_with("valid, consistent"), "{status}");
        let listed = assert_pass(&report, n::LIST_CERT_INFO, c);
        assert!(
            listed.contains("serialNumber, subjectDN, issuerDN, validFrom/validTo, status match")
                && listed.contains("its own cert.certificates"),
            "{listed}"
        );
    }
    // Several credentials: the wrong-PIN check runs on the last listed one, the SAD lifecycle
    // (second SAD, extendTransaction, expiry) on the first.
    assert_pass(&report, n::AUTHZ_WRONG_PIN, None);
    assert_pass(&report, n::AUTHZ_WRONG_OTP, None);
    for name in [
        "schema: info response",
        "schema: auth/login response",
        "schema: credentials/authorize response",
        n::SCHEMA_ERRORS,
    ] {
        assert_pass(&report, name, None);
    }
    for name in n::LIFECYCLE_TASK {
        assert_pass(&report, name, None);
    }
    // The asynchronous mode (Quill's info says asynchronousOperationMode: true and lists
    // signatures/signPolling): run on one credential, every row PASS, not SKIP.
    assert_pass(&report, n::ASYNC_UNKNOWN_ID, None);
    for name in n::ASYNC_TASK {
        assert_pass(&report, name, None);
    }
    let signed = assert_pass(&report, n::ASYNC_SIGN, None);
    assert!(
        signed.contains("signature verifies against the certificate"),
        "{signed}"
    );
    // The call carried response_uri: Quill posted its responseID once the answer was stored,
    // so the first poll after the callback had it.
    let announced = assert_pass(&report, n::ASYNC_CALLBACK, None);
    assert!(
        announced.contains("POST /csc-callback with the call's responseID")
            && announced.contains("the first poll after it had the answer"),
        "{announced}"
    );
    assert!(signed.contains("answered after 1 poll(s)"), "{signed}");
    let malformed = assert_pass(&report, n::ASYNC_MALFORMED, None);
    assert!(
        malformed.contains("hashes not base64: HTTP 400 invalid_request")
            && malformed.contains("unknown signAlgo"),
        "{malformed}"
    );
    assert_pass(&report, "schema: signatures/signPolling response", None);
    // signDoc (Quill lists it, with Ades-B-T and Attached CAdES, and offers the asynchronous
    // mode): one credential's main SAD authorizes eight hashes more, signed as a detached
    // CAdES-B-B, a detached CAdES-B-T, an attached CAdES of a document, asynchronously a
    // detached CAdES-B-B, a detached CAdES of a whole document and, in one call of two
    // entries, three detached CAdES-B-B, each verified; every row PASS, not SKIP.
    for name in n::DOC_TASK {
        assert_pass(&report, name, None);
    }
    assert!(
        report
            .named(n::AUTHZ)
            .iter()
            .any(|r| r.detail.contains("SAD for 10 hash(es)") && r.detail.contains("8 for signDoc")),
        "{}",
        report.table()
    );
    let doc = assert_pass(&report, n::DOC_SIGN, None);
    assert!(
        doc.contains("message-digest = the authorized hash")
            && doc.contains("signing-certificate-v2 with the SHA-256 of the certificate")
            && doc.contains("verifies"),
        "{doc}"
    );
    let t = assert_pass(&report, n::DOC_SIGN_T, None);
    assert!(
        t.contains("message-digest = the authorized hash")
            && t.contains("messageImprint = the SHA-256 of the signature value")
            && t.contains("the TSA's signature (ecdsa-with-SHA256")
            && t.contains("Quill Development TSA"),
        "{t}"
    );
    let attached = assert_pass(&report, n::DOC_ATTACHED, None);
    assert!(
        attached.contains("attached (eContent is the")
            && attached.contains("message-digest = the document's digest")
            && attached.contains("verifies"),
        "{attached}"
    );
    // The asynchronous one: a responseID, polled (202 accepted_request while it runs) to a
    // SignatureObject checked as the synchronous B-B's.
    let polled = assert_pass(&report, n::DOC_ASYNC, None);
    assert!(
        polled.contains("answered after")
            && polled.contains("message-digest = the authorized hash")
            && polled.contains("signing-certificate-v2 with the SHA-256 of the certificate")
            && polled.contains("verifies"),
        "{polled}"
    );
    // A whole document signed detached: a SignatureObject without eContent over its digest.
    let detached = assert_pass(&report, n::DOC_DETACHED_DOC, None);
    assert!(
        detached.contains("CMS SignedData, detached")
            && detached.contains("message-digest = the document's digest")
            && detached.contains("verifies"),
        "{detached}"
    );
    // Two entries (two hashes, then one with the credential's second signAlgo) in one call:
    // three SignatureObjects in request order, each over its own hash.
    let several = assert_pass(&report, n::DOC_SEVERAL, None);
    assert!(
        several.contains("two documentDigests entries, 3 hashes in one call")
            && several.contains("3 SignatureObjects in request order")
            && several.contains("message-digest = the authorized hash"),
        "{several}"
    );
    let format = assert_pass(&report, n::DOC_BAD_FORMAT, None);
    assert!(format.contains("HTTP 400 invalid_request"), "{format}");
    // Quill's credentials are SCAL 2: a hash outside the SAD is 403 invalid_hash; the spent
    // SAD is refused too.
    let refused = assert_pass(&report, n::DOC_REFUSED, None);
    assert!(
        refused.contains("does not bind: HTTP 403 invalid_hash")
            && refused.contains("the SAD spent: HTTP 400 invalid_request"),
        "{refused}"
    );
    assert_pass(&report, "schema: signatures/signDoc response", None);
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
    let (w, port) = serve_calling_back("junie");
    let junit = w.env.dir.path().join("conformance.xml");
    // The OTP comes from a command (`quill otp`), as it would for a hardware token or an app;
    // Quill counts TOTP replays per credential, so the faster scope will do.
    let otp_command = format!(
        "'{}' otp --totp-secret {}",
        env!("CARGO_BIN_EXE_quill"),
        w.s.totp_secret
    );
    let state = w.env.dir.path().join("totp-steps.json");
    let out = Command::new(&bin)
        .args(["--base-url", &w.app.base])
        .args(["--user", &w.s.user, "--password", &w.s.password])
        .args(["--pin", &w.s.pin, "--otp-command", &otp_command])
        .args(["--totp-scope", "credential", "--totp-state"])
        .arg(&state)
        .args(["--max-wait-secs", "10", "--junit"])
        .arg(&junit)
        .args(["--callback-listen", &format!("127.0.0.1:{port}")])
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
    // The steps the command's codes were used in are kept, under a hash of the command (it
    // holds the secret here), not the command.
    let kept = std::fs::read_to_string(&state).unwrap();
    assert!(kept.contains("\"steps\""), "{kept}");
    assert!(!kept.contains(&w.s.totp_secret), "{kept}");

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
    // The suite never retried a failed authorization: at most three failures per credential
    // (wrong PIN, right PIN with a wrong OTP, the run's own authorization), so
    // both still work with the right PIN (and that success resets Quill's counters).
    let token = w.app.login(&w.s.user, &w.s.password);
    for cred in [&w.rsa, &w.ec] {
        let info = w.app.credential_info(&token, cred);
        assert_eq!(info["key"]["status"], "enabled");
        w.app
            .authorize(&token, &w.s, cred, &[digest(SHA256, b"after")], SHA256);
    }
}

// ----- the suite against a Quill behind a proxy that changes one thing -----

type ReqHook = Arc<dyn Fn(&str, &mut Value) + Send + Sync>;
type RespHook = Arc<dyn Fn(&str, &Value, &mut u16, &mut Value) + Send + Sync>;

/// An HTTP/1.1 proxy on 127.0.0.1 in front of `upstream` (one request per connection): `req`
/// may change a JSON request body, `resp` the status and JSON body of the answer, by CSC method
/// (`auth/login`, …). Returns the proxy's base URL; its threads end with the test process.
fn proxy(upstream: &str, req: ReqHook, resp: RespHook) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_end_matches('/').to_string();
    let client = reqwest::blocking::Client::new();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (client, upstream, req, resp) =
                (client.clone(), upstream.clone(), req.clone(), resp.clone());
            std::thread::spawn(move || {
                let _ = relay(stream, &client, &upstream, &*req, &*resp);
            });
        }
    });
    base
}

fn relay(
    stream: TcpStream,
    client: &reqwest::blocking::Client,
    upstream: &str,
    req_hook: &(dyn Fn(&str, &mut Value) + Send + Sync),
    resp_hook: &(dyn Fn(&str, &Value, &mut u16, &mut Value) + Send + Sync),
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (mut len, mut authorization) = (0usize, None);
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    let mut raw = vec![0u8; len];
    reader.read_exact(&mut raw)?;
    let method = path.trim_start_matches("/csc/v2/").to_string();
    let mut req_json: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let body = if req_json.is_null() {
        raw
    } else {
        req_hook(&method, &mut req_json);
        serde_json::to_vec(&req_json).unwrap()
    };
    let mut out = client
        .post(format!("{upstream}{path}"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = authorization {
        out = out.header("authorization", a);
    }
    let answer = out.send().map_err(std::io::Error::other)?;
    let mut status = answer.status().as_u16();
    let bytes = answer.bytes().map_err(std::io::Error::other)?.to_vec();
    let bytes = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) => {
            resp_hook(&method, &req_json, &mut status, &mut v);
            serde_json::to_vec(&v).unwrap()
        }
        Err(_) => bytes,
    };
    let mut w = stream;
    write!(
        w,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    )?;
    w.write_all(&bytes)?;
    w.flush()
}

fn no_req_hook() -> ReqHook {
    Arc::new(|_, _| {})
}

fn via(w: &Served, base: &str) -> Config {
    let mut c = config(w, &w.s.pin);
    c.base_url = base.to_string();
    c
}

fn outcome(report: &Report, name: &str, cred: Option<&str>) -> Outcome {
    row(report, name, cred).outcome
}

/// A server that leaves out what the spec makes optional (`expires_in`, `expiresIn`,
/// `error_description`) and adds `token_type` passes every functional check; only the rows of
/// Quill's stricter schemas fail, and the run goes on.
#[test]
fn conformance_suite_accepts_optional_fields_left_out() {
    let w = serve("olga");
    let hook: RespHook = Arc::new(|method, _req, status, body| {
        let Some(obj) = body.as_object_mut() else {
            return;
        };
        if *status >= 400 {
            obj.remove("error_description");
        }
        match method {
            "auth/login" if *status == 200 => {
                obj.remove("expires_in");
                obj.insert("token_type".into(), json!("Bearer"));
            }
            "credentials/authorize" => {
                obj.remove("expiresIn");
            }
            _ => {}
        }
    });
    let base = proxy(&w.app.base, no_req_hook(), hook);
    let report = csc_conformance::run(&via(&w, &base)).expect("the suite runs");
    let functional: Vec<String> = printed_failures(&report)
        .into_iter()
        .filter(|f| !f.starts_with("schema: "))
        .collect();
    assert!(functional.is_empty(), "{functional:#?}");
    assert_pass(&report, n::LOGIN, None);
    assert_pass(&report, n::AUTHZ_WRONG_PIN, None);
    for cred in [&w.rsa, &w.ec] {
        assert_pass(&report, n::AUTHZ, Some(cred.as_str()));
        assert_pass(&report, n::SIGN_FIRST, Some(cred.as_str()));
    }
    let login_schema = row(&report, "schema: auth/login response", None);
    assert_eq!(login_schema.outcome, Outcome::Warn, "{}", report.table());
    assert!(
        login_schema.detail.contains("expires_in"),
        "{}",
        login_schema.detail
    );
    assert_eq!(outcome(&report, n::SCHEMA_ERRORS, None), Outcome::Warn);
    // A conforming server that leaves out optional fields passes: warnings fail nothing.
    assert_eq!(report.exit_code(), 0, "{}", report.table());
}

/// A server that accepts any OTP once the PIN is right fails the wrong-OTP check; one whose
/// signDoc signatures are corrupt (here the same server: the proxy flips the last bit of each
/// one-signature CMS answer, also in the signPolling answer of the asynchronous signDoc, and
/// reverses the order of an answer with several) fails the signDoc checks: the B-B's, the
/// attached, the asynchronous and the detached document's signature value, the B-T's
/// time-stamp signature, and the several-entries call's order.
#[test]
fn conformance_suite_fails_a_server_that_accepts_a_wrong_otp() {
    // Quill calls back a port where nobody listens: the suite, listening elsewhere but
    // telling Quill that port (--callback-url), hears nothing and fails the callback row.
    let (w, nobody) = serve_calling_back("otto");
    let pin = w.s.pin.clone();
    let hook: RespHook = Arc::new(move |method, req, status, body| {
        // signPolling answers of signHash carry `signatures`, left alone.
        let doc_answer = method == "signatures/signDoc" || method == "signatures/signPolling";
        if doc_answer && *status == 200 {
            // A CAdES-B-B SignedData has no unsigned attributes: its DER ends with the one
            // SignerInfo's signature value, so the last byte is the signature's. A B-T's DER
            // ends with its signature-time-stamp, whose DER ends with the TSA's signature.
            for field in ["SignatureObject", "DocumentWithSignature"] {
                // (`get_mut`, not `body[field]`: that would add the field as null.)
                if let Some(several) = body.get_mut(field).and_then(Value::as_array_mut)
                    && several.len() > 1
                {
                    several.reverse();
                } else if let Some(sig) = body[field][0].as_str() {
                    let mut der = STANDARD.decode(sig).unwrap();
                    *der.last_mut().unwrap() ^= 1;
                    body[field][0] = json!(STANDARD.encode(der));
                }
            }
        }
        let right_pin = req["authData"]
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o["value"] == json!(pin)));
        if method == "credentials/authorize" && *status == 400 && right_pin {
            *status = 200;
            *body = json!({"SAD": "proxy-granted", "expiresIn": 5});
        }
    });
    let base = proxy(&w.app.base, no_req_hook(), hook);
    let mut cfg = via(&w, &base);
    cfg.callback_listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.callback_url = Some(format!("http://127.0.0.1:{nobody}/csc-callback"));
    let report = csc_conformance::run(&cfg).expect("the suite runs");
    println!("{}", report.table());
    let unheard = row(&report, n::ASYNC_CALLBACK, None);
    assert_eq!(unheard.outcome, Outcome::Fail, "{}", report.table());
    assert!(
        unheard.detail.contains("no POST at") && unheard.detail.contains("within 30 s"),
        "{}",
        unheard.detail
    );
    // The signature itself is still polled and verified.
    assert_pass(&report, n::ASYNC_SIGN, None);
    let r = row(&report, n::AUTHZ_WRONG_OTP, None);
    assert_eq!(r.outcome, Outcome::Fail, "{}", report.table());
    assert!(r.detail.contains("wrong OTP was accepted"), "{}", r.detail);
    let doc = row(&report, n::DOC_SIGN, None);
    assert_eq!(doc.outcome, Outcome::Fail, "{}", report.table());
    assert!(
        doc.detail.contains("the SignerInfo's signature") && doc.detail.contains("does not verify"),
        "{}",
        doc.detail
    );
    let t = row(&report, n::DOC_SIGN_T, None);
    assert_eq!(t.outcome, Outcome::Fail, "{}", report.table());
    assert!(
        t.detail
            .contains("the time-stamp token: the TSA's signature")
            && t.detail.contains("does not verify"),
        "{}",
        t.detail
    );
    let attached = row(&report, n::DOC_ATTACHED, None);
    assert_eq!(attached.outcome, Outcome::Fail, "{}", report.table());
    assert!(
        attached.detail.contains("the SignerInfo's signature")
            && attached.detail.contains("does not verify"),
        "{}",
        attached.detail
    );
    let polled = row(&report, n::DOC_ASYNC, None);
    assert_eq!(polled.outcome, Outcome::Fail, "{}", report.table());
    assert!(
        polled.detail.contains("the SignerInfo's signature")
            && polled.detail.contains("does not verify"),
        "{}",
        polled.detail
    );
    let detached = row(&report, n::DOC_DETACHED_DOC, None);
    assert_eq!(detached.outcome, Outcome::Fail, "{}", report.table());
    assert!(
        detached.detail.contains("the SignerInfo's signature")
            && detached.detail.contains("does not verify"),
        "{}",
        detached.detail
    );
    let several = row(&report, n::DOC_SEVERAL, None);
    assert_eq!(several.outcome, Outcome::Fail, "{}", report.table());
    assert!(
        several
            .detail
            .contains("SignatureObject[0] is the signature of hash 2")
            && several.detail.contains("not in request order"),
        "{}",
        several.detail
    );
    // The rest of signDoc still holds: refusals, and the exhausted SAD.
    assert_pass(&report, n::DOC_BAD_FORMAT, None);
    assert_pass(&report, n::DOC_REFUSED, None);
    assert_eq!(report.exit_code(), 1);
    // The run goes on: the real authorizations still succeed.
    for cred in [&w.rsa, &w.ec] {
        assert_pass(&report, n::AUTHZ, Some(cred.as_str()));
    }
}

/// A server that ignores which SAD comes with signHash (it signs with the credential's latest
/// SAD whatever is sent) fails the made-up-SAD check.
#[test]
fn conformance_suite_fails_a_server_that_ignores_the_sad() {
    let w = serve("sadie");
    let issued: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let seen = issued.clone();
    let on_resp: RespHook = Arc::new(move |method, req, status, body| {
        if method != "credentials/authorize" || *status != 200 {
            return;
        }
        if let (Some(c), Some(s)) = (req["credentialID"].as_str(), body["SAD"].as_str()) {
            seen.lock().unwrap().insert(c.to_string(), s.to_string());
        }
    });
    let on_req: ReqHook = Arc::new(move |method, body| {
        if method != "signatures/signHash" {
            return;
        }
        let latest = body["credentialID"]
            .as_str()
            .and_then(|c| issued.lock().unwrap().get(c).cloned());
        if let (Some(sad), Some(obj)) = (latest, body.as_object_mut()) {
            obj.insert("SAD".into(), json!(sad));
        }
    });
    let base = proxy(&w.app.base, on_req, on_resp);
    let report = csc_conformance::run(&via(&w, &base)).expect("the suite runs");
    println!("{}", report.table());
    let fake: Vec<_> = report.named(n::SIGN_FAKE_SAD);
    assert!(
        fake.iter().any(|r| r.outcome == Outcome::Fail),
        "{}",
        report.table()
    );
    // The asynchronous call with a made-up SAD is signed too (its polled answer has signatures).
    let fake = row(&report, n::ASYNC_FAKE_SAD, None);
    assert_eq!(fake.outcome, Outcome::Fail, "{}", report.table());
    assert!(
        fake.detail.contains("must be a CSC error"),
        "{}",
        fake.detail
    );
    assert_eq!(report.exit_code(), 1);
}

/// An access token that expires during the run (simulated: once the first SAD is granted, the
/// next authorization is answered 401 `invalid_token`, without reaching Quill): the suite logs in
/// again and carries on instead of failing the authorization.
#[test]
fn conformance_suite_logs_in_again_when_the_token_expires() {
    let w = serve("tess");
    const EXPIRED: &str = "proxy-simulated-expired-token";
    let armed = Arc::new(Mutex::new(false));
    let arm = armed.clone();
    let on_resp: RespHook = Arc::new(move |method, req, status, body| {
        if method != "credentials/authorize" {
            return;
        }
        if req["credentialID"] == json!(EXPIRED) {
            *status = 401;
            *body = json!({"error": "invalid_token", "error_description": "expired"});
        } else if *status == 200 {
            *arm.lock().unwrap() = true;
        }
    });
    let fired = Arc::new(Mutex::new(false));
    let on_req: ReqHook = Arc::new(move |method, body| {
        let mut done = fired.lock().unwrap();
        let authorize = method == "credentials/authorize" && body.get("authData").is_some();
        if authorize && !*done && *armed.lock().unwrap() {
            *done = true;
            body["credentialID"] = json!(EXPIRED);
        }
    });
    let base = proxy(&w.app.base, on_req, on_resp);
    let mut cfg = via(&w, &base);
    // This Quill calls back no origin: the suite's response_uri is refused, a WARN (the
    // operator has to allow it), and the asynchronous call is signed without it.
    cfg.callback_listen = Some("127.0.0.1:0".parse().unwrap());
    let report = csc_conformance::run(&cfg).expect("the suite runs");
    let failures = printed_failures(&report);
    assert!(failures.is_empty(), "{failures:#?}");
    let refused = row(&report, n::ASYNC_CALLBACK, None);
    assert_eq!(refused.outcome, Outcome::Warn, "{}", report.table());
    assert!(
        refused.detail.contains("HTTP 400 invalid_request")
            && refused
                .detail
                .contains("not an origin this server calls back"),
        "{}",
        refused.detail
    );
    assert_pass(&report, n::ASYNC_SIGN, None);
}

/// Two runs back to back with the same TOTP secret: the second starts in the 30-second step
/// the first one's last authorizations used, and Quill refuses a code of a step it accepted
/// for the credential already. The state file makes the second run wait for a fresh step
/// instead (without it, its first authorization is refused as a replay and it fails).
#[test]
fn conformance_suite_passes_twice_back_to_back() {
    let w = serve("twice");
    let cfg = config(&w, &w.s.pin);
    let state = w.env.dir.path().join("totp-steps.json");
    let steps = || -> Vec<u64> {
        let text = std::fs::read_to_string(&state).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let mut s: Vec<u64> = v["steps"]
            .as_object()
            .unwrap()
            .values()
            .map(|x| x.as_u64().unwrap())
            .collect();
        s.sort_unstable();
        s
    };
    let now_step = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 30
    };
    let first = csc_conformance::run(&cfg).expect("the first run");
    let failures = printed_failures(&first);
    assert!(failures.is_empty(), "first run: {failures:#?}");
    let used = steps();
    assert!(!used.is_empty(), "the first run recorded its steps");
    let last = *used.last().unwrap();
    assert_eq!(
        now_step(),
        last,
        "the second run starts in the step the first one ended with, so it would reuse it \
         without the state file"
    );
    let second = csc_conformance::run(&cfg).expect("the second run");
    let failures = printed_failures(&second);
    assert!(
        failures.is_empty(),
        "second run: {failures:#?}\nserver log:\n{}",
        w.env.server_log()
    );
    for cred in [&w.rsa, &w.ec] {
        assert_pass(&second, n::AUTHZ, Some(cred.as_str()));
    }
    assert!(
        steps().iter().all(|s| *s > last),
        "the second run used only later steps: {:?} after {last}",
        steps()
    );
}

/// A server that counts TOTP replays per user (one authenticator for all the user's
/// credentials), simulated by a proxy that refuses a code it saw accepted before for any
/// credential: the default per-secret scope passes it; the per-credential scope presents one
/// code for both credentials and fails — the trade-off of `--totp-scope`.
#[test]
fn conformance_suite_passes_a_server_that_counts_totp_per_user() {
    let w = serve("ulla");
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = accepted.clone();
    let hook: RespHook = Arc::new(move |method, req, status, body| {
        if method != "credentials/authorize" {
            return;
        }
        let Some(code) = req["authData"]
            .as_array()
            .and_then(|a| a.iter().find(|o| o["id"] == json!("OTP")))
            .and_then(|o| o["value"].as_str())
        else {
            return;
        };
        let mut seen = seen.lock().unwrap();
        if seen.iter().any(|c| c == code) {
            *status = 400;
            *body = json!({"error": "invalid_authentication_data",
                           "error_description": "OTP already used (per-user count)"});
        } else if *status == 200 {
            seen.push(code.to_string());
        }
    });
    let base = proxy(&w.app.base, no_req_hook(), hook);
    let mut cfg = via(&w, &base);
    cfg.totp_scope = TotpScope::Secret;
    let report = csc_conformance::run(&cfg).expect("the suite runs");
    let failures = printed_failures(&report);
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        accepted.lock().unwrap().len(),
        4,
        "four SADs: two signing, one lifecycle, one asynchronous"
    );

    cfg.totp_scope = TotpScope::Credential;
    let report = csc_conformance::run(&cfg).expect("the suite runs");
    println!("{}", report.table());
    let refused: Vec<_> = report
        .failures()
        .iter()
        .filter(|r| r.detail.contains("OTP already used"))
        .map(|r| r.label())
        .collect();
    assert!(!refused.is_empty(), "{}", report.table());
}

/// A server whose certInfo does not describe the certificate it returns: a wrong
/// `cert.serialNumber` in credentials/info and an extra RDN in credentials/list's subjectDN
/// fail their rows; the fields left alone still pass.
#[test]
fn conformance_suite_fails_a_server_whose_cert_info_is_wrong() {
    let w = serve("cerys");
    let hook: RespHook = Arc::new(|method, _req, status, body| {
        if *status != 200 {
            return;
        }
        match method {
            "credentials/info" => {
                if let Some(serial) = body["cert"]["serialNumber"].as_str() {
                    // The last hex digit plus one (F wraps to 0).
                    let mut s = serial.to_string();
                    let last = s.pop().unwrap().to_digit(16).unwrap();
                    s.push(
                        char::from_digit((last + 1) % 16, 16)
                            .unwrap()
                            .to_ascii_uppercase(),
                    );
                    body["cert"]["serialNumber"] = json!(s);
                }
            }
            "credentials/list" => {
                // (get_mut: indexing would add "credentialInfos": null to the plain listing)
                let infos = body
                    .get_mut("credentialInfos")
                    .and_then(Value::as_array_mut);
                for info in infos.into_iter().flatten() {
                    if let Some(dn) = info["cert"]["subjectDN"].as_str() {
                        info["cert"]["subjectDN"] = json!(format!("L=Nowhere,{dn}"));
                    }
                }
            }
            _ => {}
        }
    });
    let base = proxy(&w.app.base, no_req_hook(), hook);
    let report = csc_conformance::run(&via(&w, &base)).expect("the suite runs");
    println!("{}", report.table());
    for cred in [&w.rsa, &w.ec] {
        let c = Some(cred.as_str());
        let serial = row(&report, n::CERT_SERIAL, c);
        assert_eq!(serial.outcome, Outcome::Fail, "{}", report.table());
        assert!(
            serial
                .detail
                .contains("but the certificate's serial number is"),
            "{}",
            serial.detail
        );
        let listed = row(&report, n::LIST_CERT_INFO, c);
        assert_eq!(listed.outcome, Outcome::Fail, "{}", report.table());
        assert!(
            listed.detail.starts_with("subjectDN: ")
                && listed
                    .detail
                    .contains("does not name the certificate's subject"),
            "{}",
            listed.detail
        );
        for name in [
            n::CERT_SUBJECT,
            n::CERT_ISSUER,
            n::CERT_VALIDITY,
            n::CERT_STATUS,
        ] {
            assert_pass(&report, name, c);
        }
        assert_pass(&report, n::AUTHZ, c);
    }
    assert_eq!(report.failures().len(), 4, "{}", report.table());
    assert_eq!(report.count(Outcome::Warn), 0, "{}", report.table());
    assert_eq!(report.exit_code(), 1);
}
