//! Unit tests of the `certInfo` checks, against a certificate made with OpenSSL.

use super::*;
use der::Decode as _;
use der::Tag;
use serde_json::json;
use x509_cert::attr::AttributeTypeAndValue;

/// A P-256 certificate made with OpenSSL 3.0: subject
/// `CN=Alice\, Jr.+serialNumber=PNOBG-1,OU=Signing+OU=QA,O=Acmé\, Ltd.,C=BG` (two
/// multi-valued RDNs, UTF-8, characters to escape), issuer
/// `CN=Test Root,O=Conformance Test CA,C=BG`, serial F1E2D3C4B5A69788 (DER with a leading
/// 00), valid 2026-12-07 16:25:32 to 2036-12-04 16:25:32 UTC.
const LEAF: &str = "MIIBkzCCAToCCQDx4tPEtaaXiDAKBggqhkjOPQQDAjA/MQswCQYDVQQGEwJCRzEcMBoGA1UECgwTQ29uZm9ybWFuY2UgVGVzdCBDQTESMBAGA1UEAwwJVGVzdCBSb290MB4XDTI2MTIwNzE2MjUzMloXDTM2MTIwNDE2MjUzMlowZTELMAkGA1UEBhMCQkcxFDASBgNVBAoMC0FjbcOpLCBMdGQuMRswCQYDVQQLDAJRQTAOBgNVBAsMB1NpZ25pbmcxIzAOBgNVBAUTB1BOT0JHLTEwEQYDVQQDDApBbGljZSwgSnIuMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEL3fHn8bpUJ6YNMLTCtTOrVb5QqJNB3p7Yl7ppwpejrbYKWoCX/MB/Grkk8TN8eJHqkXMj0JOk13utE1QoagL8DAKBggqhkjOPQQDAgNHADBEAiANfmZTP/J+ana7FwTcq/lCyHTSn4yl58+BHgpNU+7TogIgASR0jZqflzCP6IVnhbSx4tRFxbCGyxZllcBd01EOtyM=";
const SUBJECT: &str = "CN=Alice\\, Jr.+serialNumber=PNOBG-1,OU=Signing+OU=QA,O=Acmé\\, Ltd.,C=BG";
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
    let at =
        |status: &str, now: u64| check(&with("status", json!(status)), Some(&leaf()), now).status;
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
