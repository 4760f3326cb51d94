//! Wire formats the CSC spec fixes: standard base64 (RFC 4648 §4, `+/`, `=` padding) for binary
//! values and dotted-decimal strings for OIDs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// Decode standard, padded base64; anything else (URL-safe alphabet, missing padding,
/// whitespace) is refused.
pub fn std_base64(s: &str) -> Result<Vec<u8>, String> {
    if s.is_empty() {
        return Err("empty string".into());
    }
    STANDARD
        .decode(s)
        .map_err(|e| format!("not standard padded base64 ({e})"))
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A dotted-decimal OID: first arc 0–2, at least two arcs, no leading zeros.
pub fn is_oid(s: &str) -> bool {
    let mut arcs = s.split('.');
    let first_ok = matches!(arcs.next(), Some("0" | "1" | "2"));
    let mut rest = 0;
    for arc in arcs {
        rest += 1;
        let digits = !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit());
        if !digits || (arc.len() > 1 && arc.starts_with('0')) {
            return false;
        }
    }
    first_ok && rest >= 1
}

/// Problems with the base64 and OID fields of an `info` response.
pub fn info_problems(info: &Value) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut checked = 0;
    let algos = info
        .pointer("/signAlgorithms/algos")
        .and_then(Value::as_array);
    for (i, v) in algos.into_iter().flatten().enumerate() {
        checked += 1;
        match v.as_str() {
            Some(s) if is_oid(s) => {}
            _ => problems.push(format!("signAlgorithms.algos[{i}] = {v} is not an OID")),
        }
    }
    let params = info
        .pointer("/signAlgorithms/algoParams")
        .and_then(Value::as_array);
    for (i, v) in params.into_iter().flatten().enumerate() {
        if let Some(s) = v.as_str() {
            checked += 1;
            if let Err(e) = std_base64(s) {
                problems.push(format!("signAlgorithms.algoParams[{i}]: {e}"));
            }
        }
    }
    (problems, checked)
}

/// Problems with the base64 and OID fields of a `credentials/info` object.
pub fn credential_problems(info: &Value) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut checked = 0;
    let certs = info.pointer("/cert/certificates").and_then(Value::as_array);
    for (i, v) in certs.into_iter().flatten().enumerate() {
        checked += 1;
        match v.as_str().map(std_base64) {
            Some(Ok(_)) => {}
            Some(Err(e)) => problems.push(format!("cert.certificates[{i}]: {e}")),
            None => problems.push(format!("cert.certificates[{i}] is not a string")),
        }
    }
    let algos = info.pointer("/key/algo").and_then(Value::as_array);
    for (i, v) in algos.into_iter().flatten().enumerate() {
        checked += 1;
        match v.as_str() {
            Some(s) if is_oid(s) => {}
            _ => problems.push(format!("key.algo[{i}] = {v} is not an OID")),
        }
    }
    if let Some(curve) = info.pointer("/key/curve") {
        checked += 1;
        match curve.as_str() {
            Some(s) if is_oid(s) => {}
            _ => problems.push(format!("key.curve = {curve} is not an OID")),
        }
    }
    (problems, checked)
}

/// A JSON number that is a whole non-negative integer (`2048` or `2048.0`), where the spec says
/// integer.
pub fn whole(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_615.0 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f as u64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_numbers_may_be_written_as_floats() {
        use serde_json::json;
        assert_eq!(whole(&json!(2048)), Some(2048));
        assert_eq!(whole(&json!(2048.0)), Some(2048));
        assert_eq!(whole(&json!(2048.5)), None);
        assert_eq!(whole(&json!(-1)), None);
        assert_eq!(whole(&json!("2048")), None);
    }

    use super::*;

    #[test]
    fn oids() {
        for ok in [
            "1.2.840.113549.1.1.11",
            "2.16.840.1.101.3.4.2.1",
            "0.4.0.127.0.7.1.1.4.1.3",
            "1.0",
        ] {
            assert!(is_oid(ok), "{ok}");
        }
        for bad in [
            "", "1", "3.1", "1..2", "1.02", "1.2.", "sha256", " 1.2", "1.2a",
        ] {
            assert!(!is_oid(bad), "{bad}");
        }
    }

    #[test]
    fn base64_is_standard_and_padded() {
        assert_eq!(std_base64("AAEC").unwrap(), [0, 1, 2]);
        assert_eq!(std_base64("+/8=").unwrap(), [0xfb, 0xff]);
        assert!(std_base64("-_8=").is_err(), "URL-safe alphabet");
        assert!(std_base64("+/8").is_err(), "missing padding");
        assert!(std_base64("AA EC").is_err());
        assert!(std_base64("").is_err());
    }

    #[test]
    fn credential_fields() {
        let v = serde_json::json!({"key": {"algo": ["1.2.3", "rsa"], "curve": "1.2.840.10045.3.1.7"},
                                   "cert": {"certificates": ["AAEC", "-_8"]}});
        let (p, n) = credential_problems(&v);
        assert_eq!(n, 5);
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
