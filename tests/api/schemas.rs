//! The JSON Schemas in `schema/` (one per CSC request and response body, and one per body of the
//! OAuth 2.0 endpoints), loaded once, and the contract check every CSC exchange of the
//! integration tests goes through: a 2xx body matches `<method>.response.json`, every error is
//! JSON matching `error.json`, and a request body that does not match `<method>.request.json`
//! must be refused with a 4xx (the schema and the server agree on what is invalid). OAuth
//! exchanges get the same check with their form read as a JSON object (`check_oauth_exchange`).
//! Also compiled into `tests/contract.rs`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

/// Where the schema files live.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema");

/// Every schema file the conformance suite and openapi.yaml rely on.
pub const FILES: &[&str] = &[
    "error.json",
    "info.request.json",
    "info.response.json",
    "auth-login.request.json",
    "auth-login.response.json",
    "auth-revoke.request.json",
    "credentials-list.request.json",
    "credentials-list.response.json",
    "credentials-info.request.json",
    "credentials-info.response.json",
    "credentials-authorize.request.json",
    "credentials-authorize.response.json",
    "credentials-extendTransaction.request.json",
    "credentials-extendTransaction.response.json",
    "credentials-getChallenge.request.json",
    "signatures-signHash.request.json",
    "signatures-signHash.response.json",
    "signatures-signDoc.request.json",
    "signatures-signDoc.response.json",
    "signatures-signPolling.request.json",
    "signatures-signPolling.response.json",
    "signatures-timestamp.request.json",
    "signatures-timestamp.response.json",
    "oauth2-authorize.request.json",
    "oauth2-pushedAuthorize.request.json",
    "oauth2-pushedAuthorize.response.json",
    "oauth2-token.request.json",
    "oauth2-token.response.json",
    "oauth2-revoke.request.json",
    "oauth2-metadata.response.json",
];

/// The schema stem of an OAuth 2.0 endpoint's bodies (`<stem>.request.json`,
/// `<stem>.response.json`).
pub fn oauth_stem(path: &str) -> Option<&'static str> {
    Some(match path {
        "/oauth2/authorize" => "oauth2-authorize",
        "/oauth2/pushed_authorize" => "oauth2-pushedAuthorize",
        "/oauth2/token" => "oauth2-token",
        "/oauth2/revoke" => "oauth2-revoke",
        "/.well-known/oauth-authorization-server" => "oauth2-metadata",
        _ => return None,
    })
}

/// One schema file: its JSON and a compiled draft 2020-12 validator (formats checked).
pub struct Schema {
    pub json: Value,
    pub validator: jsonschema::Validator,
}

/// Compile a schema the way every check here does.
pub fn compile(json: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(json)
        .map_err(|e| e.to_string())
}

/// Every `*.json` in `schema/`, by file name, read and compiled once per test process.
pub static SCHEMAS: LazyLock<BTreeMap<String, Schema>> = LazyLock::new(|| {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(DIR).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        let validator = compile(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.insert(name, Schema { json, validator });
    }
    out
});

/// The schema `file`, if it exists.
pub fn schema(file: &str) -> Option<&'static Schema> {
    SCHEMAS.get(file)
}

/// Validate `instance` against the schema `file`: `Err` lists every violation.
pub fn validate(file: &str, instance: &Value) -> Result<(), String> {
    let schema = schema(file).unwrap_or_else(|| panic!("no schema/{file}"));
    let errors: Vec<String> = schema
        .validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// `credentials/extendTransaction` → `credentials-extendTransaction`.
pub fn stem(method: &str) -> String {
    method.replace('/', "-")
}

/// The CSC method of a request path (`/csc/v2/credentials/info` → `credentials/info`); v1 paths
/// reach the same handlers, so they are held to the same schemas.
pub fn csc_method(path: &str) -> Option<&str> {
    path.strip_prefix("/csc/v2/")
        .or_else(|| path.strip_prefix("/csc/v1/"))
}

/// Check one HTTP exchange against the schemas; panics with the reason when it breaks them.
/// `request` is the raw body sent, `content_type` and `body` what came back.
pub fn check_exchange(
    path: &str,
    request: &str,
    status: u16,
    content_type: Option<&str>,
    body: &str,
) {
    let Some(method) = csc_method(path) else {
        // Not a CSC method (e.g. a 404 test): only the error shape applies.
        if !(200..300).contains(&status) {
            check_error(path, status, content_type, body);
        }
        return;
    };
    let stem = stem(method);
    // The request: the server reads an empty body as {}; bytes that are not JSON are not checked.
    let request_file = format!("{stem}.request.json");
    if schema(&request_file).is_some() {
        let parsed = if request.is_empty() {
            Some(Value::Object(Default::default()))
        } else {
            serde_json::from_str::<Value>(request).ok()
        };
        if let Some(instance) = parsed
            && let Err(why) = validate(&request_file, &instance)
        {
            assert!(
                (400..500).contains(&status),
                "{path}: the request breaks {request_file} ({why}) but the server answered \
                     {status}: {body}\nrequest: {request}"
            );
        }
    }
    if (200..300).contains(&status) {
        let response_file = format!("{stem}.response.json");
        if body.is_empty() {
            assert_eq!(status, 204, "{path}: {status} without a body");
            assert!(
                schema(&response_file).is_none(),
                "{path}: 204 without a body, but schema/{response_file} describes one"
            );
            return;
        }
        assert!(
            content_type.is_some_and(|c| c.starts_with("application/json")),
            "{path}: {status} with Content-Type {content_type:?}"
        );
        let instance: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{path}: {status} body is not JSON ({e}): {body:?}"));
        assert!(
            schema(&response_file).is_some(),
            "{path}: {status} with a body but no schema/{response_file}: {body}"
        );
        if let Err(why) = validate(&response_file, &instance) {
            panic!("{path}: {status} response breaks {response_file}: {why}\nbody: {body}");
        }
    } else {
        check_error(path, status, content_type, body);
    }
}

/// A non-2xx answer is `{"error", "error_description"}` as JSON.
pub fn check_error(path: &str, status: u16, content_type: Option<&str>, body: &str) {
    assert!(
        content_type.is_some_and(|c| c.starts_with("application/json")),
        "{path}: {status} with Content-Type {content_type:?}: {body:?}"
    );
    let instance: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{path}: {status} error body is not JSON ({e}): {body:?}"));
    if let Err(why) = validate("error.json", &instance) {
        panic!("{path}: {status} error breaks error.json: {why}\nbody: {body}");
    }
}

/// A form body as the JSON object its schema describes: each value a string, except where the
/// property is an integer and the value reads as one (OpenAPI serialises those as text). `None`
/// when a name repeats (no JSON object says that; the server refuses it).
pub fn form_as_json(file: &str, form: &[(String, String)]) -> Option<Value> {
    let properties = &schema(file)
        .unwrap_or_else(|| panic!("no schema/{file}"))
        .json["properties"];
    let mut out = serde_json::Map::new();
    for (name, value) in form {
        let json = match properties[name.as_str()]["type"].as_str() {
            Some("integer") => value
                .parse::<i64>()
                .map_or_else(|_| Value::from(value.as_str()), Value::from),
            _ => Value::from(value.as_str()),
        };
        if out.insert(name.clone(), json).is_some() {
            return None;
        }
    }
    Some(Value::Object(out))
}

/// Check one exchange with an OAuth 2.0 JSON endpoint (token, PAR, revocation, metadata): a form
/// its request schema refuses must be refused with a 4xx; a 2xx body matches the response schema
/// (or is a 204 without one); an error is `error.json`. Panics with the reason otherwise.
pub fn check_oauth_exchange(
    path: &str,
    form: Option<&[(String, String)]>,
    status: u16,
    content_type: Option<&str>,
    body: &str,
) {
    let stem = oauth_stem(path).unwrap_or_else(|| panic!("{path} is not an OAuth endpoint"));
    let request_file = format!("{stem}.request.json");
    if let Some(form) = form
        && let Some(instance) = form_as_json(&request_file, form)
        && let Err(why) = validate(&request_file, &instance)
    {
        assert!(
            (400..500).contains(&status),
            "{path}: the form breaks {request_file} ({why}) but the server answered \
                     {status}: {body}\nform: {instance}"
        );
    }
    if !(200..300).contains(&status) {
        check_error(path, status, content_type, body);
        return;
    }
    let response_file = format!("{stem}.response.json");
    if body.is_empty() {
        assert_eq!(status, 204, "{path}: {status} without a body");
        assert!(
            schema(&response_file).is_none(),
            "{path}: 204 without a body, but schema/{response_file} describes one"
        );
        return;
    }
    assert!(
        content_type.is_some_and(|c| c.starts_with("application/json")),
        "{path}: {status} with Content-Type {content_type:?}"
    );
    let instance: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{path}: {status} body is not JSON ({e}): {body:?}"));
    if let Err(why) = validate(&response_file, &instance) {
        panic!("{path}: {status} response breaks {response_file}: {why}\nbody: {body}");
    }
}
