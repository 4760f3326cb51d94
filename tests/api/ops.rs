//! Operations: config file / environment / flag precedence, HTTPS, `/healthz`, `/readyz`,
//! `/metrics`, request IDs in JSON logs, graceful shutdown on SIGTERM. All against the real
//! `quill` binary.

use std::collections::HashMap;
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// Run a command that is expected to exit on its own (a server that starts by mistake is killed
/// after 30 s rather than hanging the test).
fn run_to_exit(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            child.kill().unwrap();
            panic!("the command did not exit: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn info_name(app: &TestApp) -> (String, String) {
    let r = app.post("/csc/v2/info", None, &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    (
        r.body["name"].as_str().unwrap().to_string(),
        r.body["region"].as_str().unwrap().to_string(),
    )
}

#[test]
fn config_file_env_and_flag_precedence() {
    let env = Env::new();
    let empty = env.dir.path().join("empty");
    let conf_dir = env.dir.path().join("conf");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(&conf_dir).unwrap();
    // Both spellings of a key; the token PIN comes from the file only.
    std::fs::write(
        conf_dir.join("quill.toml"),
        format!(
            "service-name = \"From file\"\nregion = \"DE\"\ntoken_pin = \"{TOKEN_PIN}\"\nsad_ttl = 120\n"
        ),
    )
    .unwrap();
    let conf = conf_dir.join("quill.toml");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    // No file (none given, none in the working directory): built-in defaults.
    let (app, _) = env.spawn_custom(&[], |c| {
        c.current_dir(&empty).env_remove("QUILL_CONFIG");
    });
    assert_eq!(info_name(&app), ("Quill".into(), "EU".into()));
    drop(app);

    // ./quill.toml of the working directory, used without being named; it also supplies the
    // token PIN (absent from the environment).
    let (app, _) = env.spawn_custom(&[], |c| {
        c.current_dir(&conf_dir)
            .env_remove("QUILL_CONFIG")
            .env_remove("QUILL_TOKEN_PIN");
    });
    assert_eq!(info_name(&app), ("From file".into(), "DE".into()));
    drop(app);

    // QUILL_CONFIG names the file; an environment variable beats it, the file still fills the
    // rest.
    let (app, _) = env.spawn_custom(&[], |c| {
        c.current_dir(&empty)
            .env("QUILL_CONFIG", &conf)
            .env("QUILL_SERVICE_NAME", "From env");
    });
    assert_eq!(info_name(&app), ("From env".into(), "DE".into()));
    drop(app);

    // --config names the file; a flag beats the environment and the file.
    let (app, _) = env.spawn_custom(
        &[
            "--config",
            conf.to_str().unwrap(),
            "--service-name",
            "From flag",
        ],
        |c| {
            c.current_dir(&empty).env("QUILL_SERVICE_NAME", "From env");
        },
    );
    assert_eq!(info_name(&app), ("From flag".into(), "DE".into()));
    drop(app);

    // The file's secret is never shown: not in --help, not in the log.
    let mut help = env.quill();
    help.args(["--config", conf.to_str().unwrap(), "serve", "--help"]);
    let out = run_to_exit(help);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("From file"),
        "file values are shown as defaults: {text}"
    );
    assert!(text.contains("--config"), "{text}");
    assert!(!text.contains(TOKEN_PIN), "the token PIN is shown: {text}");
    let log = env.server_log();
    assert!(!log.contains(TOKEN_PIN));
    // the file holds the token PIN and is 0644: the log says so, naming the key
    assert!(
        log.contains("chmod 600") && log.contains("token_pin"),
        "no warning about the readable config file: {log}"
    );
}

#[test]
fn config_file_errors_name_the_key_and_the_file() {
    let env = Env::new();
    let path = env.dir.path().join("bad.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\ntoken_pinn = \"7777\"\n").unwrap();
    let mut cmd = env.quill();
    cmd.args(["--config", path.to_str().unwrap(), "serve"]);
    let out = run_to_exit(cmd);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token_pinn"), "{err}");
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(!err.contains("7777"), "values are not echoed: {err}");
    assert!(out.stdout.is_empty());

    // Broken TOML: line number and message, not the line itself.
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\ntoken_pin = \"7777-secret\" oops\n",
    )
    .unwrap();
    let mut cmd = env.quill();
    cmd.env("QUILL_CONFIG", &path).arg("serve");
    let out = run_to_exit(cmd);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("7777-secret"), "{err}");

    // A named file that does not exist.
    let mut cmd = env.quill();
    cmd.args(["serve", "--config", "/nonexistent/quill.toml"]);
    let out = run_to_exit(cmd);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/quill.toml"));
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

#[test]
fn tls_serves_https_and_refuses_plain_http() {
    let env = Env::new();
    let (cert_pem, key_pem) = self_signed();
    let cert = env.dir.path().join("tls-cert.pem");
    let key = env.dir.path().join("tls-key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &key_pem).unwrap();
    let (mut app, line) = env.spawn_custom(&["--tls-cert", cert.to_str().unwrap()], |c| {
        c.env("QUILL_TLS_KEY", &key);
    });
    let addr = line["listening"].as_str().unwrap().to_string();
    assert_eq!(line["url"], format!("https://{addr}"));
    assert!(app.base.starts_with("https://127.0.0.1:"));

    // A client that does not trust the certificate cannot talk to it …
    assert!(
        app.client
            .post(format!("{}/csc/v2/info", app.base))
            .send()
            .is_err()
    );
    // … one that does gets the CSC API and the ops endpoints.
    app.client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    assert_eq!(info_name(&app).0, "Quill");
    assert_eq!(app.get("/healthz").status(), 200);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(10))
        .send();
    assert!(
        plain.as_ref().map_or(true, |r| !r.status().is_success()),
        "plain HTTP was served: {plain:?}"
    );
}

#[test]
fn bad_tls_settings_are_a_clean_startup_error() {
    let env = Env::new();
    let (cert_pem, _) = self_signed();
    let cert = env.dir.path().join("tls-cert.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    let not_a_key = env.dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            "cannot read TLS certificate /nonexistent/cert.pem",
        ),
        (
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            "cannot read TLS private key /nonexistent/key.pem",
        ),
        (
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                not_a_key.to_str().unwrap(),
            ],
            "cannot read TLS private key",
        ),
        (
            &["--tls-cert", cert.to_str().unwrap()],
            "give both or neither",
        ),
    ];
    for (flags, message) in cases {
        let mut cmd = env.quill();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(flags);
        let out = run_to_exit(cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} started");
        assert!(out.stdout.is_empty(), "{flags:?}");
        assert!(err.contains(message), "{flags:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn healthz_and_readyz() {
    let env = Env::new();
    let app = env.spawn();
    let r = app.get("/healthz");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap(), json!({"status": "ok"}));
    let r = app.get("/readyz");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"status": "ready", "database": "ok", "token": "ok"})
    );
    let r = app
        .client
        .head(format!("{}/healthz", app.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // Other methods: a CSC error, not a body-less 405.
    let r = app
        .client
        .post(format!("{}/readyz", app.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "invalid_request");
    // Not part of the CSC API.
    let r = app.post("/csc/v2/healthz", None, &json!({}));
    r.assert_error(404, "invalid_request");
}

/// `info.logo` is a URL that serves a PNG (Quill's own, under the issuer), or the operator's.
#[test]
fn info_announces_a_logo_that_is_served() {
    let env = Env::new();
    let app = env.spawn();
    let info = app.post("/csc/v2/info", None, &json!({}));
    let logo = info.body["logo"].as_str().unwrap().to_string();
    assert_eq!(logo, format!("{}/logo.png", app.base));
    let r = app.client.get(&logo).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = r.bytes().unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} bytes", png.len());
    drop(app);
    let mine = "https://tsp.example/brand/logo.png";
    let app = env.spawn_with(&["--logo", mine, "--region", "BG"]);
    let info = app.post("/csc/v2/info", None, &json!({}));
    assert_eq!(info.body["logo"], mine);
    assert_eq!(info.body["region"], "BG");
}

/// `series → value` of a Prometheus text exposition.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse::<f64>().unwrap())
        })
        .collect()
}

fn scrape(app: &TestApp) -> (String, HashMap<String, f64>) {
    let r = app.get("/metrics");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().unwrap();
    let parsed = parse_metrics(&text);
    (text, parsed)
}

#[test]
fn metrics_count_what_was_done() {
    let env = Env::new();
    let s = signer("mallory");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn();
    let (_, before) = scrape(&app);
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);

    let token = app.login(&s.user, &s.password);
    let hashes = vec![digest(SHA256, b"one"), digest(SHA256, b"two")];
    let sad = app.authorize(&token, &s, &cred, &hashes, SHA256);
    let r = app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
               "hashAlgorithmOID": SHA256, "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A wrong PIN.
    let r = app.post(
        "/csc/v2/credentials/authorize",
        Some(&token),
        &json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(&hashes[0])],
                "hashAlgorithmOID": SHA256,
                "authData": [{"id": "PIN", "value": "000000"}, {"id": "OTP", "value": s.next_otp(&cred)}]}),
    );
    r.assert_error(400, "invalid_authentication_data");
    // The right PIN with a wrong OTP: the same reason (which factor failed is not told).
    let r = app.post(
        "/csc/v2/credentials/authorize",
        Some(&token),
        &json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(&hashes[0])],
                "hashAlgorithmOID": SHA256,
                "authData": [{"id": "PIN", "value": s.pin}, {"id": "OTP", "value": "000000"}]}),
    );
    r.assert_error(400, "invalid_authentication_data");
    // Junk URLs.
    assert_eq!(app.get("/junk/abc123").status(), 404);
    app.post("/csc/v2/nope-xyz", None, &json!({}))
        .assert_error(404, "invalid_request");

    let (text, after) = scrape(&app);
    let delta = |k: &str| get(&after, k) - get(&before, k);
    for (series, want) in [
        (
            "quill_signatures_total{algorithm=\"1.2.840.10045.4.3.2\"}",
            2.0,
        ),
        (
            "quill_authorize_failures_total{reason=\"wrong_pin_or_otp\"}",
            2.0,
        ),
        ("quill_hsm_sign_seconds_count", 1.0),
        (
            "quill_http_requests_total{endpoint=\"/csc/v2/signatures/signHash\",status=\"200\"}",
            1.0,
        ),
        (
            "quill_http_requests_total{endpoint=\"/csc/v2/credentials/authorize\",status=\"200\"}",
            1.0,
        ),
        (
            "quill_http_requests_total{endpoint=\"/csc/v2/credentials/authorize\",status=\"400\"}",
            2.0,
        ),
        (
            "quill_http_requests_total{endpoint=\"/csc/v2/auth/login\",status=\"200\"}",
            1.0,
        ),
        (
            "quill_http_requests_total{endpoint=\"unmatched\",status=\"404\"}",
            2.0,
        ),
        (
            "quill_http_request_duration_seconds_count{endpoint=\"/csc/v2/signatures/signHash\"}",
            1.0,
        ),
        (
            "quill_http_requests_total{endpoint=\"/metrics\",status=\"200\"}",
            1.0,
        ),
    ] {
        assert_eq!(delta(series), want, "{series} in:\n{text}");
    }
    assert!(get(&after, "quill_hsm_sign_seconds_sum") > 0.0);
    assert!(
        !text.contains("junk") && !text.contains("nope-xyz"),
        "{text}"
    );
    // The scrape itself is in flight while it is rendered.
    assert_eq!(get(&after, "quill_http_requests_in_flight"), 1.0);
    assert_eq!(get(&after, "quill_db_pool_max_connections"), 16.0);
    let held = get(&after, "quill_db_pool_connections{state=\"idle\"}")
        + get(&after, "quill_db_pool_connections{state=\"in_use\"}");
    assert!((1.0..=16.0).contains(&held), "{text}");
}

/// JSON log lines of the server.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON log line: {l}")))
        .collect()
}

/// Does this log line belong to request `id` (a field of one of its spans)?
fn of_request(line: &Value, id: &str) -> bool {
    line["spans"]
        .as_array()
        .is_some_and(|spans| spans.iter().any(|s| s["request_id"] == id))
}

#[test]
fn request_ids_in_json_logs() {
    let env = Env::new();
    let s = signer("ivan");
    env.enroll(&s, "ec-p256");
    let (app, _) = env.spawn_custom(&["--log-format", "json"], |_| {});
    let info = |id: Option<&str>| {
        let mut req = app
            .client
            .post(format!("{}/csc/v2/info", app.base))
            .header("Content-Type", "application/json")
            .body("{}");
        if let Some(id) = id {
            req = req.header("X-Request-Id", id);
        }
        let r = req.send().unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["x-request-id"].to_str().unwrap().to_string()
    };
    assert_eq!(info(Some("abc123")), "abc123");
    let generated = info(None);
    assert_eq!(generated.len(), 32, "{generated}");
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    // Not a sane token: replaced.
    let replaced = info(Some("no spaces or \"quotes\" please"));
    assert_ne!(replaced, "no spaces or \"quotes\" please");
    assert_eq!(replaced.len(), 32);
    assert_eq!(info(Some(&"x".repeat(65))).len(), 32);
    // The ID follows the request into the service layer (blocking threads included).
    let r = app
        .client
        .post(format!("{}/csc/v2/auth/login", app.base))
        .basic_auth(&s.user, Some(&s.password))
        .header("X-Request-Id", "login-42")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "login-42");
    drop(app);

    let lines = json_lines(&env.server_log());
    let finished = |id: &str| {
        lines
            .iter()
            .find(|l| of_request(l, id) && l["fields"]["message"] == "request finished")
    };
    let line = finished("abc123").expect("a log line for request abc123");
    assert_eq!(line["fields"]["status"], 200);
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["endpoint"], "/csc/v2/info");
    assert!(
        finished(&generated).is_some(),
        "generated id {generated} in the log"
    );
    assert!(
        lines
            .iter()
            .any(|l| of_request(l, "login-42") && l["fields"]["message"] == "login succeeded"),
        "the service's own log line carries the request id"
    );
}

/// Text logs written to a file (as under systemd, docker or `2> quill.log`) are plain lines: no
/// terminal colour codes around the level, the spans or the field names.
#[test]
fn text_logs_to_a_file_carry_no_colour_codes() {
    let env = Env::new();
    let s = signer("olga");
    env.enroll(&s, "ec-p256");
    let app = env.spawn();
    let _token = app.login(&s.user, &s.password);
    drop(app);
    let log = env.server_log();
    let line = log
        .lines()
        .find(|l| l.contains("login succeeded"))
        .unwrap_or_else(|| panic!("no login line in:\n{log}"));
    assert!(!log.contains('\u{1b}'), "colour codes in the log:\n{log}");
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("endpoint=/csc/v2/auth/login"), "{line}");
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits() {
    let env = Env::new();
    let s = signer("judy");
    let cred = env
        .try_enroll_signer(&s, "rsa-3072", &["--multisign", "400"])
        .unwrap()
        .credential_id;
    let mut app = env.spawn();
    let token = app.login(&s.user, &s.password);
    // 400 RSA-3072 signatures in one call: long enough to be caught in flight.
    let hashes: Vec<Vec<u8>> = (0..400u32)
        .map(|i| digest(SHA256, &i.to_be_bytes()))
        .collect();
    let sad = app.authorize(&token, &s, &cred, &hashes, SHA256);
    let url = format!("{}/csc/v2/signatures/signHash", app.base);
    let body = json!({"credentialID": cred, "SAD": sad,
                      "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
                      "hashAlgorithmOID": SHA256, "signAlgo": "1.2.840.113549.1.1.11"})
    .to_string();
    let client = app.client.clone();
    let in_flight = std::thread::spawn(move || {
        let req = client
            .post(url)
            .bearer_auth(&token)
            .header("X-Request-Id", "slow-sign");
        send_checked("/csc/v2/signatures/signHash", req, &body)
    });

    // Wait until the server has the whole request (its body read, the handler running), then
    // ask it to stop. (A request still uploading its body when the signal arrives is cut off.)
    let until = Instant::now() + Duration::from_secs(30);
    while !env
        .server_log()
        .lines()
        .any(|l| l.contains("slow-sign") && l.contains("signHash body received"))
    {
        assert!(Instant::now() < until, "{}", env.server_log());
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-TERM", &app.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // The listener closes at once: new connections are refused while the request finishes.
    let addr = app.addr();
    let until = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(&addr).is_ok() {
        assert!(
            Instant::now() < until,
            "still accepting connections after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let r = in_flight.join().unwrap_or_else(|_| {
        panic!(
            "in-flight request failed; server log:\n{}",
            env.server_log()
        )
    });
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["signatures"].as_array().unwrap().len(), 400);
    let exit = app
        .wait_exit(Duration::from_secs(30))
        .expect("the server exits after finishing its requests");
    assert!(exit.success(), "exit status {exit:?}");
    assert!(TcpStream::connect(&addr).is_err());

    // In the log: the signal, then the request's end.
    let log = env.server_log();
    let signal = log
        .find("SIGTERM received")
        .unwrap_or_else(|| panic!("{log}"));
    let done = log
        .lines()
        .position(|l| l.contains("slow-sign") && l.contains("request finished"))
        .unwrap_or_else(|| panic!("{log}"));
    let signal_line = log[..signal].lines().count();
    assert!(
        signal_line <= done,
        "the request finished before the signal arrived:\n{log}"
    );
}

#[test]
fn expired_sads_are_purged_while_serving_and_the_audit_log_is_not() {
    let env = Env::new();
    let s = signer("pia");
    let cred = env.enroll(&s, "ec-p256").credential_id;
    let app = env.spawn_with(&[
        "--sad-ttl",
        "1",
        "--keep-expired",
        "0",
        "--purge-every",
        "1",
    ]);
    let token = app.login(&s.user, &s.password);
    let hashes = [digest(SHA256, b"early"), digest(SHA256, b"late")];
    let sad = app.authorize(&token, &s, &cred, &hashes, SHA256);
    let audit = env.db_i64("SELECT COUNT(*) AS n FROM audit_log");

    // The SAD expires after a second; the purge runs every second and keeps nothing expired.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while env.db_i64("SELECT COUNT(*) AS n FROM sads") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired SAD was never purged"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(env.db_i64("SELECT COUNT(*) AS n FROM sad_digests"), 0);
    let (_, m) = scrape(&app);
    assert_eq!(m.get("quill_purged_rows_total{table=\"sads\"}"), Some(&1.0));
    assert_eq!(
        m.get("quill_purged_rows_total{table=\"sad_digests\"}"),
        Some(&1.0)
    );
    // The SAD is gone (unknown now), the live access token is kept and still works.
    let r = app.sign_hash_raw(
        &token,
        json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&hashes[1])],
               "hashAlgorithmOID": SHA256, "signAlgo": "1.2.840.10045.4.3.2"}),
    );
    assert_eq!(r.description(), "Invalid parameter SAD");
    assert_eq!(env.db_i64("SELECT COUNT(*) AS n FROM access_tokens"), 1);
    let r = app.post("/csc/v2/credentials/list", Some(&token), &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    // The record is never purged: the refused call added to it, nothing was taken away.
    assert!(env.db_i64("SELECT COUNT(*) AS n FROM audit_log") > audit);
    audit_verifies(&env);
}

/// SIGKILL in the middle of a signing load, then a restart on the same database and token:
/// every signature a client received stays spent (its hash is refused as already signed after
/// the restart), at most the one call each client had in flight is lost (spent, never
/// answered), every other hash still signs once, and the audit chain is whole. On SQLite this
/// is the embedded default under `--sign-on-worker`: the spend committed to the WAL by the
/// request thread before the answer leaves, the checkpoints on a thread of their own.
#[test]
fn sigkill_mid_load_then_restart_keeps_every_answered_spend() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const ES256: &str = "1.2.840.10045.4.3.2";
    const N: usize = 240;
    const CLIENTS: usize = 3;
    let env = Env::new();
    let s = signer("kasia");
    let cred = env
        .try_enroll_signer(&s, "ec-p256", &["--multisign", "240"])
        .unwrap()
        .credential_id;
    // `--sign-on-worker` is refused on PostgreSQL: there the pool path is the one tested.
    let flags: &[&str] = if test_pg_url().is_some() {
        &[]
    } else {
        &["--sign-on-worker"]
    };
    let mut app = env.spawn_with(flags);
    let token = app.login(&s.user, &s.password);
    let hashes: Vec<Vec<u8>> = (0..N)
        .map(|i| digest(SHA256, format!("contract {i}").as_bytes()))
        .collect();
    let sad = app.authorize(&token, &s, &cred, &hashes, SHA256);
    let key = p256_key(&app, &token, &cred);
    let body = |i: usize| json!({"credentialID": cred, "SAD": sad, "hashes": [b64(&hashes[i])], "signAlgo": ES256});

    // Clients take hashes from one queue; the server is killed once N / 3 are answered. A
    // client stops at its first call without a whole answer.
    let url = format!("{}/csc/v2/signatures/signHash", app.base);
    let next = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let answered: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let app_ref = Mutex::new(&mut app);
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                let client = reqwest::blocking::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= N {
                        break;
                    }
                    let sent = client
                        .post(&url)
                        .bearer_auth(&token)
                        .timeout(Duration::from_secs(30))
                        .json(&body(i))
                        .send();
                    let Ok(r) = sent else { break };
                    assert_eq!(r.status(), 200, "before the kill every call signs");
                    let Ok(v) = r.json::<Value>() else { break };
                    let signature = v["signatures"][0].as_str().unwrap().to_string();
                    let count = {
                        let mut a = answered.lock().unwrap();
                        a.push((i, signature));
                        a.len()
                    };
                    if count >= N / 3 && !killed.swap(true, Ordering::SeqCst) {
                        app_ref.lock().unwrap().kill9();
                    }
                }
            });
        }
    });
    assert!(killed.load(Ordering::SeqCst));
    let answered = answered.into_inner().unwrap();
    assert!(
        answered.len() >= N / 3 && answered.len() < N,
        "{}",
        answered.len()
    );
    for (i, signature) in &answered {
        verify_p256(&key, &hashes[*i], signature);
    }

    // The restarted server (same database, same token, the same bearer token) refuses every
    // answered hash as signed, and signs every other one once — but the few that were spent
    // in flight when the process died.
    let app = env.spawn_named("restarted", flags);
    for (i, _) in &answered {
        let r = app.sign_hash_raw(&token, body(*i));
        r.assert_error(400, "invalid_request");
        assert!(r.description().contains("already signed"), "{}", r.body);
    }
    let mut lost_in_flight = 0;
    for (i, h) in hashes.iter().enumerate() {
        if answered.iter().any(|(a, _)| *a == i) {
            continue;
        }
        let r = app.sign_hash_raw(&token, body(i));
        if r.status == 200 {
            verify_p256(&key, h, r.body["signatures"][0].as_str().unwrap());
        } else {
            r.assert_error(400, "invalid_request");
            assert!(r.description().contains("already signed"), "{}", r.body);
            lost_in_flight += 1;
        }
    }
    eprintln!(
        "{} of {N} answered before the kill, {lost_in_flight} spent in flight",
        answered.len()
    );
    assert!(
        lost_in_flight <= CLIENTS,
        "{lost_in_flight} hashes spent without an answer: more than one per client"
    );
    assert_eq!(env.used_digests("TRUE"), N as i64);
    assert_eq!(
        env.db_i64("SELECT CAST(remaining AS BIGINT) AS n FROM sads"),
        0
    );
    audit_verifies(&env);
    assert_eq!(
        env.db_i64(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log \
             WHERE action = 'sign_hash' AND outcome = 'sad_spent'"
        ),
        N as i64,
        "one spend record per hash, none half-written"
    );
}

/// A malformed request (too many headers, a NUL in one) is answered by actix-http before Quill
/// sees it, and under the default log filter it leaves no ERROR line: anyone could otherwise fill
/// the log, and the alerts on it, with them. The server keeps serving.
#[test]
fn malformed_requests_do_not_log_errors_by_default() {
    use std::io::{Read, Write};
    let env = Env::new();
    let (app, _) = env.spawn_custom(&[], |cmd| {
        cmd.env_remove("QUILL_LOG");
    });
    let addr = app.addr();
    let raw = |req: &[u8]| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(req).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    let r = raw(format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes());
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    let r = raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: a\x00b\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert_eq!(app.get("/healthz").status(), 200);
    let log = env.server_log();
    assert!(log.contains("INFO"), "the server logs at info: {log}");
    assert!(!log.contains("ERROR"), "{log}");
}
