//! The `certInfo` fields of `credentials/info` (and of `credentials/list`'s `credentialInfos`)
//! against the end-entity certificate they describe (CSC v2 §11.5): `cert.serialNumber` (hex)
//! is the certificate's serial number as an integer, `cert.subjectDN` / `cert.issuerDN`
//! (RFC 4514 strings) name the same attributes as its subject and issuer, `cert.validFrom` /
//! `cert.validTo` (GeneralizedTime `YYYYMMDDHHMMSSZ`) are its validity to the second, and
//! `cert.status` is one of the spec's values and, when `valid` or `expired`, agrees with the
//! validity period now.
//!
//! Names are compared as names, not as strings: the RFC 4514 string is parsed here (escapes,
//! `#hex` values, multi-valued RDNs, short names or dotted OIDs for attribute types) and its
//! RDNs compared with the certificate's, attribute by attribute (type OID and value; a
//! multi-valued RDN is a set). RFC 4514 writes the RDNs last to first; a server that writes
//! them in the certificate's order is accepted too, a different set of RDNs is not.
//!
//! Layout: `fields` holds the serial-number, validity and status checks, `time` the
//! GeneralizedTime parsing and formatting they use, `rfc4514` the RFC 4514 string parser and
//! `names` the comparison of a parsed name with the certificate's.

mod fields;
mod names;
mod rfc4514;
#[cfg(test)]
mod tests;
mod time;

use serde_json::Value;
use x509_cert::Certificate;

pub use fields::{serial, status, validity};
pub use names::{dn, name_matches};
pub use rfc4514::{Attr, AttrValue, DnError, parse_rfc4514};
pub use time::{generalized_time, parse_generalized_time};

/// How far the server's clock may be from the suite's when `cert.status` is judged near the
/// ends of the validity period.
pub const CLOCK_SKEW_SECS: u64 = 300;

/// The outcome of one comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
    /// The server did not return the field (or the suite cannot judge it).
    Skip(String),
}

impl Verdict {
    pub fn is_fail(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }

    pub fn detail(&self) -> &str {
        match self {
            Verdict::Pass(d) | Verdict::Fail(d) | Verdict::Skip(d) => d,
        }
    }
}

/// One verdict per group of `cert` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfoVerdicts {
    pub serial: Verdict,
    pub subject: Verdict,
    pub issuer: Verdict,
    pub validity: Verdict,
    pub status: Verdict,
}

impl CertInfoVerdicts {
    /// (field group, verdict) in report order.
    pub fn all(&self) -> [(&'static str, &Verdict); 5] {
        [
            ("serialNumber", &self.serial),
            ("subjectDN", &self.subject),
            ("issuerDN", &self.issuer),
            ("validFrom/validTo", &self.validity),
            ("status", &self.status),
        ]
    }

    /// The verdicts as one: FAIL if any failed, SKIP if all skipped, else PASS.
    pub fn combined(&self) -> Verdict {
        let all = self.all();
        let failed: Vec<String> = all
            .iter()
            .filter(|(_, v)| v.is_fail())
            .map(|(f, v)| format!("{f}: {}", v.detail()))
            .collect();
        if !failed.is_empty() {
            return Verdict::Fail(failed.join("; "));
        }
        let passed: Vec<&str> = all
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Pass(_)))
            .map(|(f, _)| *f)
            .collect();
        if passed.is_empty() {
            return Verdict::Skip(format!(
                "no field to check ({})",
                all.iter()
                    .map(|(f, v)| format!("{f}: {}", v.detail()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        let skipped: Vec<&str> = all
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Skip(_)))
            .map(|(f, _)| *f)
            .collect();
        let mut d = format!("{} match the certificate", passed.join(", "));
        if !skipped.is_empty() {
            d.push_str(&format!(" (not checked: {})", skipped.join(", ")));
        }
        Verdict::Pass(d)
    }
}

/// Compare the `cert` object of a credential's information with `leaf` (its end-entity
/// certificate, if it had a usable one) at Unix time `now`.
pub fn check(cert: &Value, leaf: Option<&Certificate>, now: u64) -> CertInfoVerdicts {
    let field = |k: &str| cert.get(k);
    let Some(leaf) = leaf else {
        let why = "no end-entity certificate to compare with";
        let skip = || Verdict::Skip(why.into());
        return CertInfoVerdicts {
            serial: skip(),
            subject: skip(),
            issuer: skip(),
            validity: skip(),
            status: status(field("status"), None, now),
        };
    };
    let tbs = &leaf.tbs_certificate;
    let period = (
        tbs.validity.not_before.to_unix_duration().as_secs(),
        tbs.validity.not_after.to_unix_duration().as_secs(),
    );
    CertInfoVerdicts {
        serial: serial(field("serialNumber"), tbs.serial_number.as_bytes()),
        subject: dn("subjectDN", field("subjectDN"), &tbs.subject, "subject"),
        issuer: dn("issuerDN", field("issuerDN"), &tbs.issuer, "issuer"),
        validity: validity(field("validFrom"), field("validTo"), period),
        status: status(field("status"), Some(period), now),
    }
}
