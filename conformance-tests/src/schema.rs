//! The JSON Schemas of the repository's `schema/` directory, embedded at compile time, compiled
//! once and used to check every request the suite sends and every response it gets.

use std::collections::HashMap;

use jsonschema::Validator;
use serde_json::Value;

/// `(file name, schema text)` for every embedded schema.
pub const FILES: &[(&str, &str)] = &[
    ("error.json", include_str!("../../schema/error.json")),
    (
        "info.request.json",
        include_str!("../../schema/info.request.json"),
    ),
    (
        "info.response.json",
        include_str!("../../schema/info.response.json"),
    ),
    (
        "auth-login.request.json",
        include_str!("../../schema/auth-login.request.json"),
    ),
    (
        "auth-login.response.json",
        include_str!("../../schema/auth-login.response.json"),
    ),
    (
        "auth-revoke.request.json",
        include_str!("../../schema/auth-revoke.request.json"),
    ),
    (
        "credentials-list.request.json",
        include_str!("../../schema/credentials-list.request.json"),
    ),
    (
        "credentials-list.response.json",
        include_str!("../../schema/credentials-list.response.json"),
    ),
    (
        "credentials-info.request.json",
        include_str!("../../schema/credentials-info.request.json"),
    ),
    (
        "credentials-info.response.json",
        include_str!("../../schema/credentials-info.response.json"),
    ),
    (
        "credentials-authorize.request.json",
        include_str!("../../schema/credentials-authorize.request.json"),
    ),
    (
        "credentials-authorize.response.json",
        include_str!("../../schema/credentials-authorize.response.json"),
    ),
    (
        "credentials-extendTransaction.request.json",
        include_str!("../../schema/credentials-extendTransaction.request.json"),
    ),
    (
        "credentials-extendTransaction.response.json",
        include_str!("../../schema/credentials-extendTransaction.response.json"),
    ),
    (
        "credentials-getChallenge.request.json",
        include_str!("../../schema/credentials-getChallenge.request.json"),
    ),
    (
        "signatures-signHash.request.json",
        include_str!("../../schema/signatures-signHash.request.json"),
    ),
    (
        "signatures-signHash.response.json",
        include_str!("../../schema/signatures-signHash.response.json"),
    ),
    (
        "signatures-signDoc.request.json",
        include_str!("../../schema/signatures-signDoc.request.json"),
    ),
    (
        "signatures-signDoc.response.json",
        include_str!("../../schema/signatures-signDoc.response.json"),
    ),
    (
        "signatures-signPolling.request.json",
        include_str!("../../schema/signatures-signPolling.request.json"),
    ),
    (
        "signatures-signPolling.response.json",
        include_str!("../../schema/signatures-signPolling.response.json"),
    ),
];

/// The schema file for a CSC method's request or response: `credentials/info` →
/// `credentials-info.request.json`.
pub fn file_for(method: &str, kind: Kind) -> String {
    let stem = method.replace('/', "-");
    match kind {
        Kind::Request => format!("{stem}.request.json"),
        Kind::Response => format!("{stem}.response.json"),
    }
}

/// Which side of a call a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

/// The compiled schemas, by file name.
pub struct Schemas {
    validators: HashMap<&'static str, Validator>,
}

/// Most violations quoted in one detail string.
const MAX_REPORTED: usize = 3;

impl Schemas {
    /// Parse and compile every embedded schema.
    pub fn load() -> Result<Schemas, String> {
        let mut validators = HashMap::new();
        for (name, text) in FILES {
            let schema: Value = serde_json::from_str(text)
                .map_err(|e| format!("schema/{name} is not JSON: {e}"))?;
            let validator = jsonschema::options()
                .build(&schema)
                .map_err(|e| format!("schema/{name} does not compile: {e}"))?;
            validators.insert(*name, validator);
        }
        Ok(Schemas { validators })
    }

    /// Whether a schema of this file name is embedded.
    pub fn has(&self, file: &str) -> bool {
        self.validators.contains_key(file)
    }

    /// Validate `instance` against `file`; the error lists the first few violations with their
    /// JSON pointers.
    pub fn check(&self, file: &str, instance: &Value) -> Result<(), String> {
        let validator = self
            .validators
            .get(file)
            .ok_or_else(|| format!("no embedded schema {file}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "/".to_string() } else { at };
                format!("{at}: {e}")
            })
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        let mut text = errors
            .iter()
            .take(MAX_REPORTED)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if errors.len() > MAX_REPORTED {
            text.push_str(&format!(" (+{} more)", errors.len() - MAX_REPORTED));
        }
        Err(format!("{file}: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_file_names_follow_methods() {
        let s = Schemas::load().unwrap();
        assert!(s.has(&file_for("credentials/info", Kind::Request)));
        assert!(s.has(&file_for("signatures/signHash", Kind::Response)));
        assert!(!s.has(&file_for("credentials/sendOTP", Kind::Request)));
        let ok = serde_json::json!({"error": "invalid_request", "error_description": "x"});
        s.check("error.json", &ok).unwrap();
        let bad = serde_json::json!({"error": 5});
        let e = s.check("error.json", &bad).unwrap_err();
        assert!(e.contains("error.json"), "{e}");
    }
}
