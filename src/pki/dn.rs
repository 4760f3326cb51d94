//! Distinguished names: RFC 4514 strings for CSC `cert/subjectDN` / `cert/issuerDN`, and the
//! rebuilding of a parsed CA subject as an rcgen name so issued certificates name their issuer
//! with exactly the CA's subject encoding.

use der::{Encode as _, Tag, Tagged as _};
use rcgen::string::{Ia5String, PrintableString};
use rcgen::{DistinguishedName, DnType, DnValue};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::Name;

use super::PkiError;

/// Attribute short names: RFC 4514 §3 plus the common eIDAS subject attributes, named as
/// OpenSSL's RFC 2253 output names them. Anything else is written as a dotted OID.
const SHORT_NAMES: [(&str, &str); 14] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.4", "SN"),
    ("2.5.4.42", "GN"),
    ("2.5.4.97", "organizationIdentifier"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
];

/// RFC 4514 string form: RDNs last-to-first, separated by ",", multi-valued RDNs joined by "+".
pub(crate) fn rfc4514(name: &Name) -> String {
    let rdns: Vec<String> = name
        .0
        .iter()
        .map(|rdn| rdn.0.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The value of a string type that holds UTF-8 (or a subset of it), as text.
fn utf8_text(attr: &AttributeTypeAndValue) -> Option<&str> {
    match attr.value.tag() {
        Tag::NumericString | Tag::PrintableString | Tag::Utf8String | Tag::Ia5String => {
            std::str::from_utf8(attr.value.value()).ok()
        }
        _ => None,
    }
}

fn attribute(attr: &AttributeTypeAndValue) -> String {
    let oid = attr.oid.to_string();
    let short = SHORT_NAMES.iter().find(|(o, _)| *o == oid).map(|(_, s)| *s);
    let text = match attr.value.tag() {
        Tag::BmpString => utf16be(attr.value.value()),
        _ => utf8_text(attr).map(str::to_owned),
    };
    match (short, text) {
        (Some(short), Some(text)) => format!("{short}={}", escape(&text)),
        (short, _) => {
            // Not a string we can show: "#" and the hex of the BER encoding (RFC 4514 §2.4).
            let ber = attr.value.to_der().unwrap_or_default();
            format!("{}=#{}", short.unwrap_or(&oid), hex::encode(ber))
        }
    }
}

fn utf16be(data: &[u8]) -> Option<String> {
    let units: Vec<u16> = data
        .chunks(2)
        .map(|c| match c {
            [hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        })
        .collect::<Option<_>>()?;
    String::from_utf16(&units).ok()
}

/// RFC 4514 §2.4 escaping.
fn escape(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

/// Rebuild a parsed name as an rcgen name with the same attribute order and string types.
/// Refuses what rcgen cannot reproduce byte for byte (multi-valued RDNs, repeated attribute
/// types, string types other than UTF8String, PrintableString and IA5String).
pub(crate) fn to_rcgen(name: &Name) -> Result<DistinguishedName, PkiError> {
    let unsupported = |why: &str| PkiError::Parse(format!("CA subject: {why}"));
    let mut dn = DistinguishedName::new();
    for rdn in name.0.iter() {
        let mut attrs = rdn.0.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(unsupported("multi-valued RDN"));
        };
        let arcs: Vec<u64> = attr.oid.arcs().map(u64::from).collect();
        let ty = DnType::from_oid(&arcs);
        if dn.get(&ty).is_some() {
            return Err(unsupported("repeated attribute type"));
        }
        let text = utf8_text(attr).ok_or_else(|| unsupported("non-string attribute"))?;
        let value = match attr.value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(
                PrintableString::try_from(text).map_err(|_| unsupported("bad PrintableString"))?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                Ia5String::try_from(text).map_err(|_| unsupported("bad IA5String"))?,
            ),
            _ => return Err(unsupported("unsupported string type")),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape("#x "), "\\#x\\ ");
        assert_eq!(escape(" x#"), "\\ x#");
        assert_eq!(escape("Quill development CA"), "Quill development CA");
    }

    /// Every kind of value: short names, a dotted OID, a multi-valued RDN (in DER set order),
    /// PrintableString, UTF8String with escaping, BMPString, and a TeletexString shown as "#"
    /// and its hex; RDNs last to first.
    #[test]
    fn rfc4514_of_every_string_kind() {
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
            rdn(vec![
                atv("2.5.4.3", Tag::Utf8String, "Alice, Jr.".as_bytes()),
                atv("2.5.4.5", Tag::PrintableString, b"PNOBG-1"),
            ]),
        ]);
        assert_eq!(
            rfc4514(&name),
            "serialNumber=PNOBG-1+CN=Alice\\, Jr.,1.2.3.4=#0c0178,OU=#1403543631,O=Aé,C=BG"
        );
        // What rcgen cannot rebuild byte for byte is refused, by name.
        let country = || rdn(vec![atv("2.5.4.6", Tag::PrintableString, b"BG")]);
        let refused = |rdns: Vec<RelativeDistinguishedName>| {
            to_rcgen(&RdnSequence(rdns)).unwrap_err().to_string()
        };
        let bmp = name.0.get(1).unwrap().clone();
        let multi = name.0.get(4).unwrap().clone();
        assert!(refused(vec![country(), bmp]).contains("non-string attribute"));
        assert!(refused(vec![country(), multi]).contains("multi-valued RDN"));
        assert!(refused(vec![country(), country()]).contains("repeated attribute type"));
        let plain = RdnSequence(vec![
            country(),
            rdn(vec![atv("2.5.4.3", Tag::Utf8String, b"Quill CA")]),
        ]);
        assert_eq!(to_rcgen(&plain).unwrap().iter().count(), 2);
    }

    #[test]
    fn bmp_strings_decode() {
        assert_eq!(utf16be(&[0x00, 0x41, 0x00, 0xe9]).as_deref(), Some("Aé"));
        assert_eq!(utf16be(&[0x00]), None);
    }
}
