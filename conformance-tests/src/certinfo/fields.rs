//! The per-field checks of `certInfo` that are not names: `cert.serialNumber` against the
//! certificate's serial number, `cert.validFrom` / `cert.validTo` against its validity and
//! `cert.status` against the validity period now.

use serde_json::Value;

use super::time::{generalized_time, parse_generalized_time};
use super::{CLOCK_SKEW_SECS, Verdict};

/// Hex digits without leading zeros, upper case ("0" for zero).
fn canonical_hex(digits: &str) -> String {
    let trimmed = digits.trim_start_matches('0').to_ascii_uppercase();
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed
    }
}

/// `cert.serialNumber` against the certificate's serial (its DER integer's content bytes).
pub fn serial(claimed: Option<&Value>, cert_serial: &[u8]) -> Verdict {
    let Some(claimed) = claimed else {
        return Verdict::Skip("cert.serialNumber absent".into());
    };
    let Some(text) = claimed.as_str() else {
        return Verdict::Fail(format!("cert.serialNumber is not a string: {claimed}"));
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Verdict::Fail(format!(
            "cert.serialNumber {text:?} is not a hex string (CSC v2 §11.5)"
        ));
    }
    let actual: String = cert_serial.iter().map(|b| format!("{b:02X}")).collect();
    if canonical_hex(text) == canonical_hex(&actual) {
        Verdict::Pass(format!("{text} is the certificate's serial number"))
    } else {
        Verdict::Fail(format!(
            "cert.serialNumber {text} but the certificate's serial number is {}",
            canonical_hex(&actual)
        ))
    }
}

/// `cert.validFrom` and `cert.validTo` against the certificate's (notBefore, notAfter).
pub fn validity(from: Option<&Value>, to: Option<&Value>, cert: (u64, u64)) -> Verdict {
    if from.is_none() && to.is_none() {
        return Verdict::Skip("cert.validFrom and cert.validTo absent".into());
    }
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for (field, value, actual, what) in [
        ("validFrom", from, cert.0, "notBefore"),
        ("validTo", to, cert.1, "notAfter"),
    ] {
        let Some(value) = value else {
            continue;
        };
        let Some(text) = value.as_str() else {
            problems.push(format!("cert.{field} is not a string: {value}"));
            continue;
        };
        match parse_generalized_time(text) {
            Err(e) => problems.push(format!("cert.{field}: {e}")),
            Ok(t) if t == actual => checked.push(format!("{field} {text}")),
            Ok(t) => {
                let diff = i128::from(t) - i128::from(actual);
                problems.push(format!(
                    "cert.{field} {text} but the certificate's {what} is {} ({diff:+} s)",
                    generalized_time(actual)
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Verdict::Fail(problems.join("; "));
    }
    let mut d = format!("{} = the certificate's validity", checked.join(", "));
    for (field, value) in [("validFrom", from), ("validTo", to)] {
        if value.is_none() {
            d.push_str(&format!("; cert.{field} absent"));
        }
    }
    Verdict::Pass(d)
}

/// `cert.status`: one of the CSC values; `valid` only within the validity period, `expired`
/// not well within it (a server clock up to [`CLOCK_SKEW_SECS`] off is allowed for).
pub fn status(claimed: Option<&Value>, validity: Option<(u64, u64)>, now: u64) -> Verdict {
    let Some(claimed) = claimed else {
        return Verdict::Skip("cert.status absent".into());
    };
    let Some(text) = claimed.as_str() else {
        return Verdict::Fail(format!("cert.status is not a string: {claimed}"));
    };
    if !matches!(text, "valid" | "expired" | "revoked" | "suspended") {
        return Verdict::Fail(format!(
            "cert.status {text:?} is none of valid, expired, revoked, suspended"
        ));
    }
    let Some((from, to)) = validity else {
        return Verdict::Pass(format!(
            "{text} (no certificate to compare the validity with)"
        ));
    };
    let period = format!(
        "validity {} to {}, now {}",
        generalized_time(from),
        generalized_time(to),
        generalized_time(now)
    );
    let before = now.saturating_add(CLOCK_SKEW_SECS) < from;
    let after = now > to.saturating_add(CLOCK_SKEW_SECS);
    let well_within =
        now >= from.saturating_add(CLOCK_SKEW_SECS) && now.saturating_add(CLOCK_SKEW_SECS) <= to;
    match text {
        "valid" if after => Verdict::Fail(format!(
            "cert.status is valid but the certificate expired ({period})"
        )),
        "valid" if before => Verdict::Fail(format!(
            "cert.status is valid but the certificate is not valid yet ({period})"
        )),
        "expired" if well_within => Verdict::Fail(format!(
            "cert.status is expired but the certificate is within its validity ({period})"
        )),
        "expired" if !after => Verdict::Pass(format!(
            "expired: the certificate is not valid yet or about to expire, near enough \
             ({period})"
        )),
        "revoked" | "suspended" => Verdict::Pass(format!(
            "{text} (the suite does not check revocation; {period})"
        )),
        _ => Verdict::Pass(format!("{text}, consistent with the {period}")),
    }
}
