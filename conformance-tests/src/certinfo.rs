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

use der::{Encode as _, Tag, Tagged as _};
use serde_json::Value;
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::Name;

use crate::formats::is_oid;

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

// ----- serial number -----

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

// ----- times -----

/// Seconds since the epoch of a GeneralizedTime string `YYYYMMDDHHMMSSZ`.
pub fn parse_generalized_time(s: &str) -> Result<u64, String> {
    let b = s.as_bytes();
    let shape = b.len() == 15
        && b.get(..14)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && b.get(14) == Some(&b'Z');
    if !shape {
        return Err(format!("{s:?} is not a GeneralizedTime YYYYMMDDHHMMSSZ"));
    }
    let num = |r: std::ops::Range<usize>| -> u16 {
        s.get(r)
            .and_then(|d| d.parse::<u16>().ok())
            .unwrap_or(u16::MAX)
    };
    let small = |r: std::ops::Range<usize>| u8::try_from(num(r)).unwrap_or(u8::MAX);
    der::DateTime::new(
        num(0..4),
        small(4..6),
        small(6..8),
        small(8..10),
        small(10..12),
        small(12..14),
    )
    .map(|t| t.unix_duration().as_secs())
    .map_err(|_| format!("{s:?} is not a valid date and time (years 1970-9999)"))
}

/// A Unix time as `YYYYMMDDHHMMSSZ`.
pub fn generalized_time(unix: u64) -> String {
    match der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix)) {
        Ok(t) => format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minutes(),
            t.seconds()
        ),
        Err(_) => format!("(Unix time {unix})"),
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

// ----- distinguished names -----

/// An attribute value as an RFC 4514 string gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// A string value (escapes resolved).
    Text(String),
    /// `#hex`: the BER encoding of the value.
    Ber(Vec<u8>),
}

/// One attribute type and value of an RFC 4514 string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// The type as a dotted OID.
    pub oid: String,
    pub value: AttrValue,
}

/// Why an RFC 4514 string could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnError {
    /// Not an RFC 4514 string.
    Syntax(String),
    /// An attribute type name the suite does not know (so it cannot compare it).
    UnknownType(String),
}

/// Attribute type names (lower case): RFC 4514 §3, RFC 4519 and the names common in
/// signing certificates (eIDAS subjects, OpenSSL's and Microsoft's spellings).
const TYPE_NAMES: &[(&str, &str)] = &[
    ("cn", "2.5.4.3"),
    ("commonname", "2.5.4.3"),
    ("sn", "2.5.4.4"),
    ("surname", "2.5.4.4"),
    ("serialnumber", "2.5.4.5"),
    ("c", "2.5.4.6"),
    ("countryname", "2.5.4.6"),
    ("l", "2.5.4.7"),
    ("localityname", "2.5.4.7"),
    ("st", "2.5.4.8"),
    ("s", "2.5.4.8"),
    ("stateorprovincename", "2.5.4.8"),
    ("street", "2.5.4.9"),
    ("streetaddress", "2.5.4.9"),
    ("o", "2.5.4.10"),
    ("organizationname", "2.5.4.10"),
    ("ou", "2.5.4.11"),
    ("organizationalunitname", "2.5.4.11"),
    ("title", "2.5.4.12"),
    ("description", "2.5.4.13"),
    ("businesscategory", "2.5.4.15"),
    ("postaladdress", "2.5.4.16"),
    ("postalcode", "2.5.4.17"),
    ("postofficebox", "2.5.4.18"),
    ("telephonenumber", "2.5.4.20"),
    ("name", "2.5.4.41"),
    ("gn", "2.5.4.42"),
    ("g", "2.5.4.42"),
    ("givenname", "2.5.4.42"),
    ("initials", "2.5.4.43"),
    ("generationqualifier", "2.5.4.44"),
    ("x500uniqueidentifier", "2.5.4.45"),
    ("dnqualifier", "2.5.4.46"),
    ("pseudonym", "2.5.4.65"),
    ("organizationidentifier", "2.5.4.97"),
    ("uid", "0.9.2342.19200300.100.1.1"),
    ("userid", "0.9.2342.19200300.100.1.1"),
    ("dc", "0.9.2342.19200300.100.1.25"),
    ("domaincomponent", "0.9.2342.19200300.100.1.25"),
    ("emailaddress", "1.2.840.113549.1.9.1"),
    ("email", "1.2.840.113549.1.9.1"),
    ("e", "1.2.840.113549.1.9.1"),
    ("jurisdictionlocalityname", "1.3.6.1.4.1.311.60.2.1.1"),
    ("jurisdictionl", "1.3.6.1.4.1.311.60.2.1.1"),
    (
        "jurisdictionstateorprovincename",
        "1.3.6.1.4.1.311.60.2.1.2",
    ),
    ("jurisdictionst", "1.3.6.1.4.1.311.60.2.1.2"),
    ("jurisdictioncountryname", "1.3.6.1.4.1.311.60.2.1.3"),
    ("jurisdictionc", "1.3.6.1.4.1.311.60.2.1.3"),
];

fn type_oid(name: &str) -> Result<String, DnError> {
    // RFC 4514 §3: a descriptor or a numeric OID; "OID.1.2.3" (RFC 1779) is accepted too.
    let numeric = name
        .strip_prefix("OID.")
        .or_else(|| name.strip_prefix("oid."))
        .unwrap_or(name);
    if numeric.starts_with(|c: char| c.is_ascii_digit()) {
        return if is_oid(numeric) {
            Ok(numeric.to_string())
        } else {
            Err(DnError::Syntax(format!(
                "attribute type {name:?} is not an OID"
            )))
        };
    }
    let lower = name.to_ascii_lowercase();
    TYPE_NAMES
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, oid)| (*oid).to_string())
        .ok_or_else(|| DnError::UnknownType(name.to_string()))
}

/// Parse an RFC 4514 string into its RDNs, in the order written (RFC 4514: last RDN of the
/// DER sequence first). Lenient where RFC 2253 §4 asks parsers to be: spaces around `,`, `+`
/// and `=`, and `;` as an RDN separator.
pub fn parse_rfc4514(s: &str) -> Result<Vec<Vec<Attr>>, DnError> {
    let syntax = |m: String| DnError::Syntax(m);
    let chars: Vec<char> = s.chars().collect();
    let mut pos = 0;
    let skip_ws = |pos: &mut usize| {
        while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
            *pos += 1;
        }
    };
    let mut rdns = Vec::new();
    skip_ws(&mut pos);
    if pos == chars.len() {
        return Ok(rdns);
    }
    let mut rdn = Vec::new();
    loop {
        // attributeType "="
        skip_ws(&mut pos);
        let start = pos;
        while chars
            .get(pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        {
            pos += 1;
        }
        let name: String = chars.get(start..pos).unwrap_or_default().iter().collect();
        skip_ws(&mut pos);
        if name.is_empty() || chars.get(pos) != Some(&'=') {
            return Err(syntax(format!(
                "expected an attribute type and '=' at character {}",
                start + 1
            )));
        }
        pos += 1;
        let oid = type_oid(&name)?;
        skip_ws(&mut pos);
        // attributeValue
        let value = if chars.get(pos) == Some(&'#') {
            pos += 1;
            let start = pos;
            while chars.get(pos).is_some_and(char::is_ascii_hexdigit) {
                pos += 1;
            }
            let digits: String = chars.get(start..pos).unwrap_or_default().iter().collect();
            if digits.is_empty() || !digits.len().is_multiple_of(2) {
                return Err(syntax(format!(
                    "{name}: '#' must be followed by pairs of hex digits"
                )));
            }
            skip_ws(&mut pos);
            AttrValue::Ber(hex_bytes(&digits))
        } else {
            if chars.get(pos) == Some(&'"') {
                return Err(syntax(format!(
                    "{name}: a quoted value (RFC 1779) is not RFC 4514"
                )));
            }
            let mut bytes = Vec::new();
            let mut significant = 0;
            while let Some(&c) = chars.get(pos) {
                match c {
                    ',' | ';' | '+' => break,
                    '\\' => {
                        let hex: String = chars
                            .get(pos + 1..pos + 3)
                            .unwrap_or_default()
                            .iter()
                            .collect();
                        match chars.get(pos + 1) {
                            _ if hex.len() == 2 && hex.chars().all(|h| h.is_ascii_hexdigit()) => {
                                bytes.extend(hex_bytes(&hex));
                                pos += 3;
                            }
                            Some(&e) if "\"+,;<>\\ #=".contains(e) => {
                                let mut buf = [0u8; 4];
                                bytes.extend_from_slice(e.encode_utf8(&mut buf).as_bytes());
                                pos += 2;
                            }
                            _ => {
                                return Err(syntax(format!(
                                    "{name}: invalid escape at character {}",
                                    pos + 1
                                )));
                            }
                        }
                        significant = bytes.len();
                    }
                    _ => {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        if !c.is_whitespace() {
                            significant = bytes.len();
                        }
                        pos += 1;
                    }
                }
            }
            bytes.truncate(significant);
            let text = String::from_utf8(bytes)
                .map_err(|_| syntax(format!("{name}: the escaped bytes are not UTF-8")))?;
            AttrValue::Text(text)
        };
        rdn.push(Attr { oid, value });
        match chars.get(pos) {
            None => {
                rdns.push(rdn);
                return Ok(rdns);
            }
            Some('+') => {}
            Some(',' | ';') => rdns.push(std::mem::take(&mut rdn)),
            Some(c) => {
                return Err(syntax(format!("unexpected {c:?} at character {}", pos + 1)));
            }
        }
        pos += 1;
    }
}

fn hex_bytes(digits: &str) -> Vec<u8> {
    digits
        .as_bytes()
        .chunks(2)
        .filter_map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

/// An attribute of the certificate: its type, the DER of its value and, for string types,
/// the text.
struct CertAttr {
    oid: String,
    der: Vec<u8>,
    text: Option<String>,
}

fn cert_attr(atv: &AttributeTypeAndValue) -> CertAttr {
    let raw = atv.value.value();
    let text = match atv.value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(raw).ok().map(str::to_owned),
        Tag::BmpString => {
            let units: Option<Vec<u16>> = raw
                .chunks(2)
                .map(|c| match c {
                    [hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
                    _ => None,
                })
                .collect();
            units.and_then(|u| String::from_utf16(&u).ok())
        }
        // T.61 is close enough to Latin-1 for the names met in practice.
        Tag::TeletexString => Some(raw.iter().map(|b| char::from(*b)).collect()),
        _ => None,
    };
    CertAttr {
        oid: atv.oid.to_string(),
        der: atv.value.to_der().unwrap_or_default(),
        text,
    }
}

fn attr_matches(claimed: &Attr, actual: &CertAttr) -> bool {
    claimed.oid == actual.oid
        && match &claimed.value {
            AttrValue::Ber(b) => *b == actual.der,
            AttrValue::Text(t) => actual.text.as_deref() == Some(t.as_str()),
        }
}

/// Whether two RDNs hold the same attributes (a set: any order).
fn rdn_matches(claimed: &[Attr], actual: &[CertAttr]) -> bool {
    if claimed.len() != actual.len() {
        return false;
    }
    let mut used = vec![false; actual.len()];
    claimed.iter().all(|c| {
        let found = actual
            .iter()
            .zip(used.iter_mut())
            .find(|(a, u)| !**u && attr_matches(c, a));
        match found {
            Some((_, u)) => {
                *u = true;
                true
            }
            None => false,
        }
    })
}

/// Whether an RFC 4514 string names `name`: the same RDNs, written last to first (RFC 4514)
/// or first to last. Returns which order matched.
pub fn name_matches(claimed: &str, name: &Name) -> Result<Option<&'static str>, DnError> {
    let parsed = parse_rfc4514(claimed)?;
    let actual: Vec<Vec<CertAttr>> = name
        .0
        .iter()
        .map(|rdn| rdn.0.iter().map(cert_attr).collect())
        .collect();
    let same = |rdns: &mut dyn Iterator<Item = &Vec<Attr>>| {
        parsed.len() == actual.len() && rdns.zip(actual.iter()).all(|(c, a)| rdn_matches(c, a))
    };
    if same(&mut parsed.iter().rev()) {
        return Ok(Some("RFC 4514 order"));
    }
    if same(&mut parsed.iter()) {
        return Ok(Some("certificate order"));
    }
    Ok(None)
}

/// `cert.subjectDN` / `cert.issuerDN` against the certificate's `what` (subject, issuer).
pub fn dn(field: &str, claimed: Option<&Value>, name: &Name, what: &str) -> Verdict {
    let Some(claimed) = claimed else {
        return Verdict::Skip(format!("cert.{field} absent"));
    };
    let Some(text) = claimed.as_str() else {
        return Verdict::Fail(format!("cert.{field} is not a string: {claimed}"));
    };
    match name_matches(text, name) {
        Ok(Some(order)) => {
            Verdict::Pass(format!("{text:?} names the certificate's {what} ({order})"))
        }
        Ok(None) => Verdict::Fail(format!(
            "cert.{field} {text:?} does not name the certificate's {what} {:?} (compared \
             attribute by attribute, RDNs in either order)",
            name.to_string()
        )),
        Err(DnError::Syntax(e)) => Verdict::Fail(format!(
            "cert.{field} {text:?} is not an RFC 4514 string: {e}"
        )),
        Err(DnError::UnknownType(t)) => Verdict::Skip(format!(
            "cert.{field} {text:?}: the suite does not know the attribute type name {t:?} \
             (a dotted OID would do)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode as _;
    use serde_json::json;

    /// A P-256 certificate made with OpenSSL 3.0: subject
    /// `CN=Alice\, Jr.+serialNumber=PNOBG-1,OU=Signing+OU=QA,O=Acmé\, Ltd.,C=BG` (two
    /// multi-valued RDNs, UTF-8, characters to escape), issuer
    /// `CN=Test Root,O=Conformance Test CA,C=BG`, serial F1E2D3C4B5A69788 (DER with a leading
    /// 00), valid 2026-12-07 16:25:32 to 2036-12-04 16:25:32 UTC.
    const LEAF: &str = "MIIBkzCCAToCCQDx4tPEtaaXiDAKBggqhkjOPQQDAjA/MQswCQYDVQQGEwJCRzEcMBoGA1UECgwTQ29uZm9ybWFuY2UgVGVzdCBDQTESMBAGA1UEAwwJVGVzdCBSb290MB4XDTI2MTIwNzE2MjUzMloXDTM2MTIwNDE2MjUzMlowZTELMAkGA1UEBhMCQkcxFDASBgNVBAoMC0FjbcOpLCBMdGQuMRswCQYDVQQLDAJRQTAOBgNVBAsMB1NpZ25pbmcxIzAOBgNVBAUTB1BOT0JHLTEwEQYDVQQDDApBbGljZSwgSnIuMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEL3fHn8bpUJ6YNMLTCtTOrVb5QqJNB3p7Yl7ppwpejrbYKWoCX/MB/Grkk8TN8eJHqkXMj0JOk13utE1QoagL8DAKBggqhkjOPQQDAgNHADBEAiANfmZTP/J+ana7FwTcq/lCyHTSn4yl58+BHgpNU+7TogIgASR0jZqflzCP6IVnhbSx4tRFxbCGyxZllcBd01EOtyM=";
    const SUBJECT: &str =
        "CN=Alice\\, Jr.+serialNumber=PNOBG-1,OU=Signing+OU=QA,O=Acmé\\, Ltd.,C=BG";
    const ISSUER: &str = "CN=Test Root,O=Conformance Test CA,C=BG";
    const NOT_BEFORE: u64 = 1_796_660_732; // 2026-12-07 16:25:32 UTC
    const NOT_AFTER: u64 = 2_112_020_732; // 2036-12-04 16:25:32 UTC
    const NOW: u64 = NOT_BEFORE + 86_400;

    fn leaf() -> Certificate {
        Certificate::from_der(&crate::formats::std_base64(LEAF).unwrap()).unwrap()
    }

    fn good() -> Value {
        json!({
            "status": "valid",
            "certificates": [LEAF],
            "serialNumber": "00F1E2D3C4B5A69788",
            "subjectDN": SUBJECT,
            "issuerDN": ISSUER,
            "validFrom": "20261207162532Z",
            "validTo": "20361204162532Z",
        })
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = good();
        v[key] = value;
        v
    }

    fn verdicts(cert: &Value) -> CertInfoVerdicts {
        check(cert, Some(&leaf()), NOW)
    }

    fn assert_pass(v: &Verdict) {
        assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
    }

    fn assert_fail(v: &Verdict, needle: &str) {
        match v {
            Verdict::Fail(d) => assert!(d.contains(needle), "{needle:?} not in {d}"),
            _ => panic!("expected a FAIL, got {v:?}"),
        }
    }

    #[test]
    fn the_fixture_is_what_its_comment_says() {
        let cert = leaf();
        let v = &cert.tbs_certificate.validity;
        assert_eq!(v.not_before.to_unix_duration().as_secs(), NOT_BEFORE);
        assert_eq!(v.not_after.to_unix_duration().as_secs(), NOT_AFTER);
        assert_eq!(
            cert.tbs_certificate.serial_number.as_bytes(),
            [0x00, 0xF1, 0xE2, 0xD3, 0xC4, 0xB5, 0xA6, 0x97, 0x88]
        );
    }

    #[test]
    fn matching_fields_pass() {
        let v = verdicts(&good());
        for (field, verdict) in v.all() {
            assert!(matches!(verdict, Verdict::Pass(_)), "{field}: {verdict:?}");
        }
        assert_pass(&v.combined());
        // Serial: any case, with or without leading zeros.
        for s in [
            "F1E2D3C4B5A69788",
            "f1e2d3c4b5a69788",
            "0000f1E2d3c4b5a69788",
        ] {
            assert_pass(&verdicts(&with("serialNumber", json!(s))).serial);
        }
        // The DN with OpenSSL's RFC 2253 output (UTF-8 as escaped bytes), spaces around the
        // separators, another order inside the multi-valued RDNs, short names in other cases,
        // dotted OIDs and `#hex` values.
        for dn in [
            "CN=Alice\\, Jr.+serialNumber=PNOBG-1,OU=Signing+OU=QA,O=Acm\\C3\\A9\\, Ltd.,C=BG",
            "cn = Alice\\, Jr. + SERIALNUMBER = PNOBG-1 , ou=QA+ou=Signing ; o=Acmé\\, Ltd.,c=BG",
            "2.5.4.5=PNOBG-1+2.5.4.3=Alice\\2C Jr.,OU=QA+OU=Signing,O=Acmé\\, Ltd.,2.5.4.6=#13024247",
            "OID.2.5.4.3=Alice\\, Jr.+serialNumber=#1307504E4F42472D31,OU=Signing+OU=QA,O=Acmé\\, Ltd.,C=BG",
        ] {
            assert_pass(&verdicts(&with("subjectDN", json!(dn))).subject);
        }
    }

    #[test]
    fn reversed_rdn_order_passes() {
        let reversed = "C=BG,O=Acmé\\, Ltd.,OU=Signing+OU=QA,CN=Alice\\, Jr.+serialNumber=PNOBG-1";
        let v = verdicts(&with("subjectDN", json!(reversed))).subject;
        assert!(v.detail().contains("certificate order"), "{v:?}");
        assert_pass(&v);
        assert_pass(
            &verdicts(&with(
                "issuerDN",
                json!("C=BG,O=Conformance Test CA,CN=Test Root"),
            ))
            .issuer,
        );
    }

    #[test]
    fn a_wrong_serial_fails() {
        for s in [
            "F1E2D3C4B5A69789",
            "F1E2D3C4B5A6978800",
            "1F1E2D3C4B5A69788",
        ] {
            assert_fail(
                &verdicts(&with("serialNumber", json!(s))).serial,
                "the certificate's serial number is F1E2D3C4B5A69788",
            );
        }
        for bad in [json!(""), json!("0x01"), json!("F1:E2"), json!(17)] {
            assert!(verdicts(&with("serialNumber", bad)).serial.is_fail());
        }
    }

    #[test]
    fn a_different_name_fails() {
        for dn in [
            // O and OU values swapped
            "CN=Alice\\, Jr.+serialNumber=PNOBG-1,OU=Acmé\\, Ltd.,O=Signing+O=QA,C=BG",
            // one value changed
            "CN=Alice\\, Jr.+serialNumber=PNOBG-2,OU=Signing+OU=QA,O=Acmé\\, Ltd.,C=BG",
            // an extra RDN
            "CN=Alice\\, Jr.+serialNumber=PNOBG-1,OU=Signing+OU=QA,O=Acmé\\, Ltd.,L=Sofia,C=BG",
            // an RDN missing
            "CN=Alice\\, Jr.+serialNumber=PNOBG-1,OU=Signing+OU=QA,O=Acmé\\, Ltd.",
            // the multi-valued RDN split in two
            "CN=Alice\\, Jr.,serialNumber=PNOBG-1,OU=Signing+OU=QA,O=Acmé\\, Ltd.,C=BG",
            // an extra attribute in a multi-valued RDN
            "CN=Alice\\, Jr.+serialNumber=PNOBG-1+UID=x,OU=Signing+OU=QA,O=Acmé\\, Ltd.,C=BG",
            // RDNs in neither order
            "CN=Alice\\, Jr.+serialNumber=PNOBG-1,O=Acmé\\, Ltd.,OU=Signing+OU=QA,C=BG",
            // another attribute type with the same value
            "CN=Alice\\, Jr.+serialNumber=PNOBG-1,OU=Signing+OU=QA,L=Acmé\\, Ltd.,C=BG",
            // case matters
            "CN=alice\\, jr.+serialNumber=PNOBG-1,OU=Signing+OU=QA,O=Acmé\\, Ltd.,C=BG",
            // a #hex value of another string type (UTF8String instead of PrintableString)
            "CN=Alice\\, Jr.+serialNumber=PNOBG-1,OU=Signing+OU=QA,O=Acmé\\, Ltd.,C=#0C024247",
        ] {
            assert_fail(
                &verdicts(&with("subjectDN", json!(dn))).subject,
                "does not name the certificate's subject",
            );
        }
        // The subject given as issuer, and the other way round.
        assert!(verdicts(&with("issuerDN", json!(SUBJECT))).issuer.is_fail());
        assert!(
            verdicts(&with("subjectDN", json!(ISSUER)))
                .subject
                .is_fail()
        );
        // Not RFC 4514 at all.
        for dn in [
            "/C=BG/O=Acme/CN=Alice",
            "CN=\"Alice, Jr.\"",
            "CN=Alice\\",
            "CN=Alice\\q",
            "=x",
            "CN=#ABC",
            "CN=\\C3",
            "1.2.x=a",
        ] {
            assert_fail(
                &verdicts(&with("subjectDN", json!(dn))).subject,
                "is not an RFC 4514 string",
            );
        }
        // An attribute type name the suite cannot map is SKIP, not FAIL.
        let unknown = verdicts(&with("subjectDN", json!("madeUpName=x"))).subject;
        assert!(matches!(unknown, Verdict::Skip(_)), "{unknown:?}");
    }

    #[test]
    fn validity_is_compared_to_the_second() {
        assert_fail(
            &verdicts(&with("validTo", json!("20361204162533Z"))).validity,
            "+1 s",
        );
        assert_fail(
            &verdicts(&with("validFrom", json!("20261207162531Z"))).validity,
            "-1 s",
        );
        for bad in [
            "2036-12-04T16:25:32Z",
            "361204162532Z",
            "20361204162532",
            "20361204162532.0Z",
            "20361304162532Z",
            "20361204162532+0000",
        ] {
            assert_fail(&verdicts(&with("validTo", json!(bad))).validity, "validTo");
        }
        assert_eq!(parse_generalized_time("19700101000000Z"), Ok(0));
        assert_eq!(generalized_time(NOT_AFTER), "20361204162532Z");
    }

    #[test]
    fn status_agrees_with_the_validity_period() {
        let at = |status: &str, now: u64| {
            check(&with("status", json!(status)), Some(&leaf()), now).status
        };
        assert_pass(&at("valid", NOW));
        assert_fail(&at("valid", NOT_AFTER + 3600), "expired");
        assert_fail(&at("valid", NOT_BEFORE - 3600), "not valid yet");
        assert_fail(&at("expired", NOW), "within its validity");
        assert_pass(&at("expired", NOT_AFTER + 1));
        // Within the clock skew of either end, either answer.
        assert_pass(&at("valid", NOT_AFTER + 10));
        assert_pass(&at("expired", NOT_AFTER - 10));
        // Not valid yet: CSC has no such status; expired is accepted.
        assert_pass(&at("expired", NOT_BEFORE - 3600));
        assert_pass(&at("revoked", NOW));
        assert_pass(&at("suspended", NOT_AFTER + 3600));
        assert_fail(&at("enabled", NOW), "none of");
        assert_fail(&at("Valid", NOW), "none of");
    }

    #[test]
    fn absent_fields_are_skipped() {
        let v = check(&json!({"certificates": [LEAF]}), Some(&leaf()), NOW);
        for (field, verdict) in v.all() {
            assert!(matches!(verdict, Verdict::Skip(_)), "{field}: {verdict:?}");
        }
        assert!(matches!(v.combined(), Verdict::Skip(_)));
        // Some present: those are checked, the rest named as not checked.
        let partial = check(
            &json!({"serialNumber": "F1E2D3C4B5A69788", "validTo": "20361204162532Z"}),
            Some(&leaf()),
            NOW,
        );
        let Verdict::Pass(d) = partial.combined() else {
            panic!("{partial:?}")
        };
        assert!(
            d.contains("not checked: subjectDN, issuerDN, status"),
            "{d}"
        );
        // No certificate: only the status value can be judged.
        let none = check(&good(), None, NOW);
        assert!(matches!(none.serial, Verdict::Skip(_)));
        assert_pass(&none.status);
        // One failure fails the combination and says which.
        let mut bad = good();
        bad["issuerDN"] = json!("CN=Someone Else");
        let Verdict::Fail(d) = verdicts(&bad).combined() else {
            panic!()
        };
        assert!(d.starts_with("issuerDN: "), "{d}");
    }

    #[test]
    fn rfc4514_parsing() {
        let text = |s: &str| AttrValue::Text(s.into());
        assert_eq!(parse_rfc4514("").unwrap(), Vec::<Vec<Attr>>::new());
        assert_eq!(
            parse_rfc4514("CN=\\ a\\,b\\+c\\\\d\\\"\\;\\<\\>\\=\\#x\\20 ,O=\\#1 ").unwrap(),
            vec![
                vec![Attr {
                    oid: "2.5.4.3".into(),
                    value: text(" a,b+c\\d\";<>=#x ")
                }],
                vec![Attr {
                    oid: "2.5.4.10".into(),
                    value: text("#1")
                }],
            ]
        );
        // '=' and '#' inside a value need no escape; a multi-valued RDN keeps its order here.
        assert_eq!(
            parse_rfc4514("UID=a=b#c+DC=example").unwrap(),
            vec![vec![
                Attr {
                    oid: "0.9.2342.19200300.100.1.1".into(),
                    value: text("a=b#c")
                },
                Attr {
                    oid: "0.9.2342.19200300.100.1.25".into(),
                    value: text("example")
                },
            ]]
        );
        assert_eq!(
            parse_rfc4514("1.2.3.4=#0C0178").unwrap(),
            vec![vec![Attr {
                oid: "1.2.3.4".into(),
                value: AttrValue::Ber(vec![0x0c, 0x01, 0x78])
            }]]
        );
        assert!(matches!(
            parse_rfc4514("foo=bar"),
            Err(DnError::UnknownType(t)) if t == "foo"
        ));
        for bad in [
            "CN",
            "CN=a,",
            "CN=a,,O=b",
            ",CN=a",
            "CN=a+",
            "CN=#12 x",
            "01.2=x",
        ] {
            assert!(
                matches!(parse_rfc4514(bad), Err(DnError::Syntax(_))),
                "{bad:?}: {:?}",
                parse_rfc4514(bad)
            );
        }
    }

    /// Quill's own formatting (src/pki/dn.rs): BMPString shown as text, TeletexString as
    /// `#hex` of its DER.
    #[test]
    fn names_with_other_string_types() {
        use der::asn1::{Any, SetOfVec};
        use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
        let atv = |oid: &str, tag: Tag, value: &[u8]| AttributeTypeAndValue {
            oid: oid.parse().unwrap(),
            value: Any::new(tag, value).unwrap(),
        };
        let rdn = |atvs: Vec<AttributeTypeAndValue>| {
            RelativeDistinguishedName(SetOfVec::try_from(atvs).unwrap())
        };
        let name = RdnSequence(vec![
            rdn(vec![atv("2.5.4.6", Tag::PrintableString, b"BG")]),
            rdn(vec![atv("2.5.4.10", Tag::BmpString, &[0, 0x41, 0, 0xe9])]),
            rdn(vec![atv("2.5.4.11", Tag::TeletexString, b"T61")]),
            rdn(vec![atv("1.2.3.4", Tag::Utf8String, b"x")]),
        ]);
        let quill = "1.2.3.4=#0c0178,OU=#1403543631,O=Aé,C=BG";
        assert_eq!(name_matches(quill, &name), Ok(Some("RFC 4514 order")));
        // The Teletex value as text (Latin-1) is accepted as well.
        assert_eq!(
            name_matches("1.2.3.4=x,OU=T61,O=Aé,C=BG", &name),
            Ok(Some("RFC 4514 order"))
        );
        assert_eq!(name_matches("1.2.3.4=y,OU=T61,O=Aé,C=BG", &name), Ok(None));
        // An empty name is the empty string.
        assert_eq!(
            name_matches("", &RdnSequence(vec![])),
            Ok(Some("RFC 4514 order"))
        );
        assert_eq!(name_matches("", &name), Ok(None));
    }
}
