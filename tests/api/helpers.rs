//! Test harness: a private SoftHSM2 token and database per test, the real binary, typed helpers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use der::{Decode, Encode};
use serde_json::{Value, json};
use sha2::Digest;

pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const TOKEN_PIN: &str = "4321-token";
pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
pub const SHA384: &str = "2.16.840.1.101.3.4.2.2";
pub const SHA512: &str = "2.16.840.1.101.3.4.2.3";

/// A token directory, SoftHSM2 config and database for one test.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub db_url: String,
    pg: Option<PgDb>,
}

/// A database of its own on the PostgreSQL server named by `QUILL_TEST_PG_URL` (CI runs the
/// whole suite a second time with it set), dropped at the end of the test.
pub struct PgDb(quill::store::scratch::ScratchDatabase);

impl PgDb {
    pub fn create(admin: &str) -> PgDb {
        PgDb(quill::store::scratch::ScratchDatabase::create(admin, "quill_it").unwrap())
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        self.0.url()
    }
}

/// The PostgreSQL server the suite runs against, if any.
pub fn test_pg_url() -> Option<String> {
    std::env::var("QUILL_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// What `quill enroll` printed.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Enrolled {
    pub user: String,
    pub credential_id: String,
    pub totp_secret: Option<String>,
    pub otpauth_uri: Option<String>,
    pub otp: Option<String>,
}

/// A user with password, PIN and TOTP secret, and the last TOTP step used per credential (a
/// code is accepted once per credential, so the signer behaves like a person reading the next
/// code off an authenticator app).
#[derive(Debug, Clone)]
pub struct Signer {
    pub user: String,
    pub password: String,
    pub pin: String,
    pub totp_secret: String,
    pub used_steps: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
}

impl Signer {
    /// A TOTP code not yet used for `cred` (waits for the next 30-second step when needed).
    pub fn next_otp(&self, cred: &str) -> String {
        let secret = quill::auth::otp::parse_secret(&self.totp_secret).unwrap();
        loop {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let step = now / 30;
            let mut used = self.used_steps.lock().unwrap();
            let candidate = used.get(cred).map_or(step, |last| (last + 1).max(step));
            if candidate <= step + 1 {
                used.insert(cred.to_string(), candidate);
                return quill::auth::otp::generate(&secret, candidate * 30).unwrap();
            }
            drop(used);
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

/// Run `$body` with `$c` a fresh diesel connection to `$env`'s database (PostgreSQL or SQLite).
macro_rules! on_test_db {
    ($env:expr, |$c:ident| $body:expr) => {
        if $env.db_url.starts_with("postgres") {
            let mut $c = diesel::PgConnection::establish(&$env.db_url).unwrap();
            $body
        } else {
            let path = $env.db_url.trim_start_matches("sqlite://");
            let mut $c = diesel::SqliteConnection::establish(path).unwrap();
            $body
        }
    };
}
/// A SoftHSM2 configuration `dir/conf_name` whose tokens live in `dir/tokens_name` (made empty);
/// the configuration's path.
pub fn softhsm_conf(
    dir: &std::path::Path,
    tokens_name: &str,
    conf_name: &str,
) -> std::path::PathBuf {
    let tokens = dir.join(tokens_name);
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join(conf_name);
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    conf
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let conf = softhsm_conf(dir.path(), "tokens", "softhsm2.conf");
        let status = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", "quill-test"])
            .args(["--pin", TOKEN_PIN, "--so-pin", "5678-so"])
            .env("SOFTHSM2_CONF", &conf)
            .stdout(Stdio::null())
            .status()
            .expect("softhsm2-util (apt-get install softhsm2)");
        assert!(status.success());
        let pg = test_pg_url().map(|admin| PgDb::create(&admin));
        let db_url = match &pg {
            Some(db) => db.url(),
            None => format!("sqlite://{}", dir.path().join("quill.db").display()),
        };
        Env {
            dir,
            conf,
            db_url,
            pg,
        }
    }

    /// One integer from a query on this test's database (`SELECT … AS n`).
    pub fn db_i64(&self, sql: &str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let row: N = on_test_db!(self, |c| diesel::sql_query(sql).get_result(&mut c).unwrap());
        row.n
    }

    /// Digests signed with the SADs that `filter` (a condition on `sads`) selects: each SAD keeps
    /// one byte per digest in `used`, 1 once signed.
    pub fn used_digests(&self, filter: &str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Used {
            #[diesel(sql_type = diesel::sql_types::Binary)]
            used: Vec<u8>,
        }
        let sql = format!("SELECT used FROM sads WHERE {filter}");
        let rows: Vec<Used> = on_test_db!(self, |c| diesel::sql_query(&sql).load(&mut c).unwrap());
        rows.iter()
            .map(|r| r.used.iter().filter(|b| **b != 0).count() as i64)
            .sum()
    }

    /// Hold the database's write lock from outside Quill for `d` (SQLite: an immediate
    /// transaction; PostgreSQL: Quill's advisory write lock), from a thread: returns once the
    /// lock is held, with the thread's handle, which gives the time it let go.
    pub fn hold_write_lock(
        &self,
        d: std::time::Duration,
    ) -> std::thread::JoinHandle<std::time::SystemTime> {
        use diesel::connection::SimpleConnection;
        use diesel::prelude::*;
        let url = self.db_url.clone();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let hold = |c: &mut dyn SimpleConnection, begin: &str| {
                c.batch_execute(begin).unwrap();
                held_tx.send(()).unwrap();
                std::thread::sleep(d);
                let released = std::time::SystemTime::now();
                c.batch_execute("ROLLBACK").unwrap();
                released
            };
            if url.starts_with("postgres") {
                let mut c = diesel::PgConnection::establish(&url).unwrap();
                let begin = format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({})",
                    quill::store::PG_WRITE_LOCK
                );
                hold(&mut c, &begin)
            } else {
                let path = url.trim_start_matches("sqlite://");
                let mut c = diesel::SqliteConnection::establish(path).unwrap();
                hold(&mut c, "BEGIN IMMEDIATE")
            }
        });
        held_rx.recv().unwrap();
        holder
    }

    /// Run SQL on this test's database behind Quill's back; the number of rows it touched.
    pub fn db_execute(&self, sql: &str) -> usize {
        use diesel::prelude::*;
        on_test_db!(self, |c| diesel::sql_query(sql).execute(&mut c).unwrap())
    }

    /// Run `quill ARGS` with this environment's settings; it must succeed. Its stdout.
    pub fn quill_ok(&self, args: &[&str]) -> String {
        let out = self.quill().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "quill {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The `quill` binary with this environment's settings.
    pub fn quill(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_quill"));
        c.env("SOFTHSM2_CONF", &self.conf)
            .env("QUILL_DATABASE_URL", &self.db_url)
            .env("QUILL_PKCS11_MODULE", SOFTHSM_MODULE)
            .env("QUILL_TOKEN_LABEL", "quill-test")
            .env("QUILL_TOKEN_PIN", TOKEN_PIN)
            .env("QUILL_ARGON2_MEMORY_KIB", "8192")
            .env("QUILL_ARGON2_ITERATIONS", "1")
            .env_remove("QUILL_LISTEN");
        c
    }

    /// Run `quill enroll`; returns the output or the process's stderr on failure.
    pub fn try_enroll(&self, args: &[&str]) -> Result<Enrolled, String> {
        let out = self.quill().arg("enroll").args(args).output().unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            stdout.lines().count(),
            1,
            "enroll prints one JSON line: {stdout}"
        );
        Ok(serde_json::from_str(&stdout).unwrap())
    }

    /// `quill enroll` of `key` for a signer (its user, password, PIN and TOTP secret) with
    /// `extra` flags; the output or stderr.
    pub fn try_enroll_signer(
        &self,
        s: &Signer,
        key: &str,
        extra: &[&str],
    ) -> Result<Enrolled, String> {
        let mut args = vec![
            "--user",
            &s.user,
            "--password",
            &s.password,
            "--pin",
            &s.pin,
            "--key",
            key,
            "--totp-secret",
            &s.totp_secret,
        ];
        args.extend_from_slice(extra);
        self.try_enroll(&args)
    }

    /// Enrol `key` for a signer (creating the user on first call).
    pub fn enroll(&self, s: &Signer, key: &str) -> Enrolled {
        let e = self.try_enroll_signer(s, key, &[]).unwrap();
        assert_eq!(e.totp_secret.as_deref(), Some(s.totp_secret.as_str()));
        e
    }

    pub fn spawn(&self) -> TestApp {
        self.spawn_with(&[])
    }

    /// Start `quill serve` on a free port with extra flags.
    pub fn spawn_with(&self, extra: &[&str]) -> TestApp {
        self.spawn_named("server", extra)
    }

    /// Start another `quill serve` on this environment (same token, same database), logging
    /// to `NAME.log`.
    pub fn spawn_named(&self, name: &str, extra: &[&str]) -> TestApp {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let mut child = self
            .quill()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("QUILL_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("server did not start: {line:?} {}", self.server_log()));
        let addr = v["listening"].as_str().unwrap().to_string();
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::blocking::Client::new(),
            child,
        }
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

/// A new signer with a random name and a fixed test TOTP secret.
pub fn signer(name: &str) -> Signer {
    Signer {
        user: name.to_string(),
        password: format!("pw-{name}-correct"),
        pin: "123456".into(),
        totp_secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
        used_steps: Default::default(),
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::blocking::Client,
    child: Child,
}

impl TestApp {
    /// SIGKILL the server process (no shutdown, no cleanup) and reap it.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response: status and JSON body (Null when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    /// Assert a CSC error with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["error"], code, "body: {}", self.body);
        assert!(
            self.body["error_description"].is_string(),
            "body: {}",
            self.body
        );
        self
    }

    pub fn description(&self) -> String {
        self.body["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Send one CSC request with `body` (as JSON) and check the exchange against `schema/` (see
/// `schemas::check_exchange`): every request the tests make goes through here.
pub fn send_checked(path: &str, req: reqwest::blocking::RequestBuilder, body: &str) -> Resp {
    let r = req
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().unwrap();
    crate::schemas::check_exchange(path, body, status, content_type.as_deref(), &text);
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
    };
    Resp { status, body }
}

impl TestApp {
    /// POST raw bytes.
    pub fn post_raw(&self, path: &str, token: Option<&str>, body: &str) -> Resp {
        let mut req = self.client.post(format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send_checked(path, req, body)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.post_raw(path, token, &body.to_string())
    }

    pub fn login(&self, user: &str, password: &str) -> String {
        let path = "/csc/v2/auth/login";
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(user, Some(password));
        let r = send_checked(path, req, "{}");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body["expires_in"].as_i64().unwrap() > 0);
        r.body["access_token"].as_str().unwrap().to_string()
    }

    pub fn login_raw(&self, authorization: Option<&str>) -> Resp {
        let path = "/csc/v2/auth/login";
        let mut req = self.client.post(format!("{}{path}", self.base));
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        send_checked(path, req, "{}")
    }

    /// Authorize `h` for the P-256 credential `cred` as `s`, sign it (ecdsa-with-SHA256) and
    /// verify the signature against the credential's certificate.
    pub fn sign_p256_verified(&self, token: &str, s: &Signer, cred: &str, h: &[u8]) {
        let sad = self.authorize(token, s, cred, &[h.to_vec()], SHA256);
        let r = self.sign_hash_raw(
            token,
            json!({"credentialID": cred, "SAD": sad, "hashes": [b64(h)],
                "signAlgo": "1.2.840.10045.4.3.2"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        verify_p256(
            &p256_key(self, token, cred),
            h,
            r.body["signatures"][0].as_str().unwrap(),
        );
    }

    /// `credentials/authorize` for `hash` with a wrong PIN and OTP (000000): refused.
    pub fn authorize_wrongly(&self, token: &str, cred: &str, hash: &[u8]) -> Resp {
        self.post(
            "/csc/v2/credentials/authorize",
            Some(token),
            &json!({"credentialID": cred, "numSignatures": 1, "hashes": [b64(hash)],
                "hashAlgorithmOID": SHA256,
                "authData": [{"id": "PIN", "value": "000000"}, {"id": "OTP", "value": "000000"}]}),
        )
    }

    /// `credentials/authorize` with PIN and the current TOTP code.
    pub fn authorize_raw(
        &self,
        token: &str,
        s: &Signer,
        cred: &str,
        hashes: &[Vec<u8>],
        alg: &str,
    ) -> Resp {
        self.post(
            "/csc/v2/credentials/authorize",
            Some(token),
            &json!({
                "credentialID": cred,
                "numSignatures": hashes.len(),
                "hashes": hashes.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
                "hashAlgorithmOID": alg,
                "authData": [{"id": "PIN", "value": s.pin}, {"id": "OTP", "value": s.next_otp(cred)}],
            }),
        )
    }

    pub fn authorize(
        &self,
        token: &str,
        s: &Signer,
        cred: &str,
        hashes: &[Vec<u8>],
        alg: &str,
    ) -> String {
        let r = self.authorize_raw(token, s, cred, hashes, alg);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body["expiresIn"].as_i64().unwrap() > 0);
        r.body["SAD"].as_str().unwrap().to_string()
    }

    pub fn sign_hash_raw(&self, token: &str, body: Value) -> Resp {
        self.post("/csc/v2/signatures/signHash", Some(token), &body)
    }

    pub fn credential_info(&self, token: &str, cred: &str) -> Value {
        let r = self.post(
            "/csc/v2/credentials/info",
            Some(token),
            &json!({"credentialID": cred, "certificates": "chain", "certInfo": true}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }
}

pub fn totp_now(secret: &str) -> String {
    let bytes = quill::auth::otp::parse_secret(secret).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    quill::auth::otp::generate(&bytes, now).unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap()
}

/// A digest of `data` for a hash OID.
pub fn digest(alg: &str, data: &[u8]) -> Vec<u8> {
    match alg {
        SHA256 => sha2::Sha256::digest(data).to_vec(),
        SHA384 => sha2::Sha384::digest(data).to_vec(),
        SHA512 => sha2::Sha512::digest(data).to_vec(),
        other => panic!("unknown hash {other}"),
    }
}

/// The end-entity certificate and the CA certificate of a credentials/info response.
pub fn chain(info: &Value) -> (x509_cert::Certificate, x509_cert::Certificate) {
    let certs = info["cert"]["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2, "chain = end entity + CA");
    let ee = x509_cert::Certificate::from_der(&unb64(certs[0].as_str().unwrap())).unwrap();
    let ca = x509_cert::Certificate::from_der(&unb64(certs[1].as_str().unwrap())).unwrap();
    (ee, ca)
}

pub fn spki_der(cert: &x509_cert::Certificate) -> Vec<u8> {
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap()
}

/// Check that `ee` was issued by `ca` (P-256 CA key, ecdsa-with-SHA256).
pub fn assert_issued_by(ee: &x509_cert::Certificate, ca: &x509_cert::Certificate) {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let ca_key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der(ca)).unwrap();
    let tbs = ee.tbs_certificate.to_der().unwrap();
    let sig = p256::ecdsa::DerSignature::try_from(ee.signature.raw_bytes()).unwrap();
    ca_key
        .verify(&tbs, &sig)
        .expect("certificate signature verifies under the CA key");
    assert_eq!(ee.tbs_certificate.issuer, ca.tbs_certificate.subject);
}

// ---- operations (tests/api/ops.rs) ----

impl Env {
    /// Start `quill serve` on a free port with extra flags, after `tweak` adjusted the command
    /// (environment, working directory …); also returns the startup line. The base URL comes
    /// from its `url` (`https://…` with TLS).
    pub fn spawn_custom(
        &self,
        extra: &[&str],
        tweak: impl FnOnce(&mut Command),
    ) -> (TestApp, Value) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let mut cmd = self.quill();
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("QUILL_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(log);
        tweak(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("server did not start: {line:?} {}", self.server_log()));
        let app = TestApp {
            base: v["url"].as_str().unwrap().to_string(),
            client: reqwest::blocking::Client::new(),
            child,
        };
        (app, v)
    }
}

impl TestApp {
    /// Process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait up to `timeout` for the server to exit.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// A plain GET (operations endpoints are outside the CSC schemas).
    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap()
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> String {
        self.base.split("://").nth(1).unwrap().to_string()
    }
}

// ---- shared by the fault and multi-instance tests ----

/// The P-256 verifying key of a credential, from its certificate in `credentials/info`.
pub fn p256_key(app: &TestApp, token: &str, cred: &str) -> p256::ecdsa::VerifyingKey {
    use p256::pkcs8::DecodePublicKey;
    let (ee, _) = chain(&app.credential_info(token, cred));
    p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der(&ee)).unwrap()
}

/// Verify a base64 DER ECDSA signature over `digest`.
pub fn verify_p256(key: &p256::ecdsa::VerifyingKey, digest: &[u8], sig_b64: &str) {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let sig = p256::ecdsa::Signature::from_der(&unb64(sig_b64)).unwrap();
    key.verify_prehash(digest, &sig).unwrap();
}

/// `quill audit verify` accepts the whole chain.
pub fn audit_verifies(env: &Env) {
    let out = env.quill().args(["audit", "verify"]).output().unwrap();
    assert!(
        out.status.success(),
        "audit verify: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
