//! The names of the checks (rows of the report). Per-credential rows carry the credential ID
//! separately ([`CheckResult::credential`](crate::report::CheckResult::credential)).

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
pub const CERT_VALIDITY: &str = "credentials/info: cert.validFrom/validTo match the certificate";
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
pub const ASYNC_POLL_AGAIN: &str = "signatures/signPolling: the answer polled again is the same";
pub const ASYNC_CALLBACK: &str =
    "signatures/signHash: asynchronous answer announced at response_uri";
/// `signatures/signDoc` (CAdES): only when `info` lists `signatures/signDoc`; on one
/// credential, with one more hash in its main SAD per signature (B-B, B-T, attached, async,
/// detached document, and three for the several-entries call).
pub const DOC_BAD_FORMAT: &str = "signatures/signDoc: unknown signature_format refused";
pub const DOC_SIGN: &str = "signatures/signDoc: detached CAdES-B-B verifies";
/// Unless `info.conformance_levels` leaves out Ades-B-T.
pub const DOC_SIGN_T: &str = "signatures/signDoc: detached CAdES-B-T time-stamp verifies";
/// Unless `info.signature_formats.envelope_properties` leaves out Attached for C.
pub const DOC_ATTACHED: &str = "signatures/signDoc: attached CAdES of a document verifies";
/// Unless the asynchronous mode is off (gated as the asynchronous signHash rows are): one more
/// digest of the same SAD, signed as a detached CAdES-B-B with `operationMode: "A"`.
pub const DOC_ASYNC: &str = "signatures/signDoc (async): polled detached CAdES-B-B verifies";
/// Unless `info.signature_formats.envelope_properties` leaves out Detached for C: a whole
/// document (`documents`) signed detached.
pub const DOC_DETACHED_DOC: &str = "signatures/signDoc: detached CAdES of a document verifies";
/// One call, two `documentDigests` entries (two hashes, then one): one detached CAdES-B-B
/// per hash, in request order.
pub const DOC_SEVERAL: &str =
    "signatures/signDoc: several entries and hashes in one call verify in order";
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
    ASYNC_CALLBACK,
    ASYNC_SIGN,
    ASYNC_POLL_AGAIN,
];
/// Rows of signDoc (one credential, within its main task).
pub const DOC_TASK: &[&str] = &[
    DOC_BAD_FORMAT,
    DOC_SIGN,
    DOC_SIGN_T,
    DOC_ATTACHED,
    DOC_ASYNC,
    DOC_DETACHED_DOC,
    DOC_SEVERAL,
    DOC_REFUSED,
];
