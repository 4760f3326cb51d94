//! Names compared as names: a parsed RFC 4514 string against the certificate's subject or
//! issuer, RDN by RDN and attribute by attribute, in either order; and the
//! `cert.subjectDN` / `cert.issuerDN` verdicts built on it.

use der::{Encode as _, Tag, Tagged as _};
use serde_json::Value;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::Name;

use super::Verdict;
use super::rfc4514::{Attr, AttrValue, DnError, parse_rfc4514};

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
