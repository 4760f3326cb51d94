//! Property-based fuzzing of the request parsers and the encoding helpers (proptest; the case
//! count is bounded — `PROPTEST_CASES` raises it). Each property states what must hold for every
//! input, not just the examples in the unit tests: no panic, errors are the documented ones, and
//! encodings round-trip through independent decoders (RustCrypto's `rsa`, `p256`, `p384`, `der`).

use base64::Engine;
use proptest::prelude::*;
use serde_json::{Value, json};

use quill::api::credentials::{AuthorizeRequest, ExtendRequest, InfoRequest, ListRequest};
use quill::api::extract::parse_body;
use quill::api::signatures::SignHashRequest;
use quill::crypto::pss::{self, PssParams};
use quill::crypto::resolve::{Scheme, resolve};
use quill::crypto::{CryptoError, HashAlg, KeyType, SignAlgo, b64, digest_info, ecdsa};
use quill::error::CscError;

const HASHES: [HashAlg; 3] = [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];
const KEYS: [KeyType; 3] = [KeyType::Rsa, KeyType::EcP256, KeyType::EcP384];

fn hash_alg() -> impl Strategy<Value = HashAlg> {
    prop::sample::select(HASHES.to_vec())
}

fn key_type() -> impl Strategy<Value = KeyType> {
    prop::sample::select(KEYS.to_vec())
}

/// OIDs a client might send: every one Quill knows, weak ones, near-misses and garbage.
fn oid_like() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "2.16.840.1.101.3.4.2.1",
            "2.16.840.1.101.3.4.2.2",
            "2.16.840.1.101.3.4.2.3",
            "1.3.14.3.2.26",
            "2.16.840.1.101.3.4.2.4",
            "1.2.840.113549.1.1.1",
            "1.2.840.113549.1.1.10",
            "1.2.840.113549.1.1.11",
            "1.2.840.113549.1.1.12",
            "1.2.840.113549.1.1.13",
            "1.2.840.113549.1.1.5",
            "1.2.840.10045.4.3.2",
            "1.2.840.10045.4.3.3",
            "1.2.840.10045.4.3.4",
            "1.2.840.10045.2.1",
            "",
            "2.16.840.1.101.3.4.2.1.0",
            "02.16.840.1.101.3.4.2.1",
        ])
        .prop_map(str::to_string),
        "[0-9.]{0,40}",
        ".{0,40}",
    ]
}

/// Arbitrary JSON, biased towards the shapes CSC bodies have.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request object with CSC field names holding arbitrary values.
fn csc_object() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec![
        "credentialID",
        "SAD",
        "hashes",
        "hash",
        "hashAlgorithmOID",
        "hashAlgo",
        "signAlgo",
        "signAlgoParams",
        "numSignatures",
        "PIN",
        "OTP",
        "authData",
        "clientData",
        "userID",
        "maxResults",
        "pageToken",
        "certificates",
        "certInfo",
        "authInfo",
        "operationMode",
        "refresh_token",
        "rememberMe",
    ]);
    prop::collection::btree_map(field, json_value(), 0..8).prop_map(|m| {
        Value::Object(
            m.into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<serde_json::Map<_, _>>(),
        )
    })
}

/// Parse `body` as every request type; a refusal must be a 400 `invalid_request` whose text
/// does not contain `secret`.
fn parse_all(body: &[u8], secret: &str) {
    fn check<T: serde::de::DeserializeOwned>(body: &[u8], secret: &str) {
        if let Err(e) = parse_body::<T>(body) {
            assert!(matches!(e, CscError::InvalidRequest(_)), "{e:?}");
            assert_eq!(e.code(), "invalid_request");
            if secret.len() >= 4 {
                assert!(!e.to_string().contains(secret), "{e} echoes the input");
            }
        }
    }
    check::<AuthorizeRequest>(body, secret);
    check::<SignHashRequest>(body, secret);
    check::<ExtendRequest>(body, secret);
    check::<InfoRequest>(body, secret);
    check::<ListRequest>(body, secret);
}

/// 512 cases per property in a plain `cargo test`; `PROPTEST_CASES` (CI sets it) overrides.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn request_parsers_take_any_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        parse_all(&body, "");
    }

    #[test]
    fn request_parsers_take_any_csc_shaped_json(
        obj in csc_object(),
        pin in "[A-Za-z0-9]{6,12}",
    ) {
        // a PIN-like value planted in a wrongly typed field must not be echoed back
        let mut obj = obj;
        if let Some(map) = obj.as_object_mut() {
            map.insert("PIN".into(), json!([pin.clone()]));
        }
        parse_all(obj.to_string().as_bytes(), &pin);
    }

    #[test]
    fn well_typed_sign_hash_bodies_parse(
        cred in ".{0,40}",
        hashes in prop::collection::vec("[A-Za-z0-9+/=_-]{0,90}", 0..5),
        algo in oid_like(),
    ) {
        let body = json!({"credentialID": cred, "SAD": "x", "hashes": hashes, "signAlgo": algo});
        let req: SignHashRequest = parse_body(body.to_string().as_bytes()).unwrap();
        prop_assert_eq!(req.credential_id.as_deref(), Some(cred.as_str()));
        prop_assert_eq!(req.hashes, Some(hashes));
        prop_assert_eq!(req.sign_algo.as_deref(), Some(algo.as_str()));
    }

    #[test]
    fn base64_round_trips_in_every_dialect(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        prop_assert_eq!(b64::encode(&bytes), STANDARD.encode(&bytes));
        for s in [
            STANDARD.encode(&bytes),
            STANDARD_NO_PAD.encode(&bytes),
            URL_SAFE.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
        ] {
            prop_assert_eq!(b64::decode(&s).unwrap(), bytes.clone());
        }
    }

    #[test]
    fn base64_decoder_takes_any_string(s in ".{0,80}", hash in hash_alg()) {
        match b64::decode(&s) {
            Ok(bytes) => {
                // whatever it accepted re-encodes to the same data
                prop_assert_eq!(b64::decode(&b64::encode(&bytes)).unwrap(), bytes.clone());
                match b64::decode_digest(&s, hash) {
                    Ok(d) => prop_assert_eq!(d.len(), hash.digest_len()),
                    Err(e) => {
                        prop_assert_eq!(e, CryptoError::InvalidDigestLength);
                        prop_assert_ne!(bytes.len(), hash.digest_len());
                    }
                }
            }
            Err(e) => prop_assert_eq!(e, CryptoError::InvalidBase64),
        }
    }

    #[test]
    fn digest_info_is_der_and_matches_the_rsa_crate(
        hash in hash_alg(),
        bytes in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let expected_prefix: Vec<u8> = match hash {
            HashAlg::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>().prefix,
            HashAlg::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>().prefix,
            HashAlg::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>().prefix,
        }
        .to_vec();
        match digest_info::digest_info(hash, &bytes) {
            Ok(info) => {
                prop_assert_eq!(bytes.len(), hash.digest_len());
                prop_assert_eq!(&info[..expected_prefix.len()], &expected_prefix[..]);
                prop_assert_eq!(&info[expected_prefix.len()..], &bytes[..]);
                // and it is one well-formed DER SEQUENCE { AlgorithmIdentifier, OCTET STRING }
                let parsed = <DigestInfo as der::Decode>::from_der(&info).unwrap();
                prop_assert_eq!(parsed.algorithm.oid.to_string(), hash.oid());
                prop_assert_eq!(parsed.digest.as_bytes(), &bytes[..]);
            }
            Err(e) => {
                prop_assert_eq!(e, CryptoError::InvalidDigestLength);
                prop_assert_ne!(bytes.len(), hash.digest_len());
            }
        }
    }

    #[test]
    fn ecdsa_raw_to_der_round_trips_or_refuses(
        key in key_type(),
        raw in prop_oneof![
            prop::collection::vec(any::<u8>(), 64),
            prop::collection::vec(any::<u8>(), 96),
            prop::collection::vec(any::<u8>(), 0..130),
        ],
    ) {
        match (key, ecdsa::raw_to_der(key, &raw)) {
            (KeyType::EcP256, Ok(der)) => {
                let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
                prop_assert_eq!(sig.to_bytes().to_vec(), raw);
            }
            (KeyType::EcP384, Ok(der)) => {
                let sig = p384::ecdsa::Signature::from_der(&der).unwrap();
                prop_assert_eq!(sig.to_bytes().to_vec(), raw);
            }
            (KeyType::Rsa, r) => prop_assert_eq!(r, Err(CryptoError::SignAlgoNotForKey)),
            (_, Err(e)) => {
                prop_assert_eq!(e, CryptoError::InvalidSignature);
                // refused only when the length is wrong or a scalar is 0 or ≥ the group order
                let ok_len = if key == KeyType::EcP256 { 64 } else { 96 };
                if raw.len() == ok_len {
                    let (r, s) = raw.split_at(ok_len / 2);
                    let out_of_range = |x: &[u8]| {
                        x.iter().all(|b| *b == 0)
                            || if key == KeyType::EcP256 {
                                p256::NonZeroScalar::try_from(x).is_err()
                            } else {
                                p384::NonZeroScalar::try_from(x).is_err()
                            }
                    };
                    prop_assert!(out_of_range(r) || out_of_range(s));
                }
            }
        }
    }

    #[test]
    fn pss_params_round_trip(
        hash in hash_alg(),
        mgf_hash in hash_alg(),
        salt_len in 0u32..1024,
    ) {
        let params = PssParams { hash, mgf_hash, salt_len };
        let der = pss::encode(&params);
        prop_assert!(!der.is_empty());
        prop_assert_eq!(pss::parse(&der).unwrap(), params);
    }

    #[test]
    fn pss_parser_takes_mutated_and_random_der(
        hash in hash_alg(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        random in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut der = pss::encode(&PssParams { hash, mgf_hash: hash, salt_len: 32 });
        for (i, b) in &flips {
            let at = i.index(der.len());
            der[at] ^= b;
        }
        let cut = cut.index(der.len() + 1);
        for input in [&der[..], &der[..cut], &random[..]] {
            if let Ok(p) = pss::parse(input) {
                // anything accepted is a complete, sound parameter set
                prop_assert!(HASHES.contains(&p.hash) && HASHES.contains(&p.mgf_hash));
            }
        }
    }

    #[test]
    fn resolve_is_total_and_consistent(
        key in key_type(),
        modulus in prop::option::of(128usize..1024),
        algo in oid_like(),
        hash in prop::option::of(oid_like()),
        params in prop::option::of(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            (hash_alg(), hash_alg(), 0u32..600)
                .prop_map(|(hash, mgf_hash, salt_len)| pss::encode(&PssParams { hash, mgf_hash, salt_len })),
        ]),
    ) {
        if let Ok(plan) = resolve(key, modulus, &algo, hash.as_deref(), params.as_deref()) {
            prop_assert!(plan.algo.fits(key));
            prop_assert_eq!(SignAlgo::from_oid(&algo).unwrap(), plan.algo);
            if let Some(h) = &hash {
                prop_assert_eq!(h.as_str(), plan.hash.oid());
            }
            if let Some(implied) = plan.algo.implied_hash() {
                prop_assert_eq!(implied, plan.hash);
            }
            match plan.scheme {
                Scheme::Ecdsa => prop_assert!(key != KeyType::Rsa),
                Scheme::Pkcs1v15 => prop_assert_eq!(key, KeyType::Rsa),
                Scheme::Pss { salt_len, .. } => {
                    prop_assert_eq!(key, KeyType::Rsa);
                    if let Some(k) = modulus {
                        prop_assert!(salt_len as usize + plan.hash.digest_len() + 2 <= k);
                    }
                }
            }
        }
    }
}

/// `DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }`
/// (RFC 8017 §9.2), decoded independently of Quill's prefix tables.
#[derive(der::Sequence)]
struct DigestInfo {
    algorithm: spki::AlgorithmIdentifierOwned,
    digest: der::asn1::OctetString,
}
