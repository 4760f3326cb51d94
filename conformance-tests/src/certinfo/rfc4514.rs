//! The RFC 4514 string parser: attribute types (short names, dotted OIDs), values (escapes,
//! `#hex` BER) and multi-valued RDNs, as `cert.subjectDN` / `cert.issuerDN` write them.

use crate::formats::is_oid;

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
