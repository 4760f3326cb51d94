//! The checks, in the order a relying party meets them: service metadata, login, token errors,
//! credentials, then authorizations (each needs a fresh OTP, so they are few and interleaved
//! across credentials), signatures, SAD lifecycle, and revocation last.
//!
//! This module owns the run ([`Suite::run`]) and what every area shares: the credential under
//! test ([`Cred`]), how rows are recorded, how requests are sent and their answers checked
//! (JSON bodies, CSC error objects, the repository's JSON Schemas), and the schema
//! rows that close the report. The checks themselves live in one module per area:
//! [`service`] (`info`, `auth/login`, bearer-token errors, `auth/revoke`), [`credentials`]
//! (`credentials/list`, `credentials/info`), [`authorize`] (`credentials/authorize` and the
//! scheduling of authorizations), [`signhash`] (`signatures/signHash` on the main SAD),
//! [`lifecycle`] (`credentials/extendTransaction`, SAD expiry), [`doc_plan`], [`signdoc`] and
//! [`signdoc_batch`] (`signatures/signDoc`, CAdES) and [`asynchronous`] (`operationMode: "A"`,
//! `signatures/signPolling`; [`async_callback`] its `response_uri`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Fatal;
use crate::cades_batch;
use crate::callback::CallbackListener;
use crate::certinfo::{self, Verdict};
use crate::client::{Auth, Client, Resp};
use crate::config::Config;
use crate::formats::{self, b64, std_base64};
use crate::otp::OtpProvider;
use crate::report::{CheckResult, Outcome, Report};
use crate::schema::{self, Kind, Schemas};
use crate::verify::{self, HashAlg, Leaf, SignPlan};

mod async_callback;
mod asynchronous;
mod authorize;
mod credentials;
mod doc_plan;
mod lifecycle;
pub mod names;
mod service;
mod signdoc;
mod signdoc_batch;
mod signhash;

#[cfg(test)]
mod signdoc_tests;
#[cfg(test)]
mod tests;

use doc_plan::{DOC_MULTISIGN, DocInputs, DocPlan};
use names as n;
use signdoc::DocExpect;

const INVALID_REQUEST: &[&str] = &["invalid_request"];
/// Wrong PIN: v2 `invalid_authentication_data`, v1 `invalid_pin`.
const WRONG_PIN_CODES: &[&str] = &["invalid_authentication_data", "invalid_pin"];
/// Wrong OTP: v2 `invalid_authentication_data`, v1 `invalid_otp`.
const WRONG_OTP_CODES: &[&str] = &["invalid_authentication_data", "invalid_otp"];
/// A missing token: CSC uses `invalid_token`; RFC 6750 §3.1 allows `invalid_request`.
const MISSING_TOKEN_CODES: &[&str] = &["invalid_token", "invalid_request"];
const BAD_TOKEN_CODES: &[&str] = &["invalid_token", "expired_token"];
/// Methods that need a bearer token, in the order the suite prefers them for token checks.
const PROTECTED: &[&str] = &[
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "signatures/signHash",
];
/// SAD lifetime assumed when `expiresIn` is absent (CSC default).
const DEFAULT_SAD_TTL: u64 = 3600;
/// Fields a refusal must not carry: signatures (signHash's, signDoc's), a SAD, a responseID.
const NOT_IN_A_REFUSAL: &[&str] = &[
    "signatures",
    "SignatureObject",
    "DocumentWithSignature",
    "SAD",
    "responseID",
];

/// How one auth object is satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Factor {
    Pin,
    /// Time-based OTP (computed or printed by the OTP command).
    OfflineOtp,
    /// Challenge first (`credentials/getChallenge` / `sendOTP`), then the OTP command.
    OnlineOtp,
    /// Out of band: only the id is sent.
    NoValue,
}

/// One credential under test.
struct Cred {
    id: String,
    info: Value,
    leaf: Option<Leaf>,
    scal2: bool,
    multisign: u64,
    hash: HashAlg,
    plans: Vec<SignPlan>,
    key_algo: Vec<String>,
    factors: Vec<(String, Factor)>,
    /// Why authorization-based checks cannot run (None = they can).
    blocked: Option<String>,
    /// An authorization failed: never try again (lockout counters).
    authorize_failed: bool,
    challenge_recorded: bool,
    /// expiresIn of the first SAD.
    sad_ttl: Option<u64>,
    /// Another credential under test (ID, a sign plan, its hash): its ID is sent with this
    /// credential's SAD, which must be refused.
    other: Option<(String, SignPlan, HashAlg)>,
    /// The signDoc checks run in this credential's main task (its SAD gets one more hash
    /// per signDoc signature).
    doc: Option<DocPlan>,
}

impl Cred {
    fn new(id: &str) -> Cred {
        Cred {
            id: id.to_string(),
            info: Value::Null,
            leaf: None,
            scal2: false,
            multisign: 1,
            hash: HashAlg::Sha256,
            plans: Vec::new(),
            key_algo: Vec::new(),
            factors: Vec::new(),
            blocked: None,
            authorize_failed: false,
            challenge_recorded: false,
            sad_ttl: None,
            other: None,
            doc: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    WrongPin,
    Main,
    Lifecycle,
    Async,
}

/// A conformance run in progress.
pub struct Suite<'a> {
    cfg: &'a Config,
    client: Client,
    schemas: Schemas,
    otp: OtpProvider,
    report: Report,
    last: Instant,
    methods: Vec<String>,
    /// `info.asynchronousOperationMode` is `true`.
    async_mode: bool,
    /// `info.signature_formats.formats` and `info.conformance_levels`, when given.
    signature_formats: Option<Vec<String>>,
    conformance_levels: Option<Vec<String>>,
    /// `info.signature_formats.envelope_properties` for C, when given.
    cades_envelopes: Option<Vec<String>>,
    token: Option<String>,
    request_problems: Vec<String>,
    requests_checked: usize,
    /// Schema rows (`schema: <method> response`): responses checked and the violations seen.
    /// They are reported apart from the functional checks, which rely only on what the spec
    /// requires, so that a stricter-than-spec schema never stops the run.
    schema_seen: std::collections::BTreeMap<String, (usize, Vec<String>)>,
    /// Logins after the access token was refused with 401.
    relogins: usize,
    nonce: String,
    /// The `response_uri` listener (`--callback-listen`), when there is one.
    callback: Option<CallbackListener>,
}

/// A PIN that differs from `pin` in its last character and keeps its format.
pub fn wrong_pin(pin: &str) -> String {
    let mut chars: Vec<char> = pin.chars().collect();
    match chars.pop() {
        Some(c) if c.is_ascii_digit() => {
            let d = c.to_digit(10).unwrap_or(0);
            chars.push(char::from_digit((d + 1) % 10, 10).unwrap_or('0'));
        }
        Some(c) => {
            chars.push(c);
            chars.push('x');
        }
        None => chars.push('0'),
    }
    chars.into_iter().collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An `error_description` (or nothing) for details.
fn description(r: &Resp) -> String {
    r.body
        .get("error_description")
        .and_then(Value::as_str)
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

/// Set a field of a JSON object (no-op on anything else).
fn set(body: &mut Value, key: &str, value: Value) {
    if let Some(obj) = body.as_object_mut() {
        obj.insert(key.to_string(), value);
    }
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl<'a> Suite<'a> {
    pub fn new(cfg: &'a Config) -> Result<Suite<'a>, Fatal> {
        let client = Client::new(&cfg.base_url, cfg.http_timeout).map_err(Fatal::Usage)?;
        let otp = OtpProvider::new(
            cfg.otp.clone(),
            client.base(),
            cfg.totp_scope,
            &cfg.totp_state,
        )
        .map_err(Fatal::Usage)?;
        let schemas = Schemas::load().map_err(Fatal::Internal)?;
        let nonce: u64 = rand::random();
        let callback = cfg
            .callback_listen
            .map(|addr| CallbackListener::start(addr, cfg.callback_url.as_deref()))
            .transpose()
            .map_err(Fatal::Usage)?;
        Ok(Suite {
            cfg,
            client,
            schemas,
            otp,
            report: Report::new(&cfg.base_url),
            last: Instant::now(),
            methods: Vec::new(),
            async_mode: false,
            signature_formats: None,
            conformance_levels: None,
            cades_envelopes: None,
            token: None,
            request_problems: Vec::new(),
            requests_checked: 0,
            schema_seen: std::collections::BTreeMap::new(),
            relogins: 0,
            nonce: format!("{nonce:016x}"),
            callback,
        })
    }

    // ----- recording -----

    fn record(&mut self, name: &str, cred: Option<&str>, outcome: Outcome, detail: String) {
        let now = Instant::now();
        self.report.results.push(CheckResult {
            name: name.to_string(),
            credential: cred.map(str::to_string),
            outcome,
            detail,
            duration: now.duration_since(self.last),
        });
        self.last = now;
    }

    fn result(&mut self, name: &str, cred: Option<&str>, r: Result<String, String>) {
        match r {
            Ok(d) => self.record(name, cred, Outcome::Pass, d),
            Err(d) => self.record(name, cred, Outcome::Fail, d),
        }
    }

    /// Like `result`, but a problem is a WARN (a stricter-than-spec schema), not a FAIL.
    fn result_or_warn(&mut self, name: &str, cred: Option<&str>, r: Result<String, String>) {
        match r {
            Ok(d) => self.record(name, cred, Outcome::Pass, d),
            Err(d) => self.record(name, cred, Outcome::Warn, d),
        }
    }

    fn skip(&mut self, name: &str, cred: Option<&str>, why: &str) {
        self.record(name, cred, Outcome::Skip, why.to_string());
    }

    fn skip_all(&mut self, names: &[&str], cred: Option<&str>, why: &str) {
        for name in names {
            self.skip(name, cred, why);
        }
    }

    fn advertised(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }

    fn not_advertised(method: &str) -> String {
        format!("{method} is not advertised in info.methods")
    }

    // ----- HTTP -----

    /// Send a request the suite means to be valid (checked against the request schema).
    fn call(&mut self, method: &str, auth: Auth<'_>, body: &Value) -> Result<Resp, String> {
        let file = schema::file_for(method, Kind::Request);
        if self.schemas.has(&file) {
            self.requests_checked += 1;
            if let Err(e) = self.schemas.check(&file, body) {
                self.request_problems.push(e);
            }
        }
        let r = self.client.post(method, auth, body)?;
        // The access token may simply have expired during the run (the TOTP waits and the
        // expiry check take minutes): log in again once and repeat the request.
        let stale = matches!(auth, Auth::Bearer(t) if self.token.as_deref() == Some(t));
        if r.status == 401 && stale && method != "auth/revoke" && self.relogin() {
            let token = self.bearer();
            return self.client.post(method, Auth::Bearer(&token), body);
        }
        Ok(r)
    }

    /// A new access token after a 401 on the current one (at most a few times per run).
    fn relogin(&mut self) -> bool {
        if self.relogins >= 3 || !self.advertised("auth/login") {
            return false;
        }
        self.relogins += 1;
        let (user, password) = (self.cfg.user.clone(), self.cfg.password.clone());
        let Ok(r) = self
            .client
            .post("auth/login", Auth::Basic(&user, &password), &json!({}))
        else {
            return false;
        };
        match r.body.get("access_token").and_then(Value::as_str) {
            Some(t) if r.status == 200 && !t.is_empty() => {
                self.token = Some(t.to_string());
                true
            }
            _ => false,
        }
    }

    /// Send a deliberately bad request (not checked against the request schema).
    fn call_bad(&self, method: &str, auth: Auth<'_>, body: &Value) -> Result<Resp, String> {
        self.client.post(method, auth, body)
    }

    fn bearer(&self) -> String {
        self.token.clone().unwrap_or_default()
    }

    /// 2xx with the expected status and a JSON object body. The body's schema is checked on
    /// the side: a violation goes to the row `schema: <method> response`, not to the caller.
    fn expect_ok(&mut self, method: &str, r: &Resp, status: u16) -> Result<(), String> {
        if r.status != status {
            return Err(format!("expected HTTP {status}, got {}", r.summary()));
        }
        if status == 204 {
            return Ok(());
        }
        if let Some(e) = &r.json_error {
            return Err(format!("the body is not JSON ({e}): {}", r.summary()));
        }
        if !r.body.is_object() {
            return Err(format!("the body is not a JSON object: {}", r.summary()));
        }
        let file = schema::file_for(method, Kind::Response);
        self.schema_note(&format!("schema: {method} response"), &file, &r.body);
        Ok(())
    }

    /// Check `body` against `file` (if embedded) for the schema row `row`.
    fn schema_note(&mut self, row: &str, file: &str, body: &Value) {
        if !self.schemas.has(file) {
            return;
        }
        let res = self.schemas.check(file, body);
        let entry = self.schema_seen.entry(row.to_string()).or_default();
        entry.0 += 1;
        if let Err(e) = res
            && !entry.1.contains(&e)
        {
            entry.1.push(e);
        }
    }

    /// A CSC error: one of `statuses`, a JSON body valid against error.json, one of `codes`,
    /// and neither a signature nor a SAD.
    fn expect_error(
        &mut self,
        r: &Resp,
        statuses: &[u16],
        codes: &[&str],
    ) -> Result<String, String> {
        let status = (!statuses.contains(&r.status)).then(|| format!("expected HTTP {statuses:?}"));
        let code = r.error_code().unwrap_or("");
        let code = (!codes.contains(&code)).then(|| format!("expected error {codes:?}"));
        self.refusal(r, status, code)
    }

    /// A refusal's verdict: `status` and `code` are what is wrong with its status and error
    /// code (None: right); then its body must be JSON (error.json's strictness is a schema row)
    /// and carry nothing signed.
    pub(super) fn refusal(
        &mut self,
        r: &Resp,
        status: Option<String>,
        code: Option<String>,
    ) -> Result<String, String> {
        let mut problems: Vec<String> = status.into_iter().collect();
        if let Some(e) = &r.json_error {
            problems.push(format!("the error body is not JSON ({e})"));
        } else {
            // error_description is optional (§6): error.json's strictness is a schema row.
            self.schema_note(n::SCHEMA_ERRORS, "error.json", &r.body);
        }
        problems.extend(code);
        if NOT_IN_A_REFUSAL.iter().any(|k| r.body.get(k).is_some()) {
            problems.push("a refusal must not carry signatures, a SAD or a responseID".into());
        }
        if problems.is_empty() {
            let code = r.error_code().unwrap_or("");
            Ok(format!("HTTP {} {code}{}", r.status, description(r)))
        } else {
            Err(format!("{}; got {}", problems.join("; "), r.summary()))
        }
    }

    fn error_check(
        &mut self,
        name: &str,
        cred: Option<&str>,
        sent: Result<Resp, String>,
        statuses: &[u16],
        codes: &[&str],
    ) {
        let r = sent.and_then(|r| self.expect_error(&r, statuses, codes));
        self.result(name, cred, r);
    }

    // ----- the run -----

    pub fn run(mut self) -> Result<Report, Fatal> {
        if !self.info()? {
            self.skip(n::LOGIN, None, "info failed");
            return Ok(self.report);
        }
        self.token_errors();
        self.login();
        if self.token.is_none() {
            let why = if self.advertised("auth/login") {
                "no access token: auth/login failed"
            } else {
                "no access token: auth/login is not advertised (the suite logs in with HTTP Basic)"
            };
            self.skip_all(&[n::LIST, n::CRED_INFO, n::AUTHZ, n::REVOKE], None, why);
            self.schema_rows();
            self.requests_row();
            return Ok(self.report);
        }
        let (ids, list_infos) = self.list();
        self.service_errors();
        self.async_service_errors();
        let mut creds = Vec::new();
        for id in ids {
            let entry = list_infos
                .iter()
                .find(|v| v.get("credentialID").and_then(Value::as_str) == Some(id.as_str()));
            creds.push(self.credential(&id, entry.cloned()));
        }
        self.authorizations(&mut creds);
        self.revoke();
        self.schema_rows();
        self.requests_row();
        Ok(self.report)
    }

    /// One row per response schema the run met: FAIL lists the violations. These rows check
    /// against Quill's schemas, which are stricter than the spec (e.g. they require optional
    /// fields such as `expires_in`); the functional rows never depend on them.
    fn schema_rows(&mut self) {
        let seen = std::mem::take(&mut self.schema_seen);
        for (row, (checked, problems)) in seen {
            let res = if problems.is_empty() {
                Ok(format!("{checked} response(s) valid against the schema"))
            } else {
                Err(format!(
                    "stricter-than-spec schema, {} distinct violation(s) in {checked} response(s): {}",
                    problems.len(),
                    problems.join("; ")
                ))
            };
            self.result_or_warn(&row, None, res);
        }
    }

    /// The suite's own requests against `schema/`: they carry the server's values (credential
    /// IDs, auth object IDs), which the spec leaves freer than Quill's schemas; a WARN.
    fn requests_row(&mut self) {
        let problems = std::mem::take(&mut self.request_problems);
        let res = if problems.is_empty() {
            Ok(format!(
                "{} well-formed requests valid against their schemas",
                self.requests_checked
            ))
        } else {
            Err(problems.join("; "))
        };
        self.result_or_warn(n::REQUESTS, None, res);
    }
}

/// A failed signing row's detail with how old its SAD was and the lifetime the server gave it
/// (a SAD that expired before the call is the server's answer, not a signing fault).
fn with_sad_age(e: String, issued: Instant, ttl: Option<u64>) -> String {
    format!(
        "{e} [{:.1} s after the SAD was issued, expiresIn {}]",
        issued.elapsed().as_secs_f64(),
        ttl.map_or("absent".into(), |t| format!("{t} s"))
    )
}
