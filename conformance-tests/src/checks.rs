//! The checks, in the order a relying party meets them: service metadata, login, token errors,
//! credentials, then authorizations (each needs a fresh OTP, so they are few and interleaved
//! across credentials), signatures, SAD lifecycle, and revocation last.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Fatal;
use crate::certinfo::{self, Verdict};
use crate::client::{Auth, Client, Resp};
use crate::config::Config;
use crate::formats::{self, b64, std_base64};
use crate::otp::OtpProvider;
use crate::report::{CheckResult, Outcome, Report};
use crate::schema::{self, Kind, Schemas};
use crate::verify::{self, HashAlg, Leaf, SignPlan};

/// The names of the checks (rows of the report). Per-credential rows carry the credential ID
/// separately ([`CheckResult::credential`]).
pub mod names {
    pub const INFO: &str = "info";
    pub const INFO_FORMATS: &str = "info: OIDs and base64";
    pub const NO_TOKEN: &str = "errors: no bearer token";
    pub const BAD_TOKEN: &str = "errors: invalid bearer token";
    pub const LOGIN_MALFORMED: &str = "auth/login: malformed Authorization header";
    pub const LOGIN: &str = "auth/login";
    pub const LIST: &str = "credentials/list";
    pub const LIST_INFOS: &str = "credentials/list: credentialInfo";
    pub const INFO_MISSING_ID: &str = "credentials/info: missing credentialID";
    pub const INFO_UNKNOWN_ID: &str = "credentials/info: unknown credentialID";
    pub const INFO_BAD_CERTIFICATES: &str = "credentials/info: invalid certificates parameter";
    pub const AUTHZ_MISSING_ID: &str = "credentials/authorize: missing credentialID";
    pub const AUTHZ_UNKNOWN_ID: &str = "credentials/authorize: unknown credentialID";
    pub const CRED_INFO: &str = "credentials/info";
    pub const CRED_FORMATS: &str = "credentials/info: OIDs and base64";
    pub const CRED_CHAIN: &str = "credentials/info: certificate chain";
    pub const CRED_KEY: &str = "credentials/info: key matches certificate";
    /// certInfo (CSC v2 §11.5) against the end-entity certificate, one row per field group.
    pub const CERT_SERIAL: &str = "credentials/info: cert.serialNumber matches the certificate";
    pub const CERT_SUBJECT: &str = "credentials/info: cert.subjectDN matches the certificate";
    pub const CERT_ISSUER: &str = "credentials/info: cert.issuerDN matches the certificate";
    pub const CERT_VALIDITY: &str =
        "credentials/info: cert.validFrom/validTo match the certificate";
    pub const CERT_STATUS: &str = "credentials/info: cert.status agrees with the validity";
    /// The same comparisons, on `credentials/list`'s `credentialInfos` (one row per credential).
    pub const LIST_CERT_INFO: &str = "credentials/list: certInfo matches the certificate";
    pub const CHALLENGE: &str = "credentials/getChallenge";
    pub const AUTHZ_WRONG_PIN: &str = "credentials/authorize: wrong PIN";
    pub const AUTHZ_WRONG_OTP: &str = "credentials/authorize: right PIN, wrong OTP";
    pub const AUTHZ: &str = "credentials/authorize";
    pub const SIGN_MISSING_ID: &str = "signatures/signHash: missing credentialID";
    pub const SIGN_UNKNOWN_ID: &str = "signatures/signHash: unknown credentialID";
    pub const SIGN_BAD_BASE64: &str = "signatures/signHash: malformed base64 hash";
    /// SCAL 1: sent to signHash; SCAL 2: sent to credentials/authorize (a SCAL 2 signHash
    /// would refuse the short digest for not being bound to the SAD, whatever its length).
    pub const SIGN_BAD_LENGTH: &str = "wrong hash length (signHash; SCAL 2: authorize)";
    pub const SIGN_BAD_ALGO: &str = "signatures/signHash: unsupported signAlgo";
    pub const SIGN_FAKE_SAD: &str = "signatures/signHash: made-up SAD";
    pub const SIGN_OTHER_SAD: &str = "signatures/signHash: another credential's SAD";
    pub const SCAL2_UNBOUND: &str = "SCAL2: hash not bound to the SAD is refused";
    pub const SIGN_FIRST: &str = "signatures/signHash: first bound hash verifies";
    pub const SIGN_SECOND: &str = "signatures/signHash: second bound hash verifies";
    pub const SAD_EXHAUSTED: &str = "SAD: refused once its signatures are spent";
    pub const AUTHZ_AGAIN: &str = "credentials/authorize: second SAD";
    pub const EXTEND: &str = "credentials/extendTransaction";
    pub const SIGN_EXTENDED: &str = "signatures/signHash: extended SAD verifies";
    pub const SAD_EXPIRY: &str = "SAD: refused after expiresIn";
    /// The asynchronous mode (`operationMode: "A"`, `signatures/signPolling`): only when
    /// `info` says `asynchronousOperationMode: true` and lists `signatures/signPolling`.
    pub const ASYNC_UNKNOWN_ID: &str = "signatures/signPolling: unknown requestID";
    pub const ASYNC_AUTHZ: &str = "credentials/authorize: SAD for the asynchronous call";
    pub const ASYNC_MALFORMED: &str = "signatures/signHash (async): malformed call refused at once";
    pub const ASYNC_FAKE_SAD: &str = "signatures/signHash (async): made-up SAD signs nothing";
    pub const ASYNC_SIGN: &str = "signatures/signHash (async): polled signature verifies";
    pub const ASYNC_POLL_AGAIN: &str =
        "signatures/signPolling: the answer polled again is the same";
    /// `signatures/signDoc` (CAdES): only when `info` lists `signatures/signDoc`; on one
    /// credential, with one more hash in its main SAD per signature (B-B, B-T, attached).
    pub const DOC_BAD_FORMAT: &str = "signatures/signDoc: unknown signature_format refused";
    pub const DOC_SIGN: &str = "signatures/signDoc: detached CAdES-B-B verifies";
    /// Unless `info.conformance_levels` leaves out Ades-B-T.
    pub const DOC_SIGN_T: &str = "signatures/signDoc: detached CAdES-B-T time-stamp verifies";
    /// Unless `info.signature_formats.envelope_properties` leaves out Attached for C.
    pub const DOC_ATTACHED: &str = "signatures/signDoc: attached CAdES of a document verifies";
    pub const DOC_REFUSED: &str = "signatures/signDoc: spent SAD or unbound hash refused";
    pub const REVOKE: &str = "auth/revoke";
    pub const REVOKED_TOKEN: &str = "auth/revoke: token refused afterwards";
    pub const REQUESTS: &str = "JSON Schema: requests sent by the suite";
    /// Error bodies against error.json (rows for responses are `schema: <method> response`).
    pub const SCHEMA_ERRORS: &str = "schema: error responses";

    /// The certInfo rows of `credentials/info` (per credential).
    pub const CERT_INFO_ROWS: &[&str] = &[
        CERT_SERIAL,
        CERT_SUBJECT,
        CERT_ISSUER,
        CERT_VALIDITY,
        CERT_STATUS,
    ];
    /// Rows of the authorization that signs (per credential).
    pub const MAIN_TASK: &[&str] = &[
        SIGN_MISSING_ID,
        SIGN_UNKNOWN_ID,
        SIGN_BAD_BASE64,
        SIGN_BAD_LENGTH,
        SIGN_BAD_ALGO,
        SIGN_FAKE_SAD,
        SIGN_OTHER_SAD,
        SCAL2_UNBOUND,
        SIGN_FIRST,
        SIGN_SECOND,
        SAD_EXHAUSTED,
    ];
    /// Rows of the SAD lifecycle authorization (one credential).
    pub const LIFECYCLE_TASK: &[&str] = &[AUTHZ_AGAIN, EXTEND, SIGN_EXTENDED, SAD_EXPIRY];
    /// Rows of the asynchronous authorization (one credential).
    pub const ASYNC_TASK: &[&str] = &[
        ASYNC_AUTHZ,
        ASYNC_MALFORMED,
        ASYNC_FAKE_SAD,
        ASYNC_SIGN,
        ASYNC_POLL_AGAIN,
    ];
    /// Rows of signDoc (one credential, within its main task).
    pub const DOC_TASK: &[&str] = &[
        DOC_BAD_FORMAT,
        DOC_SIGN,
        DOC_SIGN_T,
        DOC_ATTACHED,
        DOC_REFUSED,
    ];
}

use names as n;

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
/// `validity_period` of the suite's asynchronous calls, milliseconds: long enough to poll the
/// answer twice, well within CSC's usual bounds.
const ASYNC_VALIDITY_MS: u64 = 60_000;
/// How often and how long an asynchronous call's answer is polled for.
const POLL_EVERY: Duration = Duration::from_millis(100);
const POLL_FOR: Duration = Duration::from_secs(30);
const MAX_POLLS: usize = 300;
/// Fields a refusal must not carry: signatures (signHash's, signDoc's), a SAD, a responseID.
const NOT_IN_A_REFUSAL: &[&str] = &[
    "signatures",
    "SignatureObject",
    "DocumentWithSignature",
    "SAD",
    "responseID",
];
/// The multisign a credential needs for the signDoc checks: two signHash signatures and one
/// signDoc signature (the CAdES-B-B) from its main SAD; the B-T and the attached signature
/// take one more each.
const DOC_MULTISIGN: u64 = 3;

/// The signDoc checks one credential's main SAD pays for, beyond the CAdES-B-B (one
/// signature each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DocPlan {
    /// A detached CAdES-B-T too.
    t: bool,
    /// An attached CAdES of a whole document, signed with this plan: its signAlgo implies the
    /// digest (a `documents` entry has no hashAlgorithmOID).
    attached: Option<SignPlan>,
}

impl DocPlan {
    /// The signatures the plan takes from the SAD.
    fn signatures(&self) -> u64 {
        1 + u64::from(self.t) + u64::from(self.attached.is_some())
    }

    /// The rows the plan records.
    fn rows(&self) -> Vec<&'static str> {
        let mut rows = vec![n::DOC_BAD_FORMAT, n::DOC_SIGN];
        if self.t {
            rows.push(n::DOC_SIGN_T);
        }
        if self.attached.is_some() {
            rows.push(n::DOC_ATTACHED);
        }
        rows.push(n::DOC_REFUSED);
        rows
    }
}

/// What the signDoc calls sign: the digests and the document the main SAD authorizes.
struct DocInputs {
    /// The digest signed as a detached CAdES-B-B.
    b: Vec<u8>,
    /// The digest signed as a detached CAdES-B-T.
    t: Option<Vec<u8>>,
    /// The document signed as an attached CAdES, and how.
    attached: Option<(SignPlan, Vec<u8>)>,
}

/// The signature one signDoc call must return.
#[derive(Debug, Clone, Copy)]
enum DocExpect<'a> {
    /// A detached CAdES over `digest`, B-B or (`t`) B-T.
    Detached { digest: &'a [u8], t: bool },
    /// An attached CAdES of `document`.
    Attached { document: &'a [u8] },
}

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
        let mut problems = Vec::new();
        if !statuses.contains(&r.status) {
            problems.push(format!("expected HTTP {statuses:?}"));
        }
        if let Some(e) = &r.json_error {
            problems.push(format!("the error body is not JSON ({e})"));
        } else {
            // error_description is optional (§6): error.json's strictness is a schema row.
            self.schema_note(n::SCHEMA_ERRORS, "error.json", &r.body);
        }
        let code = r.error_code().unwrap_or("");
        if !codes.contains(&code) {
            problems.push(format!("expected error {codes:?}"));
        }
        if NOT_IN_A_REFUSAL.iter().any(|k| r.body.get(k).is_some()) {
            problems.push("a refusal must not carry signatures, a SAD or a responseID".into());
        }
        if problems.is_empty() {
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

    /// `info`: 200, schema, formats. Returns whether the rest can run.
    fn info(&mut self) -> Result<bool, Fatal> {
        let r = self
            .call("info", Auth::None, &json!({}))
            .map_err(Fatal::Connection)?;
        let ok = self.expect_ok("info", &r, 200);
        self.methods = str_list(r.body.get("methods"));
        self.async_mode = r.body.get("asynchronousOperationMode") == Some(&Value::Bool(true));
        self.signature_formats = r
            .body
            .pointer("/signature_formats/formats")
            .filter(|v| v.is_array())
            .map(|v| str_list(Some(v)));
        self.conformance_levels = r
            .body
            .get("conformance_levels")
            .filter(|v| v.is_array())
            .map(|v| str_list(Some(v)));
        // envelope_properties[i] lists the envelopes of formats[i].
        self.cades_envelopes = self.signature_formats.as_ref().and_then(|formats| {
            let at = formats.iter().position(|f| f == "C")?;
            r.body
                .pointer(&format!("/signature_formats/envelope_properties/{at}"))
                .filter(|v| v.is_array())
                .map(|v| str_list(Some(v)))
        });
        let usable = r.status == 200 && r.body.is_object();
        let detail = ok.map(|()| {
            format!(
                "specs {}, {} methods: {}",
                r.body.get("specs").and_then(Value::as_str).unwrap_or("?"),
                self.methods.len(),
                self.methods.join(", ")
            )
        });
        self.result(n::INFO, None, detail);
        if !usable {
            self.skip(n::INFO_FORMATS, None, "info failed");
            return Ok(false);
        }
        let (problems, checked) = formats::info_problems(&r.body);
        let res = if problems.is_empty() {
            Ok(format!("{checked} OID/base64 values well formed"))
        } else {
            Err(problems.join("; "))
        };
        self.result(n::INFO_FORMATS, None, res);
        Ok(true)
    }

    /// Missing and invalid bearer tokens on a protected method.
    fn token_errors(&mut self) {
        let Some(method) = PROTECTED.iter().copied().find(|m| self.advertised(m)) else {
            let why = "no method needing a bearer token is advertised";
            self.skip_all(&[n::NO_TOKEN, n::BAD_TOKEN], None, why);
            return;
        };
        let body = json!({"credentialID": "csc-conformance"});
        let sent = self.call_bad(method, Auth::None, &body);
        self.error_check(n::NO_TOKEN, None, sent, &[401], MISSING_TOKEN_CODES);
        let fake = format!("csc-conformance-invalid-{}", self.nonce);
        let sent = self.call_bad(method, Auth::Bearer(&fake), &body);
        self.error_check(n::BAD_TOKEN, None, sent, &[401], BAD_TOKEN_CODES);
    }

    fn login(&mut self) {
        if !self.advertised("auth/login") {
            let why = Self::not_advertised("auth/login");
            self.skip_all(&[n::LOGIN_MALFORMED, n::LOGIN], None, &why);
            return;
        }
        // CSC §2.1: a malformed Authorization header is 401 invalid_request.
        let sent = self.call_bad(
            "auth/login",
            Auth::Header("Basic %%%not-base64%%%"),
            &json!({}),
        );
        self.error_check(n::LOGIN_MALFORMED, None, sent, &[401], INVALID_REQUEST);

        let (user, password) = (self.cfg.user.clone(), self.cfg.password.clone());
        let res = self
            .call("auth/login", Auth::Basic(&user, &password), &json!({}))
            .and_then(|r| {
                self.expect_ok("auth/login", &r, 200)?;
                let token = r
                    .body
                    .get("access_token")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| format!("no access_token: {}", r.summary()))?;
                self.token = Some(token.to_string());
                Ok(format!(
                    "access token received, expires_in {}",
                    r.body
                        .get("expires_in")
                        .map_or("absent".to_string(), Value::to_string)
                ))
            });
        self.result(n::LOGIN, None, res);
    }

    /// `credentials/list`: the credentials under test and (if any) their listed infos.
    fn list(&mut self) -> (Vec<String>, Vec<Value>) {
        let wanted = self.cfg.credentials.clone();
        if !self.advertised("credentials/list") {
            let why = Self::not_advertised("credentials/list");
            self.skip_all(&[n::LIST, n::LIST_INFOS], None, &why);
            return (wanted, Vec::new());
        }
        let token = self.bearer();
        let mut listed = Vec::new();
        let res = self
            .call("credentials/list", Auth::Bearer(&token), &json!({}))
            .and_then(|r| {
                self.expect_ok("credentials/list", &r, 200)?;
                listed = str_list(r.body.get("credentialIDs"));
                let missing: Vec<&String> = wanted.iter().filter(|w| !listed.contains(w)).collect();
                if !missing.is_empty() {
                    return Err(format!(
                        "credentials given to the suite are not listed: {missing:?}"
                    ));
                }
                Ok(format!(
                    "{} credential(s): {}",
                    listed.len(),
                    listed.join(", ")
                ))
            });
        self.result(n::LIST, None, res);

        let mut infos = Vec::new();
        let body = json!({"credentialInfo": true, "certificates": "chain", "certInfo": true, "authInfo": true});
        let res = self
            .call("credentials/list", Auth::Bearer(&token), &body)
            .and_then(|r| {
                self.expect_ok("credentials/list", &r, 200)?;
                let ids = str_list(r.body.get("credentialIDs"));
                infos = r
                    .body
                    .get("credentialInfos")
                    .and_then(Value::as_array)
                    .cloned()
                    .ok_or("credentialInfos is missing although credentialInfo was true")?;
                let mut problems = Vec::new();
                if infos.len() != ids.len() {
                    problems.push(format!(
                        "{} credentialInfos for {} credentialIDs",
                        infos.len(),
                        ids.len()
                    ));
                }
                for (i, info) in infos.iter().enumerate() {
                    let id = info.get("credentialID").and_then(Value::as_str);
                    if !id.is_some_and(|id| ids.iter().any(|x| x == id)) {
                        problems.push(format!(
                            "credentialInfos[{i}].credentialID {id:?} is not in credentialIDs"
                        ));
                    }
                    let (p, _) = formats::credential_problems(info);
                    problems.extend(p.into_iter().map(|p| format!("credentialInfos[{i}]: {p}")));
                }
                if problems.is_empty() {
                    Ok(format!("{} credentialInfos", infos.len()))
                } else {
                    Err(problems.join("; "))
                }
            });
        self.result(n::LIST_INFOS, None, res);
        let ids = if wanted.is_empty() { listed } else { wanted };
        (ids, infos)
    }

    /// Error answers that need no credential of the user's own.
    fn service_errors(&mut self) {
        let token = self.bearer();
        let unknown = format!("csc-conformance-unknown-{}", self.nonce);
        if self.advertised("credentials/info") {
            let sent = self.call_bad("credentials/info", Auth::Bearer(&token), &json!({}));
            self.error_check(n::INFO_MISSING_ID, None, sent, &[400], INVALID_REQUEST);
            let sent = self.call_bad(
                "credentials/info",
                Auth::Bearer(&token),
                &json!({"credentialID": unknown}),
            );
            self.error_check(n::INFO_UNKNOWN_ID, None, sent, &[400], INVALID_REQUEST);
        } else {
            let why = Self::not_advertised("credentials/info");
            self.skip_all(&[n::INFO_MISSING_ID, n::INFO_UNKNOWN_ID], None, &why);
        }
        if self.advertised("credentials/authorize") {
            // No authData: these must fail on the parameters, never count as a failed attempt.
            let body = json!({"numSignatures": 1, "hashes": [b64(&[0u8; 32])],
                              "hashAlgorithmOID": HashAlg::Sha256.oid()});
            let sent = self.call_bad("credentials/authorize", Auth::Bearer(&token), &body);
            self.error_check(n::AUTHZ_MISSING_ID, None, sent, &[400], INVALID_REQUEST);
            let mut body = body;
            set(&mut body, "credentialID", json!(unknown));
            let sent = self.call_bad("credentials/authorize", Auth::Bearer(&token), &body);
            self.error_check(n::AUTHZ_UNKNOWN_ID, None, sent, &[400], INVALID_REQUEST);
        } else {
            let why = Self::not_advertised("credentials/authorize");
            self.skip_all(&[n::AUTHZ_MISSING_ID, n::AUTHZ_UNKNOWN_ID], None, &why);
        }
    }

    /// `credentials/info` and the static checks of one credential.
    fn credential(&mut self, id: &str, listed: Option<Value>) -> Cred {
        let token = self.bearer();
        let mut cred = Cred::new(id);
        let c = Some(id);
        let listed_copy = listed.clone();
        if self.advertised("credentials/info") {
            let body = json!({"credentialID": id, "certificates": "chain", "certInfo": true, "authInfo": true});
            match self.call("credentials/info", Auth::Bearer(&token), &body) {
                Ok(r) => {
                    let ok = self.expect_ok("credentials/info", &r, 200);
                    if r.status == 200 && r.body.is_object() {
                        cred.info = r.body.clone();
                    }
                    let ok = ok.map(|()| {
                        format!(
                            "SCAL {}, multisign {}, key.status {}",
                            r.body
                                .get("SCAL")
                                .and_then(Value::as_str)
                                .unwrap_or("absent (1)"),
                            r.body.get("multisign").map_or("?".into(), Value::to_string),
                            r.body
                                .pointer("/key/status")
                                .and_then(Value::as_str)
                                .unwrap_or("?")
                        )
                    });
                    self.result(n::CRED_INFO, c, ok);
                }
                Err(e) => self.result(n::CRED_INFO, c, Err(e)),
            }
            if self.report.named(n::INFO_BAD_CERTIFICATES).is_empty() {
                let body = json!({"credentialID": id, "certificates": "csc-conformance-bogus"});
                let sent = self.call_bad("credentials/info", Auth::Bearer(&token), &body);
                self.error_check(
                    n::INFO_BAD_CERTIFICATES,
                    None,
                    sent,
                    &[400],
                    INVALID_REQUEST,
                );
            }
        } else if let Some(info) = listed {
            cred.info = info;
            self.skip(
                n::CRED_INFO,
                c,
                "credentials/info is not advertised; using credentials/list's credentialInfos",
            );
        } else {
            self.skip(n::CRED_INFO, c, &Self::not_advertised("credentials/info"));
        }
        if cred.info.is_null() {
            let why = "no credential information";
            self.skip_all(&[n::CRED_FORMATS, n::CRED_CHAIN, n::CRED_KEY], c, why);
            self.skip_all(n::CERT_INFO_ROWS, c, why);
            self.list_cert_info_row(id, listed_copy.as_ref(), None);
            cred.blocked = Some(why.into());
            return cred;
        }

        let (problems, checked) = formats::credential_problems(&cred.info);
        let res = if problems.is_empty() {
            Ok(format!("{checked} OID/base64 values well formed"))
        } else {
            Err(problems.join("; "))
        };
        self.result(n::CRED_FORMATS, c, res);

        let chain = cred
            .info
            .pointer("/cert/certificates")
            .and_then(Value::as_array)
            .cloned();
        let chain_res = match chain {
            None => {
                Err("cert.certificates is missing although certificates=chain was asked".into())
            }
            Some(list) if list.is_empty() => Err("cert.certificates is empty".into()),
            Some(list) => verify::parse_certificates(&list).and_then(|certs| {
                verify::check_chain_order(&certs)?;
                let first = certs.first().ok_or("no certificate")?;
                cred.leaf = Some(verify::leaf_key(first)?);
                Ok(format!(
                    "{} certificate(s), end entity first: {}",
                    certs.len(),
                    first.tbs_certificate.subject
                ))
            }),
        };
        self.result(n::CRED_CHAIN, c, chain_res);

        let key = cred.info.get("key").cloned().unwrap_or(Value::Null);
        match &cred.leaf {
            None => self.skip(n::CRED_KEY, c, "no end-entity certificate"),
            Some(leaf) => match verify::key_matches(leaf, &key) {
                Ok(Some(d)) => self.record(n::CRED_KEY, c, Outcome::Pass, d),
                Ok(None) => self.skip(
                    n::CRED_KEY,
                    c,
                    &format!("the suite does not know {} keys", leaf.kind.describe()),
                ),
                Err(e) => self.record(n::CRED_KEY, c, Outcome::Fail, e),
            },
        }

        let leaf_cert = verify::first_certificate(&cred.info);
        self.cert_info_rows(id, &cred.info, leaf_cert.as_ref());
        self.list_cert_info_row(id, listed_copy.as_ref(), leaf_cert.as_ref());

        cred.scal2 = cred.info.get("SCAL").and_then(Value::as_str) == Some("2");
        cred.multisign = cred
            .info
            .get("multisign")
            .and_then(formats::whole)
            .unwrap_or(1);
        cred.key_algo = str_list(key.get("algo"));
        cred.blocked = self.blocker(&mut cred).err();
        cred
    }

    fn verdict(&mut self, name: &str, cred: Option<&str>, v: Verdict) {
        match v {
            Verdict::Pass(d) => self.record(name, cred, Outcome::Pass, d),
            Verdict::Fail(d) => self.record(name, cred, Outcome::Fail, d),
            Verdict::Skip(d) => self.record(name, cred, Outcome::Skip, d),
        }
    }

    /// `cert.serialNumber`, `subjectDN`, `issuerDN`, `validFrom`/`validTo` and `status`
    /// against the end-entity certificate of the same answer.
    fn cert_info_rows(&mut self, id: &str, info: &Value, leaf: Option<&x509_cert::Certificate>) {
        let cert = info.get("cert").cloned().unwrap_or(Value::Null);
        let v = certinfo::check(&cert, leaf, unix_now());
        let c = Some(id);
        self.verdict(n::CERT_SERIAL, c, v.serial);
        self.verdict(n::CERT_SUBJECT, c, v.subject);
        self.verdict(n::CERT_ISSUER, c, v.issuer);
        self.verdict(n::CERT_VALIDITY, c, v.validity);
        self.verdict(n::CERT_STATUS, c, v.status);
    }

    /// The same comparisons on the credential's entry of `credentials/list`'s
    /// `credentialInfos`, against its own end-entity certificate (else the one of
    /// `credentials/info`).
    fn list_cert_info_row(
        &mut self,
        id: &str,
        listed: Option<&Value>,
        info_leaf: Option<&x509_cert::Certificate>,
    ) {
        let c = Some(id);
        let Some(listed) = listed else {
            let why = "credentials/list returned no credentialInfos entry for the credential";
            self.skip(n::LIST_CERT_INFO, c, why);
            return;
        };
        let own = verify::first_certificate(listed);
        let (leaf, whose) = match (&own, info_leaf) {
            (Some(l), _) => (Some(l), "its own cert.certificates"),
            (None, Some(l)) => (Some(l), "credentials/info's certificate"),
            (None, None) => (None, "no certificate"),
        };
        let cert = listed.get("cert").cloned().unwrap_or(Value::Null);
        let v = match certinfo::check(&cert, leaf, unix_now()).combined() {
            Verdict::Pass(d) => Verdict::Pass(format!("{d} (compared with {whose})")),
            other => other,
        };
        self.verdict(n::LIST_CERT_INFO, c, v);
    }

    /// Whether (and how) the suite can authorize this credential.
    fn blocker(&self, cred: &mut Cred) -> Result<(), String> {
        for m in ["credentials/authorize", "signatures/signHash"] {
            if !self.advertised(m) {
                return Err(Self::not_advertised(m));
            }
        }
        let status = cred.info.pointer("/key/status").and_then(Value::as_str);
        if status != Some("enabled") {
            return Err(format!("key.status is {}", status.unwrap_or("absent")));
        }
        let mode = cred.info.pointer("/auth/mode").and_then(Value::as_str);
        if mode.is_some_and(|m| m != "explicit") {
            return Err(format!(
                "auth.mode {} needs OAuth 2.0, which the suite does not do",
                mode.unwrap_or_default()
            ));
        }
        let leaf = cred
            .leaf
            .as_ref()
            .ok_or("no usable end-entity certificate")?;
        let algos: Vec<&str> = cred.key_algo.iter().map(String::as_str).collect();
        let (hash, plans) = verify::plans_for(&leaf.kind, &algos).ok_or_else(|| {
            format!(
                "no signAlgo in key.algo {algos:?} that the suite can verify for a {} key",
                leaf.kind.describe()
            )
        })?;
        cred.hash = hash;
        cred.plans = plans;
        cred.factors = factors(&cred.info);
        if cred.factors.iter().any(|(_, f)| *f == Factor::OnlineOtp) && !self.otp.has_command() {
            return Err("the credential uses an online OTP; pass --otp-command to fetch it".into());
        }
        Ok(())
    }

    // ----- authorizations -----

    /// Each authorization costs a fresh OTP, so: the wrong-PIN check on the last credential,
    /// the SAD lifecycle (extendTransaction, expiry) on the first, one signing SAD on each;
    /// run in rounds so credentials share the waits for the next TOTP step.
    fn authorizations(&mut self, creds: &mut [Cred]) {
        let ready: Vec<usize> = creds
            .iter()
            .enumerate()
            .filter(|(_, c)| c.blocked.is_none())
            .map(|(i, _)| i)
            .collect();
        for cred in creds.iter().filter(|c| c.blocked.is_some()) {
            let why = cred.blocked.clone().unwrap_or_default();
            let c = Some(cred.id.as_str());
            self.skip(n::AUTHZ, c, &why);
            self.skip_all(n::MAIN_TASK, c, &why);
        }
        if ready.is_empty() {
            let why = if creds.is_empty() {
                "no credential to test"
            } else {
                "no credential the suite can authorize"
            };
            self.skip_all(&[n::AUTHZ_WRONG_PIN, n::AUTHZ_WRONG_OTP], None, why);
            self.skip_all(n::LIFECYCLE_TASK, None, why);
            let doc_why = self.doc_unsupported().unwrap_or_else(|| why.to_string());
            self.skip_all(n::DOC_TASK, None, &doc_why);
            let why = self.async_unsupported().unwrap_or_else(|| why.to_string());
            self.skip_all(n::ASYNC_TASK, None, &why);
            return;
        }
        let first = ready.first().copied().unwrap_or(0);
        // The wrong PIN and wrong OTP go to the last credential that has a PIN or a time-based
        // OTP (two deliberate failures, well under any lockout threshold).
        let has = |i: usize, f: Factor| {
            creds
                .get(i)
                .is_some_and(|c| c.factors.iter().any(|(_, x)| *x == f))
        };
        let wrong_target = ready
            .iter()
            .rev()
            .copied()
            .find(|&i| has(i, Factor::Pin) || has(i, Factor::OfflineOtp));
        if wrong_target.is_none() {
            let why = "no credential has a PIN or time-based OTP auth object";
            self.skip_all(&[n::AUTHZ_WRONG_PIN, n::AUTHZ_WRONG_OTP], None, why);
        }
        // For the another-credential's-SAD check: each credential's neighbour in `ready`.
        for (k, &i) in ready.iter().enumerate() {
            let j = ready.get((k + 1) % ready.len()).copied().unwrap_or(i);
            let other = creds
                .get(j)
                .filter(|_| j != i)
                .and_then(|o| o.plans.first().map(|p| (o.id.clone(), *p, o.hash)));
            if let Some(c) = creds.get_mut(i) {
                c.other = other;
            }
        }
        // One credential: [WrongAuth, Main, Lifecycle]. Several: the first gets [Main,
        // Lifecycle], the wrong-auth target [WrongAuth, Main], the others [Main] — at most two
        // TOTP steps each.
        let mut tasks: Vec<(usize, Vec<Task>)> = Vec::new();
        for &i in &ready {
            let mut t = Vec::new();
            if Some(i) == wrong_target {
                t.push(Task::WrongPin);
            }
            t.push(Task::Main);
            if i == first {
                t.push(Task::Lifecycle);
            }
            tasks.push((i, t));
        }
        // The asynchronous call has an authorization of its own, on one credential: one with
        // the fewest tasks (the last of those), so that it adds at most one TOTP step.
        match self.async_unsupported() {
            Some(why) => self.skip_all(n::ASYNC_TASK, None, &why),
            None => {
                let fewest = tasks.iter().map(|(_, t)| t.len()).min().unwrap_or(0);
                if let Some((_, t)) = tasks.iter_mut().rev().find(|(_, t)| t.len() == fewest) {
                    t.push(Task::Async);
                }
            }
        }
        // signDoc needs no authorization of its own: the main SAD of one credential (of those
        // whose multisign allows the most signDoc checks, the last) authorizes one hash more
        // per signDoc signature.
        match self.doc_unsupported() {
            Some(why) => self.skip_all(n::DOC_TASK, None, &why),
            None => {
                let target = ready
                    .iter()
                    .copied()
                    .filter_map(|i| creds.get(i).map(|c| (i, c)))
                    .filter(|(_, c)| c.multisign >= DOC_MULTISIGN)
                    .map(|(i, c)| (i, self.doc_offer(c)))
                    .max_by_key(|(_, (plan, _))| plan.signatures());
                match target {
                    Some((i, (plan, skipped))) => {
                        if let Some(cred) = creds.get_mut(i) {
                            cred.doc = Some(plan);
                            for (row, why) in skipped {
                                self.skip(row, Some(&cred.id), &why);
                            }
                        }
                    }
                    None => self.skip_all(
                        n::DOC_TASK,
                        None,
                        &format!(
                            "no credential has multisign {DOC_MULTISIGN} or more: its SAD (two \
                             signHash signatures) has none to spare for signDoc"
                        ),
                    ),
                }
            }
        }
        let rounds = tasks.iter().map(|(_, t)| t.len()).max().unwrap_or(0);
        for round in 0..rounds {
            for (i, list) in &tasks {
                let (Some(task), Some(cred)) = (list.get(round), creds.get_mut(*i)) else {
                    continue;
                };
                match task {
                    Task::WrongPin => self.wrong_pin_task(cred),
                    Task::Main => self.main_task(cred),
                    Task::Lifecycle => self.lifecycle_task(cred),
                    Task::Async => self.async_task(cred),
                }
            }
        }
    }

    /// Trigger an online OTP for `object`; returns the in-band challenge, if any.
    fn challenge(&mut self, cred: &mut Cred, object: &str) -> Result<Option<String>, String> {
        let token = self.bearer();
        let c = cred.id.clone();
        let res = if self.advertised("credentials/getChallenge") {
            self.call(
                "credentials/getChallenge",
                Auth::Bearer(&token),
                &json!({"credentialID": c, "authObjectID": object}),
            )
            .and_then(|r| match r.status {
                204 => Ok(None),
                200 => r
                    .body
                    .get("challenge")
                    .and_then(Value::as_str)
                    .map(|s| Some(s.to_string()))
                    .ok_or_else(|| format!("HTTP 200 without a challenge: {}", r.summary())),
                _ => Err(format!("expected HTTP 200 or 204, got {}", r.summary())),
            })
        } else if self.advertised("credentials/sendOTP") {
            self.call(
                "credentials/sendOTP",
                Auth::Bearer(&token),
                &json!({"credentialID": c}),
            )
            .and_then(|r| match r.status {
                200 | 204 => Ok(None),
                _ => Err(format!("expected HTTP 204, got {}", r.summary())),
            })
        } else {
            Err("online OTP, but neither credentials/getChallenge nor credentials/sendOTP is advertised".into())
        };
        if !cred.challenge_recorded || res.is_err() {
            cred.challenge_recorded = true;
            let row = res
                .as_ref()
                .map(|ch| match ch {
                    Some(_) => "HTTP 200 with an in-band challenge".to_string(),
                    None => "challenge sent out of band".to_string(),
                })
                .map_err(Clone::clone);
            self.result(n::CHALLENGE, Some(&c), row);
        }
        res
    }

    /// `authData` for the credential's auth objects.
    fn auth_data(
        &mut self,
        cred: &mut Cred,
        pin: &str,
        wrong_otp: bool,
    ) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for (id, factor) in cred.factors.clone() {
            let value = match factor {
                Factor::Pin => Some(pin.to_string()),
                // Not a code of any step near now, and the real code stays unused.
                Factor::OfflineOtp if wrong_otp => Some(self.otp.wrong_offline_code(&cred.id)?),
                Factor::OfflineOtp => Some(self.otp.offline_code(&cred.id)?),
                Factor::OnlineOtp => {
                    let challenge = self.challenge(cred, &id)?;
                    Some(self.otp.online_code(&cred.id, challenge.as_deref())?)
                }
                Factor::NoValue => None,
            };
            out.push(match value {
                Some(v) => json!({"id": id, "value": v}),
                None => json!({"id": id}),
            });
        }
        Ok(out)
    }

    /// `credentials/authorize` for `hashes` with `pin` and a fresh OTP.
    fn authorize(
        &mut self,
        cred: &mut Cred,
        hashes: &[Vec<u8>],
        pin: &str,
    ) -> Result<Resp, String> {
        self.authorize_with(cred, hashes, pin, false)
    }

    /// `credentials/authorize`; `wrong_otp`: send a code that is not valid now.
    fn authorize_with(
        &mut self,
        cred: &mut Cred,
        hashes: &[Vec<u8>],
        pin: &str,
        wrong_otp: bool,
    ) -> Result<Resp, String> {
        let auth_data = self.auth_data(cred, pin, wrong_otp)?;
        let body = json!({
            "credentialID": cred.id,
            "numSignatures": hashes.len(),
            "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            "hashAlgorithmOID": cred.hash.oid(),
            "authData": auth_data,
            "description": "csc-conformance",
        });
        let token = self.bearer();
        self.call("credentials/authorize", Auth::Bearer(&token), &body)
    }

    /// The SAD and expiresIn of an authorize or extendTransaction answer.
    fn sad_of(&mut self, method: &str, r: &Resp) -> Result<(String, Option<u64>), String> {
        if r.status == 202 {
            return Err(format!(
                "authorization pending (HTTP 202): asynchronous authorization is not supported by the suite: {}",
                r.summary()
            ));
        }
        self.expect_ok(method, r, 200)
            .map_err(|e| match r.error_code() {
                Some("invalid_authentication_data" | "invalid_pin" | "invalid_otp") => {
                    format!("{e} — are --pin and the OTP source right?")
                }
                _ => e,
            })?;
        let sad = r
            .body
            .get("SAD")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("no SAD: {}", r.summary()))?;
        Ok((
            sad.to_string(),
            r.body.get("expiresIn").and_then(formats::whole),
        ))
    }

    /// A digest that belongs to this run only.
    fn hash(&self, cred: &Cred, label: &str) -> Vec<u8> {
        cred.hash
            .digest(format!("csc-conformance {} {} {label}", self.nonce, cred.id).as_bytes())
    }

    fn sign_body(cred: &Cred, sad: &str, plan: &SignPlan, hashes: &[String]) -> Value {
        Self::sign_body_for(&cred.id, sad, plan, hashes)
    }

    fn sign_body_for(id: &str, sad: &str, plan: &SignPlan, hashes: &[String]) -> Value {
        let mut body = json!({
            "credentialID": id,
            "SAD": sad,
            "hashes": hashes,
            "signAlgo": plan.sign_algo,
        });
        if plan.send_hash_oid {
            set(&mut body, "hashAlgorithmOID", json!(plan.hash.oid()));
        }
        if let Ok(Some(params)) = plan.params_b64() {
            set(&mut body, "signAlgoParams", json!(params));
        }
        body
    }

    /// signHash over `digest` and verify the one signature against the certificate. A failure
    /// says how old the SAD was (a slow client may simply have let it expire).
    fn sign_and_verify(
        &mut self,
        cred: &Cred,
        sad: (&str, Instant, Option<u64>),
        plan: &SignPlan,
        digest: &[u8],
    ) -> Result<String, String> {
        let (sad, issued, ttl) = sad;
        self.sign_and_verify_inner(cred, sad, plan, digest)
            .map_err(|e| {
                format!(
                    "{e} [{:.1} s after the SAD was issued, expiresIn {}]",
                    issued.elapsed().as_secs_f64(),
                    ttl.map_or("absent".into(), |t| format!("{t} s"))
                )
            })
    }

    fn sign_and_verify_inner(
        &mut self,
        cred: &Cred,
        sad: &str,
        plan: &SignPlan,
        digest: &[u8],
    ) -> Result<String, String> {
        let body = Self::sign_body(cred, sad, plan, &[b64(digest)]);
        let token = self.bearer();
        let r = self.call("signatures/signHash", Auth::Bearer(&token), &body)?;
        self.expect_ok("signatures/signHash", &r, 200)?;
        Self::verify_answer(cred, plan, digest, &r)
    }

    /// The one signature of a signHash answer (given at once, or polled for an asynchronous
    /// call), verified against the credential's certificate.
    fn verify_answer(
        cred: &Cred,
        plan: &SignPlan,
        digest: &[u8],
        r: &Resp,
    ) -> Result<String, String> {
        let sigs = r
            .body
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no signatures array: {}", r.summary()))?;
        if sigs.len() != 1 {
            return Err(format!("{} signatures for 1 hash", sigs.len()));
        }
        let sig = sigs
            .first()
            .and_then(Value::as_str)
            .ok_or("signatures[0] is not a string")?;
        let sig = std_base64(sig).map_err(|e| format!("signatures[0]: {e}"))?;
        let leaf = cred.leaf.as_ref().ok_or("no certificate to verify with")?;
        verify::verify(leaf, plan, digest, &sig)?;
        Ok(format!(
            "{}: {}-byte signature verifies against the certificate",
            plan.describe(),
            sig.len()
        ))
    }

    /// A wrong PIN (with a valid OTP), then the right PIN with a wrong OTP: both refused.
    fn wrong_pin_task(&mut self, cred: &mut Cred) {
        let c = cred.id.clone();
        let has = |f: Factor| cred.factors.iter().any(|(_, x)| *x == f);
        let (pin_object, otp_object) = (has(Factor::Pin), has(Factor::OfflineOtp));
        if pin_object {
            let h = self.hash(cred, "wrong-pin");
            let pin = wrong_pin(&self.cfg.pin);
            let res = self.authorize(cred, &[h], &pin).and_then(|r| {
                if r.status == 200 {
                    return Err(format!("a wrong PIN was accepted: {}", r.summary()));
                }
                self.expect_error(&r, &[400], WRONG_PIN_CODES)
            });
            self.result(n::AUTHZ_WRONG_PIN, Some(&c), res);
        } else {
            self.skip(n::AUTHZ_WRONG_PIN, Some(&c), "no auth object is a PIN");
        }
        if otp_object {
            let h = self.hash(cred, "wrong-otp");
            let pin = self.cfg.pin.clone();
            let res = self.authorize_with(cred, &[h], &pin, true).and_then(|r| {
                if r.status == 200 {
                    return Err(format!("a wrong OTP was accepted: {}", r.summary()));
                }
                self.expect_error(&r, &[400], WRONG_OTP_CODES)
            });
            self.result(n::AUTHZ_WRONG_OTP, Some(&c), res);
        } else {
            self.skip(
                n::AUTHZ_WRONG_OTP,
                Some(&c),
                "no time-based OTP auth object (online OTPs are not tested with a wrong code)",
            );
        }
    }

    fn main_task(&mut self, cred: &mut Cred) {
        let c = cred.id.clone();
        let cid = Some(c.as_str());
        let count = if cred.multisign >= 2 { 2 } else { 1 };
        let (h1, h2, h3) = (
            self.hash(cred, "h1"),
            self.hash(cred, "h2"),
            self.hash(cred, "h3"),
        );
        // The signDoc credential's SAD authorizes one hash more per signDoc signature: the
        // digests signed detached (B-B, B-T) and the digest of the document signed attached
        // (after the two signHash signatures, before the exhaustion check).
        let doc = cred.doc.map(|plan| DocInputs {
            b: self.hash(cred, "signDoc"),
            t: plan.t.then(|| self.hash(cred, "signDoc B-T")),
            attached: plan.attached.map(|p| (p, self.document(cred))),
        });
        let mut bound: Vec<Vec<u8>> = [h1.clone(), h2.clone()].into_iter().take(count).collect();
        if let Some(d) = &doc {
            bound.push(d.b.clone());
            bound.extend(d.t.clone());
            bound.extend(
                d.attached
                    .as_ref()
                    .map(|(p, document)| p.hash.digest(document)),
            );
        }
        let doc_signatures = cred.doc.map_or(0, |d| d.signatures());
        let pin = self.cfg.pin.clone();
        let granted = self
            .authorize(cred, &bound, &pin)
            .and_then(|r| self.sad_of("credentials/authorize", &r));
        let sad = match granted {
            Ok((sad, ttl)) => {
                cred.sad_ttl = ttl;
                self.record(
                    n::AUTHZ,
                    cid,
                    Outcome::Pass,
                    format!(
                        "SAD for {} hash(es) ({}){}, expiresIn {}",
                        bound.len(),
                        cred.hash.name(),
                        if doc_signatures > 0 {
                            format!(", {doc_signatures} for signDoc")
                        } else {
                            String::new()
                        },
                        ttl.map_or("absent".into(), |t| format!("{t} s"))
                    ),
                );
                sad
            }
            Err(e) => {
                cred.authorize_failed = true;
                self.record(n::AUTHZ, cid, Outcome::Fail, e);
                let why = "no SAD: credentials/authorize failed";
                self.skip_all(n::MAIN_TASK, cid, why);
                if let Some(plan) = cred.doc {
                    self.skip_all(&plan.rows(), cid, why);
                }
                return;
            }
        };
        let (issued, ttl) = (Instant::now(), cred.sad_ttl);
        let Some(p1) = cred.plans.first().copied() else {
            return;
        };
        let p2 = cred.plans.get(1).copied().unwrap_or(p1);
        let token = self.bearer();
        let auth = Auth::Bearer(&token);
        let base = Self::sign_body(cred, &sad, &p1, &[b64(&h1)]);
        let with = |key: &str, value: Option<Value>| {
            let mut b = base.clone();
            if let Some(obj) = b.as_object_mut() {
                match value {
                    Some(v) => {
                        obj.insert(key.to_string(), v);
                    }
                    None => {
                        obj.remove(key);
                    }
                }
            }
            b
        };
        let unknown = format!("csc-conformance-unknown-{}", self.nonce);
        let short = b64(&vec![
            0x5a;
            cred.hash.digest_len().saturating_sub(12).max(1)
        ]);
        let other_algo = {
            let algos: Vec<&str> = cred.key_algo.iter().map(String::as_str).collect();
            verify::unsupported_sign_algo(&algos)
        };
        let bad_algo = {
            let mut b = with("signAlgo", Some(json!(other_algo)));
            if let Some(obj) = b.as_object_mut() {
                obj.insert("hashAlgorithmOID".into(), json!(cred.hash.oid()));
                obj.remove("signAlgoParams");
            }
            b
        };
        // A digest shorter than hashAlgorithmOID says.
        let mut bad_length = with("hashes", Some(json!([short])));
        set(&mut bad_length, "hashAlgorithmOID", json!(cred.hash.oid()));
        let fake_sad = format!("csc-conformance-made-up-SAD-{}", self.nonce);
        let other_sad = cred.other.clone().map(|(id, plan, hash)| {
            let digest = if hash == cred.hash {
                h1.clone()
            } else {
                hash.digest(format!("csc-conformance {} {id} other", self.nonce).as_bytes())
            };
            Self::sign_body_for(&id, &sad, &plan, &[b64(&digest)])
        });
        let mut cases: Vec<(&str, Value)> = vec![
            (n::SIGN_MISSING_ID, with("credentialID", None)),
            (
                n::SIGN_UNKNOWN_ID,
                with("credentialID", Some(json!(unknown))),
            ),
            (
                n::SIGN_BAD_BASE64,
                with("hashes", Some(json!(["%%%not-base64%%%"]))),
            ),
            (n::SIGN_BAD_ALGO, bad_algo),
            (n::SIGN_FAKE_SAD, with("SAD", Some(json!(fake_sad)))),
        ];
        if !cred.scal2 {
            cases.insert(3, (n::SIGN_BAD_LENGTH, bad_length));
        }
        for (name, body) in cases {
            let sent = self.call_bad("signatures/signHash", auth, &body);
            self.error_check(name, cid, sent, &[400], INVALID_REQUEST);
        }
        if cred.scal2 {
            // Without authData, like the other parameter checks: no failed attempt is counted.
            let body = json!({"credentialID": c, "numSignatures": 1, "hashes": [short],
                              "hashAlgorithmOID": cred.hash.oid()});
            let res = self
                .call_bad("credentials/authorize", auth, &body)
                .and_then(|r| self.expect_error(&r, &[400], INVALID_REQUEST))
                .map(|d| format!("SCAL 2, a short digest to credentials/authorize: {d}"));
            self.result(n::SIGN_BAD_LENGTH, cid, res);
        }
        // This credential's live SAD with another credential's ID (§4.1: the SAD is bound to
        // its credential).
        match other_sad {
            Some(body) => {
                let sent = self.call_bad("signatures/signHash", auth, &body);
                self.error_check(n::SIGN_OTHER_SAD, cid, sent, &[400], INVALID_REQUEST);
            }
            None => self.skip(
                n::SIGN_OTHER_SAD,
                cid,
                "one credential under test: no other credential to present the SAD for",
            ),
        }
        if cred.scal2 {
            let body = Self::sign_body(cred, &sad, &p1, &[b64(&h3)]);
            let sent = self.call("signatures/signHash", auth, &body);
            self.error_check(n::SCAL2_UNBOUND, cid, sent, &[400], INVALID_REQUEST);
        } else {
            self.skip(
                n::SCAL2_UNBOUND,
                cid,
                "the credential is SCAL 1 (SADs are not bound to hashes)",
            );
        }
        let res = self.sign_and_verify(cred, (&sad, issued, ttl), &p1, &h1);
        self.result(n::SIGN_FIRST, cid, res);
        if count == 2 {
            let res = self.sign_and_verify(cred, (&sad, issued, ttl), &p2, &h2);
            self.result(n::SIGN_SECOND, cid, res);
        } else {
            self.skip(
                n::SIGN_SECOND,
                cid,
                "multisign is 1: the SAD covers one hash",
            );
        }
        // signDoc spends the SAD's last signatures (the document digests).
        let doc_signed = match &doc {
            Some(d) => self.doc_checks(cred, (&sad, issued, ttl), &p1, d, &h3),
            None => true,
        };
        // The budget (numSignatures) is spent: one more signature must be refused. SCAL 1: a
        // hash never signed, so the budget alone is tested. SCAL 2: only bound hashes are
        // signable, so a bound hash is signed again.
        if !doc_signed && !cred.scal2 {
            let why = "a signDoc call was not answered 200: the SAD may have a signature left \
                       (SCAL 1)";
            self.skip(n::SAD_EXHAUSTED, cid, why);
            return;
        }
        let (again, what) = if cred.scal2 {
            (
                if count == 2 { &h2 } else { &h1 },
                "SCAL 2: a bound hash sent again (refused for the spent budget or the reuse)",
            )
        } else {
            (&h3, "a fresh hash after numSignatures were spent")
        };
        let body = Self::sign_body(cred, &sad, &p1, &[b64(again)]);
        let res = self
            .call("signatures/signHash", auth, &body)
            .and_then(|r| self.expect_error(&r, &[400], INVALID_REQUEST))
            .map(|d| format!("{what}: {d}"));
        self.result(n::SAD_EXHAUSTED, cid, res);
    }

    /// A SAD for `hashes` with the configured PIN, recorded as `row`: PASS with its lifetime,
    /// or FAIL, the credential marked (no later authorization of it) and `dependents` skipped.
    fn authorize_row(
        &mut self,
        cred: &mut Cred,
        hashes: &[Vec<u8>],
        row: &str,
        dependents: &[&str],
    ) -> Option<(String, Option<u64>)> {
        let c = cred.id.clone();
        let cid = Some(c.as_str());
        let pin = self.cfg.pin.clone();
        let granted = self
            .authorize(cred, hashes, &pin)
            .and_then(|r| self.sad_of("credentials/authorize", &r));
        match granted {
            Ok((sad, ttl)) => {
                let d = format!(
                    "SAD for {} hash(es), expiresIn {}",
                    hashes.len(),
                    ttl.map_or("absent".into(), |t| format!("{t} s"))
                );
                self.record(row, cid, Outcome::Pass, d);
                Some((sad, ttl))
            }
            Err(e) => {
                cred.authorize_failed = true;
                self.record(row, cid, Outcome::Fail, e);
                self.skip_all(dependents, cid, "no SAD: credentials/authorize failed");
                None
            }
        }
    }

    fn lifecycle_task(&mut self, cred: &mut Cred) {
        let c = cred.id.clone();
        let cid = Some(c.as_str());
        let extend = self.advertised("credentials/extendTransaction");
        let max_wait = self.cfg.max_wait.as_secs();
        let too_long = |ttl: u64| ttl.saturating_add(1) > max_wait;
        let expiry_skip =
            |ttl: u64| format!("expiresIn {ttl} s + 1 s exceeds --max-wait-secs {max_wait}");
        if cred.authorize_failed {
            let why = "credentials/authorize failed earlier; not retried (lockout counters)";
            self.skip_all(n::LIFECYCLE_TASK, cid, why);
            return;
        }
        let ttl_known = cred.sad_ttl.unwrap_or(DEFAULT_SAD_TTL);
        if !extend && too_long(ttl_known) {
            self.skip(
                n::AUTHZ_AGAIN,
                cid,
                "nothing to do: no extendTransaction, no expiry check",
            );
            let why = Self::not_advertised("credentials/extendTransaction");
            self.skip_all(&[n::EXTEND, n::SIGN_EXTENDED], cid, &why);
            self.skip(n::SAD_EXPIRY, cid, &expiry_skip(ttl_known));
            return;
        }
        let count = if cred.multisign >= 2 { 2 } else { 1 };
        let hashes: Vec<Vec<u8>> = ["h4", "h5"]
            .into_iter()
            .take(count)
            .map(|l| self.hash(cred, l))
            .collect();
        let Some((mut sad, mut ttl)) = self.authorize_row(
            cred,
            &hashes,
            n::AUTHZ_AGAIN,
            &[n::EXTEND, n::SIGN_EXTENDED, n::SAD_EXPIRY],
        ) else {
            return;
        };
        let mut issued = Instant::now();
        let Some(p1) = cred.plans.first().copied() else {
            return;
        };
        let token = self.bearer();
        if extend {
            let mut body = json!({"credentialID": c, "SAD": sad});
            if cred.scal2 {
                set(
                    &mut body,
                    "hashes",
                    json!(hashes.iter().map(|h| b64(h)).collect::<Vec<_>>()),
                );
                set(&mut body, "hashAlgorithmOID", json!(cred.hash.oid()));
            }
            let res = self
                .call("credentials/extendTransaction", Auth::Bearer(&token), &body)
                .and_then(|r| self.sad_of("credentials/extendTransaction", &r));
            match res {
                Ok((new_sad, new_ttl)) => {
                    let same = new_sad == sad;
                    issued = Instant::now();
                    sad = new_sad;
                    ttl = new_ttl;
                    self.record(
                        n::EXTEND,
                        cid,
                        Outcome::Pass,
                        format!(
                            "{} SAD, expiresIn {}",
                            if same { "same" } else { "new" },
                            ttl.map_or("absent".into(), |t| format!("{t} s"))
                        ),
                    );
                    if let (2, Some(h4)) = (count, hashes.first()) {
                        let plan = cred.plans.get(2).copied().unwrap_or(p1);
                        let res = self.sign_and_verify(cred, (&sad, issued, ttl), &plan, h4);
                        self.result(n::SIGN_EXTENDED, cid, res);
                    } else {
                        self.skip(
                            n::SIGN_EXTENDED,
                            cid,
                            "multisign is 1: the one signature is kept for the expiry check",
                        );
                    }
                }
                Err(e) => {
                    self.record(n::EXTEND, cid, Outcome::Fail, e);
                    self.skip(n::SIGN_EXTENDED, cid, "extendTransaction failed");
                }
            }
        } else {
            let why = Self::not_advertised("credentials/extendTransaction");
            self.skip_all(&[n::EXTEND, n::SIGN_EXTENDED], cid, &why);
        }

        let ttl = ttl.unwrap_or(DEFAULT_SAD_TTL);
        if too_long(ttl) {
            self.skip(n::SAD_EXPIRY, cid, &expiry_skip(ttl));
            return;
        }
        let Some(last) = hashes.last() else {
            return;
        };
        let until = issued + Duration::from_secs(ttl + 1);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        let body = Self::sign_body(cred, &sad, &p1, &[b64(last)]);
        let sent = self.call("signatures/signHash", Auth::Bearer(&token), &body);
        let res = sent
            .and_then(|r| self.expect_error(&r, &[400], INVALID_REQUEST))
            .map(|d| format!("waited {} s: {d}", ttl + 1));
        self.result(n::SAD_EXPIRY, cid, res);
    }

    // ----- signDoc -----

    /// Why the signDoc checks cannot run (None: they can): the method is not advertised, or
    /// `info` says the server builds no CAdES, or no baseline B level.
    fn doc_unsupported(&self) -> Option<String> {
        if !self.advertised("signatures/signDoc") {
            return Some(Self::not_advertised("signatures/signDoc"));
        }
        if let Some(formats) = &self.signature_formats
            && !formats.iter().any(|f| f == "C")
        {
            return Some(format!(
                "info.signature_formats.formats {formats:?} does not offer C (CAdES)"
            ));
        }
        if let Some(levels) = &self.conformance_levels
            && !levels.is_empty()
            && !levels.iter().any(|l| l.eq_ignore_ascii_case("Ades-B-B"))
        {
            return Some(format!(
                "info.conformance_levels {levels:?} does not offer Ades-B-B"
            ));
        }
        None
    }

    /// Why the CAdES-B-T check cannot run (None: it can): `info.conformance_levels` lists
    /// levels, Ades-B-T not among them.
    fn doc_t_unsupported(&self) -> Option<String> {
        match &self.conformance_levels {
            Some(levels)
                if !levels.is_empty()
                    && !levels.iter().any(|l| l.eq_ignore_ascii_case("Ades-B-T")) =>
            {
                Some(format!(
                    "info.conformance_levels {levels:?} does not offer Ades-B-T"
                ))
            }
            _ => None,
        }
    }

    /// Why the attached check cannot run (None: it can): `info.signature_formats` gives the
    /// envelope properties of C, Attached not among them. (An attached CAdES can only be made
    /// of a whole document, so a server that offers it must take `documents`.)
    fn doc_attached_unsupported(&self) -> Option<String> {
        match &self.cades_envelopes {
            Some(envelopes) if !envelopes.iter().any(|e| e == "Attached") => Some(format!(
                "info.signature_formats.envelope_properties for C is {envelopes:?}: no Attached"
            )),
            _ => None,
        }
    }

    /// The signDoc checks `cred`'s main SAD could pay for beyond the CAdES-B-B (its multisign
    /// less the two signHash signatures and the B-B), B-T first, and the rows left out, with
    /// why.
    fn doc_offer(&self, cred: &Cred) -> (DocPlan, Vec<(&'static str, String)>) {
        let mut spare = cred.multisign.saturating_sub(DOC_MULTISIGN);
        let mut plan = DocPlan::default();
        let mut skipped = Vec::new();
        let no_spare = |plan: &DocPlan| {
            format!(
                "multisign {}: the SAD (two signHash signatures, {} signDoc) has no signature \
                 to spare for it",
                cred.multisign,
                plan.signatures()
            )
        };
        match self.doc_t_unsupported() {
            Some(why) => skipped.push((n::DOC_SIGN_T, why)),
            None if spare > 0 => {
                plan.t = true;
                spare -= 1;
            }
            None => skipped.push((n::DOC_SIGN_T, no_spare(&plan))),
        }
        // A `documents` entry has no hashAlgorithmOID: the signAlgo must imply the digest.
        let implied = cred.plans.iter().find(|p| !p.send_hash_oid).copied();
        match (self.doc_attached_unsupported(), implied) {
            (Some(why), _) => skipped.push((n::DOC_ATTACHED, why)),
            (None, None) => skipped.push((
                n::DOC_ATTACHED,
                "no signAlgo of key.algo the suite signs with implies the digest algorithm \
                 (a documents entry carries no hashAlgorithmOID)"
                    .into(),
            )),
            (None, Some(p)) if spare > 0 => plan.attached = Some(p),
            (None, Some(_)) => skipped.push((n::DOC_ATTACHED, no_spare(&plan))),
        }
        (plan, skipped)
    }

    /// The document the suite signs attached: text that belongs to this run only.
    fn document(&self, cred: &Cred) -> Vec<u8> {
        format!(
            "csc-conformance {} {}: a whole document, signed attached\n",
            self.nonce, cred.id
        )
        .into_bytes()
    }

    /// A signDoc body: one detached CAdES at `level` over `digest` (`documentDigests`).
    fn doc_body(cred: &Cred, sad: &str, plan: &SignPlan, digest: &[u8], level: &str) -> Value {
        let mut item = json!({
            "hashes": [b64(digest)],
            "hashAlgorithmOID": cred.hash.oid(),
            "signAlgo": plan.sign_algo,
            "signature_format": "C",
            "conformance_level": level,
            "signed_envelope_property": "Detached",
        });
        if let Ok(Some(params)) = plan.params_b64() {
            set(&mut item, "signAlgoParams", json!(params));
        }
        json!({"credentialID": cred.id, "SAD": sad, "documentDigests": [item]})
    }

    /// A signDoc body: one attached CAdES-B-B of `document` (`documents`).
    fn doc_attached_body(cred: &Cred, sad: &str, plan: &SignPlan, document: &[u8]) -> Value {
        let mut item = json!({
            "document": b64(document),
            "signAlgo": plan.sign_algo,
            "signature_format": "C",
            "conformance_level": "Ades-B-B",
            "signed_envelope_property": "Attached",
        });
        if let Ok(Some(params)) = plan.params_b64() {
            set(&mut item, "signAlgoParams", json!(params));
        }
        json!({"credentialID": cred.id, "SAD": sad, "documents": [item]})
    }

    /// The one signature of a signDoc answer — a `SignatureObject` when detached, a
    /// `DocumentWithSignature` when attached, nothing in the other array — checked as
    /// `expect` says, made with the credential's key and certificate.
    fn verify_doc_answer(
        &mut self,
        cred: &Cred,
        plan: &SignPlan,
        expect: DocExpect<'_>,
        r: &Resp,
    ) -> Result<String, String> {
        self.expect_ok("signatures/signDoc", r, 200)?;
        let (field, other, kind) = match expect {
            DocExpect::Detached { .. } => (
                "SignatureObject",
                "DocumentWithSignature",
                "a detached signature over a digest",
            ),
            DocExpect::Attached { .. } => (
                "DocumentWithSignature",
                "SignatureObject",
                "an attached signature of a document",
            ),
        };
        let objects = r
            .body
            .get(field)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no {field} array: {}", r.summary()))?;
        let [object] = objects.as_slice() else {
            return Err(format!("{} {field}s for {kind}", objects.len()));
        };
        let others = r
            .body
            .get(other)
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if others != 0 {
            return Err(format!("{others} {other} for {kind}"));
        }
        let cms = object
            .as_str()
            .ok_or_else(|| format!("{field}[0] is not a string"))
            .and_then(|t| std_base64(t).map_err(|_| format!("{field}[0] is not base64")))?;
        let leaf = cred.leaf.as_ref().ok_or("no certificate to verify with")?;
        let cert = cred
            .info
            .pointer("/cert/certificates/0")
            .and_then(Value::as_str)
            .and_then(|t| std_base64(t).ok())
            .ok_or("no end-entity certificate in credentials/info")?;
        let d = match expect {
            DocExpect::Detached { digest, t: false } => {
                crate::cades::verify_detached(leaf, &cert, plan, digest, &cms)?
            }
            DocExpect::Detached { digest, t: true } => {
                crate::cades::verify_detached_t(leaf, &cert, plan, digest, &cms, unix_now())?
            }
            DocExpect::Attached { document } => {
                crate::cades::verify_attached(leaf, &cert, plan, document, &cms)?
            }
        };
        Ok(format!("{}-byte CMS: {d}", cms.len()))
    }

    /// One signDoc call that must sign (`body`), its answer checked as `expect` says, recorded
    /// as `row`. Whether it was answered 200 (so spent a signature of the SAD, whether or not
    /// what came back is right).
    fn doc_sign_row(
        &mut self,
        cred: &Cred,
        (plan, body, expect): (&SignPlan, &Value, DocExpect<'_>),
        (issued, ttl): (Instant, Option<u64>),
        row: &str,
    ) -> bool {
        let token = self.bearer();
        let sent = self.call("signatures/signDoc", Auth::Bearer(&token), body);
        let ok = matches!(&sent, Ok(r) if r.status == 200);
        let signed = sent
            .and_then(|r| self.verify_doc_answer(cred, plan, expect, &r))
            .map_err(|e| {
                format!(
                    "{e} [{:.1} s after the SAD was issued, expiresIn {}]",
                    issued.elapsed().as_secs_f64(),
                    ttl.map_or("absent".into(), |t| format!("{t} s"))
                )
            });
        self.result(row, Some(&cred.id), signed);
        ok
    }

    /// signDoc with the credential's main SAD, which still authorizes the digests of `inputs`:
    /// a made-up signature_format, (SCAL 2) a hash the SAD does not bind (`unbound`), both
    /// while the SAD is live; then the detached CAdES-B-B, the B-T and the attached CAdES the
    /// plan has, each verified; then the B-B call again, the SAD now spent. Whether every
    /// signing call was answered 200 (so the SAD's signatures are all spent).
    fn doc_checks(
        &mut self,
        cred: &Cred,
        sad: (&str, Instant, Option<u64>),
        plan: &SignPlan,
        inputs: &DocInputs,
        unbound: &[u8],
    ) -> bool {
        let cid = Some(cred.id.as_str());
        let (sad, issued, ttl) = sad;
        let token = self.bearer();
        let valid = Self::doc_body(cred, sad, plan, &inputs.b, "Ades-B-B");

        // Not a CSC signature_format: refused, not signed in some other format.
        let mut bad_format = valid.clone();
        if let Some(item) = bad_format.pointer_mut("/documentDigests/0") {
            set(item, "signature_format", json!("Z"));
        }
        let sent = self.call_bad("signatures/signDoc", Auth::Bearer(&token), &bad_format);
        let res = sent
            .and_then(|r| self.expect_error(&r, &[400], INVALID_REQUEST))
            .map(|d| format!("signature_format \"Z\": {d}"));
        self.result(n::DOC_BAD_FORMAT, cid, res);

        // SCAL 2: a hash outside the SAD (any 4xx CSC error, e.g. 403 invalid_hash).
        let unbound_res = cred.scal2.then(|| {
            let body = Self::doc_body(cred, sad, plan, unbound, "Ades-B-B");
            self.call("signatures/signDoc", Auth::Bearer(&token), &body)
                .and_then(|r| self.expect_client_error(&r))
                .map(|d| format!("a hash the SAD does not bind: {d}"))
                .map_err(|e| format!("a hash the SAD does not bind: {e}"))
        });

        let when = (issued, ttl);
        let b = DocExpect::Detached {
            digest: &inputs.b,
            t: false,
        };
        let b_ok = self.doc_sign_row(cred, (plan, &valid, b), when, n::DOC_SIGN);
        let mut all_ok = b_ok;
        if let Some(digest) = &inputs.t {
            let body = Self::doc_body(cred, sad, plan, digest, "Ades-B-T");
            let t = DocExpect::Detached { digest, t: true };
            all_ok &= self.doc_sign_row(cred, (plan, &body, t), when, n::DOC_SIGN_T);
        }
        if let Some((p, document)) = &inputs.attached {
            let body = Self::doc_attached_body(cred, sad, p, document);
            let a = DocExpect::Attached { document };
            all_ok &= self.doc_sign_row(cred, (p, &body, a), when, n::DOC_ATTACHED);
        }

        // The B-B call again: its signature is spent (SCAL 1: the budget, so only once every
        // call signed; SCAL 2: the budget or the hash's one use).
        let send_again = b_ok && (all_ok || cred.scal2);
        let spent_res = send_again.then(|| {
            self.call("signatures/signDoc", Auth::Bearer(&token), &valid)
                .and_then(|r| self.expect_client_error(&r))
                .map(|d| format!("the same call again, the SAD spent: {d}"))
                .map_err(|e| format!("the same call again, the SAD spent: {e}"))
        });
        let parts: Vec<Result<String, String>> = unbound_res.into_iter().chain(spent_res).collect();
        if parts.is_empty() {
            self.skip(
                n::DOC_REFUSED,
                cid,
                "SCAL 1 (no hash binding) and a signDoc call was not answered 200: nothing \
                 spent to refuse",
            );
        } else {
            let failed = parts.iter().any(Result::is_err);
            let mut detail = parts
                .iter()
                .map(|p| match p {
                    Ok(d) | Err(d) => d.as_str(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            if !send_again {
                detail.push_str(
                    " (a signDoc call was not answered 200: the spent-SAD call is not sent)",
                );
            }
            self.result(
                n::DOC_REFUSED,
                cid,
                if failed { Err(detail) } else { Ok(detail) },
            );
        }
        all_ok
    }

    // ----- the asynchronous mode -----

    /// Why the asynchronous checks cannot run (None: they can). signHash itself is required
    /// by every signing task (see `blocker`).
    fn async_unsupported(&self) -> Option<String> {
        if !self.async_mode {
            return Some("info.asynchronousOperationMode is not true".into());
        }
        if !self.advertised("signatures/signPolling") {
            return Some(Self::not_advertised("signatures/signPolling"));
        }
        None
    }

    /// `signatures/signPolling` for a requestID no call was answered with.
    fn async_service_errors(&mut self) {
        if let Some(why) = self.async_unsupported() {
            self.skip(n::ASYNC_UNKNOWN_ID, None, &why);
            return;
        }
        let token = self.bearer();
        let random: u128 = rand::random();
        let body = json!({"requestID": format!("csc-conformance-unknown-{random:032x}")});
        let sent = self.call("signatures/signPolling", Auth::Bearer(&token), &body);
        self.error_check(n::ASYNC_UNKNOWN_ID, None, sent, &[400], INVALID_REQUEST);
    }

    /// A signHash body made asynchronous: `operationMode: "A"` and a `validity_period`.
    fn async_body(cred: &Cred, sad: &str, plan: &SignPlan, hashes: &[String]) -> Value {
        let mut body = Self::sign_body(cred, sad, plan, hashes);
        set(&mut body, "operationMode", json!("A"));
        set(&mut body, "validity_period", json!(ASYNC_VALIDITY_MS));
        body
    }

    /// The `responseID` of an accepted asynchronous call: HTTP 200, a non-empty string, and
    /// no signatures yet.
    fn response_id_of(&mut self, r: &Resp) -> Result<String, String> {
        self.expect_ok("signatures/signHash", r, 200)?;
        if r.body.get("signatures").is_some() {
            return Err(format!(
                "an asynchronous call is answered with a responseID, not signatures: {}",
                r.summary()
            ));
        }
        r.body
            .get("responseID")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("no responseID string: {}", r.summary()))
    }

    /// Poll `id` until the call has its answer (anything but 202), every [`POLL_EVERY`] for at
    /// most [`POLL_FOR`] (and never more than [`MAX_POLLS`] times); every 202 must be the CSC
    /// error `accepted_request`. The answer and how many polls it took.
    fn poll_answer(&mut self, id: &str) -> Result<(Resp, usize), String> {
        let body = json!({"requestID": id});
        let started = Instant::now();
        let file = schema::file_for("signatures/signPolling", Kind::Response);
        for polls in 1..=MAX_POLLS {
            let token = self.bearer();
            let r = self.call("signatures/signPolling", Auth::Bearer(&token), &body)?;
            if r.status != 202 {
                return Ok((r, polls));
            }
            if r.json_error.is_some() || r.error_code() != Some("accepted_request") {
                return Err(format!(
                    "HTTP 202 must carry the CSC error accepted_request: {}",
                    r.summary()
                ));
            }
            self.schema_note("schema: signatures/signPolling response", &file, &r.body);
            if started.elapsed() >= POLL_FOR {
                break;
            }
            std::thread::sleep(POLL_EVERY);
        }
        Err(format!(
            "still HTTP 202 accepted_request after {:.1} s of polling",
            started.elapsed().as_secs_f64()
        ))
    }

    /// A CSC error with a 4xx status, whatever its code, carrying nothing signed.
    fn expect_client_error(&mut self, r: &Resp) -> Result<String, String> {
        let mut problems = Vec::new();
        if !(400..500).contains(&r.status) {
            problems.push("expected a 4xx status".to_string());
        }
        if let Some(e) = &r.json_error {
            problems.push(format!("the error body is not JSON ({e})"));
        } else {
            self.schema_note(n::SCHEMA_ERRORS, "error.json", &r.body);
        }
        let code = r.error_code().unwrap_or("");
        if code.is_empty() {
            problems.push("expected a CSC error body with an error code".into());
        }
        if NOT_IN_A_REFUSAL.iter().any(|k| r.body.get(k).is_some()) {
            problems.push("a refusal must not carry signatures, a SAD or a responseID".into());
        }
        if problems.is_empty() {
            Ok(format!("HTTP {} {code}{}", r.status, description(r)))
        } else {
            Err(format!("{}; got {}", problems.join("; "), r.summary()))
        }
    }

    /// An asynchronous signHash with a SAD of its own: malformed calls and a made-up SAD first
    /// (while the SAD is live, so that only the fault is refused), then the call that signs,
    /// its answer polled and verified, and polled again.
    fn async_task(&mut self, cred: &mut Cred) {
        let c = cred.id.clone();
        let cid = Some(c.as_str());
        if cred.authorize_failed {
            let why = "credentials/authorize failed earlier; not retried (lockout counters)";
            self.skip_all(n::ASYNC_TASK, cid, why);
            return;
        }
        let Some(plan) = cred.plans.first().copied() else {
            self.skip_all(n::ASYNC_TASK, cid, "no signAlgo the suite can verify");
            return;
        };
        let digest = self.hash(cred, "async");
        let Some((sad, ttl)) = self.authorize_row(
            cred,
            std::slice::from_ref(&digest),
            n::ASYNC_AUTHZ,
            &[
                n::ASYNC_MALFORMED,
                n::ASYNC_FAKE_SAD,
                n::ASYNC_SIGN,
                n::ASYNC_POLL_AGAIN,
            ],
        ) else {
            return;
        };
        let issued = Instant::now();
        let valid = Self::async_body(cred, &sad, &plan, &[b64(&digest)]);

        let res = self.async_malformed(cred, &valid);
        self.result(n::ASYNC_MALFORMED, cid, res);
        let res = self.async_fake_sad(&valid);
        self.result(n::ASYNC_FAKE_SAD, cid, res);

        let token = self.bearer();
        let signed = self
            .call("signatures/signHash", Auth::Bearer(&token), &valid)
            .and_then(|r| self.response_id_of(&r))
            .and_then(|id| {
                let (r, polls) = self.poll_answer(&id)?;
                self.expect_ok("signatures/signPolling", &r, 200)?;
                let d = Self::verify_answer(cred, &plan, &digest, &r)?;
                Ok((id, r, format!("answered after {polls} poll(s): {d}")))
            });
        let (id, first) = match signed {
            Ok((id, first, d)) => {
                self.record(n::ASYNC_SIGN, cid, Outcome::Pass, d);
                (id, first)
            }
            Err(e) => {
                let e = format!(
                    "{e} [{:.1} s after the SAD was issued, expiresIn {}]",
                    issued.elapsed().as_secs_f64(),
                    ttl.map_or("absent".into(), |t| format!("{t} s"))
                );
                self.record(n::ASYNC_SIGN, cid, Outcome::Fail, e);
                let why = "no signed answer to poll again";
                self.skip(n::ASYNC_POLL_AGAIN, cid, why);
                return;
            }
        };
        // An answer may be polled again within its validity period: the same answer.
        let token = self.bearer();
        let res = self
            .call(
                "signatures/signPolling",
                Auth::Bearer(&token),
                &json!({"requestID": id}),
            )
            .and_then(|r| {
                self.expect_ok("signatures/signPolling", &r, first.status)?;
                let (a, b) = (r.body.get("signatures"), first.body.get("signatures"));
                if a != b {
                    return Err(format!(
                        "the signatures differ from the first answer's: {}",
                        r.summary()
                    ));
                }
                Ok(format!(
                    "HTTP {}, the same {} signature(s)",
                    r.status,
                    a.and_then(Value::as_array).map_or(0, Vec::len)
                ))
            });
        self.result(n::ASYNC_POLL_AGAIN, cid, res);
    }

    /// Asynchronous calls that are malformed whoever's credential and SAD they name (hashes
    /// not base64; a `signAlgo` OID no algorithm has): refused at once with 400
    /// `invalid_request` and no `responseID`. One wrongly accepted is polled to its end
    /// before the SAD is used again.
    fn async_malformed(&mut self, cred: &Cred, valid: &Value) -> Result<String, String> {
        let token = self.bearer();
        let mut not_base64 = valid.clone();
        set(&mut not_base64, "hashes", json!(["%%%not-base64%%%"]));
        // An OID under 2.25 (UUIDs as integers) names no algorithm.
        let unknown_oid = format!("2.25.{}", rand::random::<u64>());
        let mut unknown_algo = valid.clone();
        set(&mut unknown_algo, "signAlgo", json!(unknown_oid));
        set(
            &mut unknown_algo,
            "hashAlgorithmOID",
            json!(cred.hash.oid()),
        );
        if let Some(obj) = unknown_algo.as_object_mut() {
            obj.remove("signAlgoParams");
        }
        let cases = [
            ("hashes not base64".to_string(), not_base64),
            (format!("unknown signAlgo {unknown_oid}"), unknown_algo),
        ];
        let (mut passed, mut problems) = (Vec::new(), Vec::new());
        for (what, body) in cases {
            let r = self.call_bad("signatures/signHash", Auth::Bearer(&token), &body)?;
            let accepted = r.body.get("responseID").and_then(Value::as_str);
            if let (200, Some(id)) = (r.status, accepted) {
                let later = match self.poll_answer(id) {
                    Ok((answer, _)) => answer.summary(),
                    Err(e) => e,
                };
                problems.push(format!(
                    "{what}: accepted (HTTP 200 with a responseID) instead of refused at once; \
                     its polled answer: {later}"
                ));
                continue;
            }
            match self.expect_error(&r, &[400], INVALID_REQUEST) {
                Ok(d) => passed.push(format!("{what}: {d}")),
                Err(e) => problems.push(format!("{what}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(passed.join("; "))
        } else {
            Err(problems.join("; "))
        }
    }

    /// An asynchronous call with a random SAD: refused at once with a 4xx CSC error, or
    /// accepted and its polled answer a 4xx CSC error; never signatures.
    fn async_fake_sad(&mut self, valid: &Value) -> Result<String, String> {
        let token = self.bearer();
        let mut body = valid.clone();
        let random: u128 = rand::random();
        set(
            &mut body,
            "SAD",
            json!(format!("csc-conformance-random-SAD-{random:032x}")),
        );
        let r = self.call_bad("signatures/signHash", Auth::Bearer(&token), &body)?;
        if r.status != 200 {
            return self
                .expect_client_error(&r)
                .map(|d| format!("refused at once: {d}"));
        }
        let id = self.response_id_of(&r)?;
        let (answer, polls) = self.poll_answer(&id)?;
        if answer.status == 200 {
            return Err(format!(
                "the polled answer of a call with a made-up SAD must be a CSC error: {}",
                answer.summary()
            ));
        }
        self.expect_client_error(&answer)
            .map(|d| format!("accepted, then polled ({polls} poll(s)): {d}"))
    }

    // ----- the end -----

    fn revoke(&mut self) {
        if !self.advertised("auth/revoke") {
            let why = Self::not_advertised("auth/revoke");
            self.skip_all(&[n::REVOKE, n::REVOKED_TOKEN], None, &why);
            return;
        }
        let token = self.bearer();
        let res = self
            .call(
                "auth/revoke",
                Auth::Bearer(&token),
                &json!({"token": token, "token_type_hint": "access_token"}),
            )
            .and_then(|r| self.expect_ok("auth/revoke", &r, 204))
            .map(|()| "HTTP 204".to_string());
        let revoked = res.is_ok();
        self.result(n::REVOKE, None, res);
        if !revoked {
            self.skip(n::REVOKED_TOKEN, None, "auth/revoke failed");
            return;
        }
        let Some(method) = PROTECTED.iter().copied().find(|m| self.advertised(m)) else {
            self.skip(
                n::REVOKED_TOKEN,
                None,
                "no method needing a bearer token is advertised",
            );
            return;
        };
        let body = match method {
            "credentials/list" => json!({}),
            _ => json!({"credentialID": "csc-conformance"}),
        };
        let sent = self.call_bad(method, Auth::Bearer(&token), &body);
        self.error_check(n::REVOKED_TOKEN, None, sent, &[401], BAD_TOKEN_CODES);
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

/// How to satisfy a credential's auth objects (v2 `auth.objects`, else the v1 `PIN`/`OTP`
/// descriptions, else PIN and a time-based OTP).
fn factors(info: &Value) -> Vec<(String, Factor)> {
    let objects = info.pointer("/auth/objects").and_then(Value::as_array);
    if let Some(objects) = objects {
        return objects
            .iter()
            .filter_map(|o| {
                let id = o.get("id").and_then(Value::as_str)?.to_string();
                let kind = o.get("type").and_then(Value::as_str).unwrap_or("Password");
                let text = |k: &str| {
                    o.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_ascii_lowercase()
                };
                let otp_like = !text("generator").is_empty()
                    || id.to_ascii_lowercase().contains("otp")
                    || text("label").contains("otp");
                let factor = match kind {
                    "ChallengeResponse" => Factor::OnlineOtp,
                    "PasswordOOB" | "ChallengeResponseOOB" => Factor::NoValue,
                    _ if otp_like => Factor::OfflineOtp,
                    _ => Factor::Pin,
                };
                Some((id, factor))
            })
            .collect();
    }
    let mut out = Vec::new();
    let present = |k: &str| {
        info.get(k)
            .and_then(|o| o.get("presence"))
            .and_then(Value::as_str)
            .is_none_or(|p| p != "false")
    };
    if present("PIN") {
        out.push(("PIN".to_string(), Factor::Pin));
    }
    if present("OTP") {
        let online = info.pointer("/OTP/type").and_then(Value::as_str) == Some("online");
        let f = if online {
            Factor::OnlineOtp
        } else {
            Factor::OfflineOtp
        };
        out.push(("OTP".to_string(), f));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: Value) -> Resp {
        Resp {
            status,
            text: body.to_string(),
            body,
            json_error: None,
            content_type: Some("application/json".into()),
        }
    }

    fn suite(cfg: &Config) -> Suite<'_> {
        Suite::new(cfg).unwrap()
    }

    fn config() -> Config {
        let mut c = Config::new(
            "http://127.0.0.1:9",
            "u",
            "p",
            "123456",
            crate::OtpSource::TotpSecret("JBSWY3DPEHPK3PXP".into()),
        );
        c.totp_state = crate::TotpState::Memory;
        c
    }

    #[test]
    fn optional_fields_fail_only_the_schema_rows() {
        let cfg = config();
        let mut s = suite(&cfg);
        // No expires_in, an extra token_type: the login is fine, the schema row is not.
        let login = resp(200, json!({"access_token": "t", "token_type": "Bearer"}));
        s.expect_ok("auth/login", &login, 200).unwrap();
        // No expiresIn: the SAD is usable (the default lifetime applies later).
        let authz = resp(200, json!({"SAD": "s"}));
        assert_eq!(
            s.sad_of("credentials/authorize", &authz).unwrap(),
            ("s".to_string(), None)
        );
        let authz = resp(200, json!({"SAD": "s", "expiresIn": 300.0}));
        assert_eq!(
            s.sad_of("credentials/authorize", &authz).unwrap().1,
            Some(300)
        );
        // No error_description: still the right error.
        let err = resp(400, json!({"error": "invalid_request"}));
        s.expect_error(&err, &[400], INVALID_REQUEST).unwrap();
        // What is required still is.
        assert!(
            s.sad_of("credentials/authorize", &resp(200, json!({})))
                .is_err()
        );
        assert!(
            s.expect_error(
                &resp(401, json!({"error": "invalid_request"})),
                &[400],
                INVALID_REQUEST
            )
            .is_err()
        );
        s.schema_rows();
        let row = |name: &str| {
            s.report
                .named(name)
                .first()
                .map(|r| (r.outcome, r.detail.clone()))
        };
        let (o, d) = row("schema: auth/login response").unwrap();
        assert_eq!(o, Outcome::Warn);
        assert!(d.contains("expires_in") && d.contains("token_type"), "{d}");
        assert_eq!(
            row("schema: credentials/authorize response").unwrap().0,
            Outcome::Warn
        );
        assert_eq!(row(n::SCHEMA_ERRORS).unwrap().0, Outcome::Warn);
        assert_eq!(s.report.exit_code(), 0, "warnings are no failures");
        let mut ok = suite(&cfg);
        ok.expect_ok(
            "auth/login",
            &resp(200, json!({"access_token": "t", "expires_in": 3600})),
            200,
        )
        .unwrap();
        ok.schema_rows();
        assert_eq!(
            ok.report.named("schema: auth/login response")[0].outcome,
            Outcome::Pass
        );
    }

    #[test]
    fn no_pin_object_skips_the_wrong_pin_check() {
        let cfg = config();
        let mut s = suite(&cfg);
        let mut cred = Cred::new("c1");
        cred.factors = vec![("OTP".into(), Factor::OfflineOtp)];
        s.wrong_pin_task(&mut cred);
        let r = s.report.named(n::AUTHZ_WRONG_PIN);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].outcome, Outcome::Skip, "{}", r[0].detail);
        // The wrong OTP is still tried (here the server is unreachable, hence FAIL).
        assert_eq!(s.report.named(n::AUTHZ_WRONG_OTP).len(), 1);
        let mut s = suite(&cfg);
        let mut cred = Cred::new("c1");
        cred.factors = vec![("PIN".into(), Factor::Pin)];
        s.wrong_pin_task(&mut cred);
        assert_eq!(s.report.named(n::AUTHZ_WRONG_OTP)[0].outcome, Outcome::Skip);
    }

    #[test]
    fn async_checks_need_the_mode_and_signpolling() {
        let cfg = config();
        let mut s = suite(&cfg);
        s.methods = vec![
            "signatures/signHash".into(),
            "signatures/signPolling".into(),
        ];
        assert!(
            s.async_unsupported()
                .unwrap()
                .contains("asynchronousOperationMode")
        );
        s.async_mode = true;
        assert_eq!(s.async_unsupported(), None);
        s.methods.pop();
        assert!(
            s.async_unsupported()
                .unwrap()
                .contains("signatures/signPolling")
        );
        // Not offered: the unknown-requestID row is SKIP, and nothing is sent.
        s.async_service_errors();
        assert_eq!(
            s.report.named(n::ASYNC_UNKNOWN_ID)[0].outcome,
            Outcome::Skip
        );
    }

    #[test]
    fn sign_doc_checks_need_the_method_and_cades() {
        let cfg = config();
        let mut s = suite(&cfg);
        assert!(s.doc_unsupported().unwrap().contains("signatures/signDoc"));
        s.methods = vec!["signatures/signDoc".into()];
        assert_eq!(s.doc_unsupported(), None, "info says nothing of formats");
        s.signature_formats = Some(vec!["P".into()]);
        assert!(s.doc_unsupported().unwrap().contains("CAdES"));
        s.signature_formats = Some(vec!["P".into(), "C".into()]);
        s.conformance_levels = Some(vec!["AdES-B-T".into()]);
        assert!(s.doc_unsupported().unwrap().contains("Ades-B-B"));
        s.conformance_levels = Some(vec!["AdES-B-B".into()]);
        assert_eq!(
            s.doc_unsupported(),
            None,
            "levels compare case-insensitively"
        );
        // A signDoc refusal must not carry a signature either.
        let signed = resp(
            400,
            json!({"error": "invalid_request", "SignatureObject": ["MA=="]}),
        );
        assert!(s.expect_client_error(&signed).is_err());
        assert!(s.expect_error(&signed, &[400], INVALID_REQUEST).is_err());
    }

    #[test]
    fn sign_doc_b_t_and_attached_need_info_and_signatures_to_spare() {
        let cfg = config();
        let mut s = suite(&cfg);
        s.methods = vec!["signatures/signDoc".into()];
        let ec = verify::plans_for(
            &verify::KeyKind::P256,
            &[verify::ECDSA_SHA256, verify::EC_PUBLIC_KEY],
        )
        .unwrap()
        .1;
        let mut cred = Cred::new("c1");
        cred.plans = ec.clone();
        cred.multisign = 5;
        // info says nothing: both run, the attached one with the signAlgo implying SHA-256.
        let (plan, skipped) = s.doc_offer(&cred);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(plan.t);
        assert_eq!(
            plan.attached.map(|p| p.sign_algo),
            Some(verify::ECDSA_SHA256)
        );
        assert_eq!(plan.signatures(), 3);
        assert_eq!(plan.rows().len(), n::DOC_TASK.len());
        // multisign 4: the SAD has one signature to spare, for the B-T.
        cred.multisign = 4;
        let (plan, skipped) = s.doc_offer(&cred);
        assert!(plan.t && plan.attached.is_none());
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].0, n::DOC_ATTACHED);
        assert!(skipped[0].1.contains("multisign 4"), "{}", skipped[0].1);
        // info leaves out Ades-B-T and Attached.
        cred.multisign = 5;
        s.conformance_levels = Some(vec!["Ades-B-B".into()]);
        s.cades_envelopes = Some(vec!["Detached".into()]);
        let (plan, skipped) = s.doc_offer(&cred);
        assert_eq!(plan, DocPlan::default());
        assert!(
            skipped[0].1.contains("does not offer Ades-B-T"),
            "{skipped:?}"
        );
        assert!(skipped[1].1.contains("no Attached"), "{skipped:?}");
        s.conformance_levels = Some(vec!["ades-b-b".into(), "ADES-B-T".into()]);
        s.cades_envelopes = Some(vec!["Detached".into(), "Attached".into()]);
        assert_eq!(s.doc_offer(&cred).0.signatures(), 3);
        // Only id-ecPublicKey + hashAlgorithmOID: a document cannot say its digest.
        cred.plans = ec.into_iter().filter(|p| p.send_hash_oid).collect();
        let (plan, skipped) = s.doc_offer(&cred);
        assert!(plan.t && plan.attached.is_none());
        assert!(skipped[0].1.contains("implies the digest"), "{skipped:?}");
    }

    #[test]
    fn an_asynchronous_refusal_is_any_4xx_csc_error_without_a_response_id() {
        let cfg = config();
        let mut s = suite(&cfg);
        let forbidden = resp(403, json!({"error": "invalid_sad"}));
        assert!(s.expect_client_error(&forbidden).is_ok());
        let accepted = resp(202, json!({"error": "accepted_request"}));
        assert!(s.expect_client_error(&accepted).is_err());
        let no_code = resp(400, json!({"message": "no"}));
        assert!(s.expect_client_error(&no_code).is_err());
        let with_id = resp(400, json!({"error": "invalid_request", "responseID": "x"}));
        assert!(s.expect_client_error(&with_id).is_err());
        assert!(s.expect_error(&with_id, &[400], INVALID_REQUEST).is_err());
    }

    #[test]
    fn wrong_pins_differ() {
        assert_eq!(wrong_pin("123456"), "123457");
        assert_eq!(wrong_pin("129"), "120");
        assert_eq!(wrong_pin("abc"), "abcx");
        assert_eq!(wrong_pin(""), "0");
    }

    #[test]
    fn factors_from_auth_objects_and_v1() {
        let v2 = json!({"auth": {"mode": "explicit", "objects": [
            {"type": "Password", "id": "PIN", "format": "N"},
            {"type": "Password", "id": "OTP", "format": "N", "generator": "totp"}]}});
        assert_eq!(
            factors(&v2),
            vec![
                ("PIN".into(), Factor::Pin),
                ("OTP".into(), Factor::OfflineOtp)
            ]
        );
        let online = json!({"auth": {"objects": [
            {"type": "Password", "id": "PIN"}, {"type": "ChallengeResponse", "id": "SMS"}]}});
        assert_eq!(
            factors(&online).get(1),
            Some(&("SMS".into(), Factor::OnlineOtp))
        );
        let v1 =
            json!({"PIN": {"presence": "true"}, "OTP": {"presence": "true", "type": "online"}});
        assert_eq!(
            factors(&v1).get(1),
            Some(&("OTP".into(), Factor::OnlineOtp))
        );
        assert_eq!(factors(&json!({})).len(), 2);
    }
}
