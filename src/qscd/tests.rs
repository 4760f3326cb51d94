//! Tests of the PKCS#11 QSCD against a real SoftHSM2 token (or the module that
//! `QUILL_PKCS11_MODULE` names, with a free uninitialised slot for each token the tests make).
//! SoftHSM2 reads SOFTHSM2_CONF at C_Initialize, so the test command (`.ci/test`) points it at a
//! private token directory; each test creates its own token with a unique label.

use std::sync::Arc;

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::pkcs8::DecodePublicKey;
use secrecy::SecretString;
use sha2::Digest;

use super::pkcs11::{Pkcs11Config, Pkcs11Qscd};
use super::{KeySpec, Qscd, QscdError, SignMechanism};
use crate::crypto::{HashAlg, digest_info};

const SOFTHSM2: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The module under test: `QUILL_PKCS11_MODULE`, else SoftHSM2 (CI's). Another module runs the
/// tests that need no SoftHSM2 tool.
fn module() -> std::path::PathBuf {
    std::env::var_os("QUILL_PKCS11_MODULE")
        .filter(|m| !m.is_empty())
        .map_or_else(|| SOFTHSM2.into(), Into::into)
}

fn is_softhsm2() -> bool {
    module()
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("softhsm2"))
}

fn token(name: &str) -> Pkcs11Qscd {
    Pkcs11Qscd::open(&new_token(name)).unwrap()
}

/// A fresh token with a unique label; its configuration (open it as often as needed).
fn new_token(name: &str) -> Pkcs11Config {
    assert!(
        !is_softhsm2() || std::env::var_os("SOFTHSM2_CONF").is_some(),
        "run the tests through .ci/test (it sets SOFTHSM2_CONF to a private token directory)"
    );
    let label = format!("t-{name}-{}", crate::auth::token::random_id(4));
    let pin = SecretString::from("1234-user");
    // SoftHSM2 answers CKR_GENERAL_ERROR now and then when another test process creates a
    // token in the same directory while this one scans the slots: try again, a few times.
    let mut attempt = 0;
    let created = loop {
        attempt += 1;
        match Pkcs11Qscd::init_token(&module(), &label, &SecretString::from("so-pin-1"), &pin) {
            Err(QscdError::Device(_)) if attempt < 4 => {
                std::thread::sleep(std::time::Duration::from_millis(50 * attempt));
            }
            other => break other.unwrap(),
        }
    };
    assert!(created);
    Pkcs11Config {
        module: module(),
        token_label: label,
        pin,
        max_sessions: 3,
    }
}

#[test]
fn rsa_pkcs1_and_pss_verify() {
    let q = token("rsa");
    let spki = q
        .generate_key_pair(KeySpec::Rsa { bits: 2048 }, b"k1", "k1")
        .unwrap();
    assert_eq!(q.public_key(b"k1").unwrap(), spki);
    let pk = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
    let digest = sha2::Sha256::digest(b"hello").to_vec();
    let di = digest_info(HashAlg::Sha256, &digest).unwrap();
    let sig = q.sign(b"k1", SignMechanism::RsaPkcs1, &[&di]).unwrap();
    pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig[0])
        .unwrap();
    for salt in [32u64, 256 - 32 - 2] {
        let mech = SignMechanism::RsaPss {
            hash: HashAlg::Sha256,
            mgf_hash: HashAlg::Sha256,
            salt_len: salt,
        };
        let sig = q.sign(b"k1", mech, &[&digest]).unwrap();
        pk.verify(
            rsa::Pss::new_with_salt::<sha2::Sha256>(salt as usize),
            &digest,
            &sig[0],
        )
        .unwrap();
    }
    // a salt too long for the modulus is the token refusing the input, not a panic
    let mech = SignMechanism::RsaPss {
        hash: HashAlg::Sha256,
        mgf_hash: HashAlg::Sha256,
        salt_len: 300,
    };
    assert!(q.sign(b"k1", mech, &[&digest]).is_err());
    // and the token keeps working afterwards
    let sig = q.sign(b"k1", SignMechanism::RsaPkcs1, &[&di]).unwrap();
    pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig[0])
        .unwrap();
}

#[test]
fn ecdsa_p256_and_p384_verify_and_batch() {
    let q = token("ec");
    let spki = q.generate_key_pair(KeySpec::EcP256, b"e1", "e1").unwrap();
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
    let digests: Vec<Vec<u8>> = (0..100)
        .map(|i: u32| sha2::Sha256::digest(i.to_be_bytes()).to_vec())
        .collect();
    let refs: Vec<&[u8]> = digests.iter().map(Vec::as_slice).collect();
    let sigs = q.sign(b"e1", SignMechanism::Ecdsa, &refs).unwrap();
    assert_eq!(sigs.len(), 100);
    for (d, s) in digests.iter().zip(&sigs) {
        assert_eq!(s.len(), 64);
        vk.verify_prehash(d, &p256::ecdsa::Signature::from_slice(s).unwrap())
            .unwrap();
    }
    let spki = q.generate_key_pair(KeySpec::EcP384, b"e2", "e2").unwrap();
    let vk = p384::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
    let d = sha2::Sha384::digest(b"x").to_vec();
    let s = q.sign(b"e2", SignMechanism::Ecdsa, &[&d]).unwrap();
    assert_eq!(s[0].len(), 96);
    vk.verify_prehash(&d, &p384::ecdsa::Signature::from_slice(&s[0]).unwrap())
        .unwrap();
    assert!(matches!(
        q.sign(b"nope", SignMechanism::Ecdsa, &[&d]),
        Err(QscdError::KeyNotFound)
    ));
}

/// The attributes `types` of the first object `find` matches (those the token will tell).
fn attributes_of(q: &Pkcs11Qscd, find: &[Attribute], types: &[AttributeType]) -> Vec<Attribute> {
    q.with_session_for_tests(|s| {
        let h = s.find_objects(find).unwrap()[0];
        s.get_attributes(h, types).unwrap()
    })
}

#[test]
fn private_keys_are_sensitive_and_not_extractable() {
    let q = token("attrs");
    q.generate_key_pair(KeySpec::EcP256, b"x1", "x1").unwrap();
    q.generate_key_pair(KeySpec::Rsa { bits: 2048 }, b"x2", "x2")
        .unwrap();
    for id in [b"x1", b"x2"] {
        let attrs = attributes_of(
            &q,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(id.to_vec()),
            ],
            &[
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::Value,
                AttributeType::Sign,
                AttributeType::Decrypt,
                AttributeType::Unwrap,
                AttributeType::SignRecover,
                AttributeType::Derive,
            ],
        );
        assert!(attrs.contains(&Attribute::Extractable(false)), "{attrs:?}");
        assert!(attrs.contains(&Attribute::Sensitive(true)), "{attrs:?}");
        // it signs, and nothing else
        assert!(attrs.contains(&Attribute::Sign(true)), "{attrs:?}");
        for other in [
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::SignRecover(false),
            Attribute::Derive(false),
        ] {
            assert!(attrs.contains(&other), "{other:?} in {attrs:?}");
        }
        assert!(
            !attrs.iter().any(|a| matches!(a, Attribute::Value(_))),
            "CKA_VALUE must be unreadable"
        );
    }
    assert!(q.has_key(b"x1").unwrap());
    q.destroy_key_pair(b"x1").unwrap();
    assert!(!q.has_key(b"x1").unwrap());
    assert!(q.destroy_key_pair(b"x1").is_ok());
}

/// The derived secret (argon2's pepper) is the token's: the same for every process that opens
/// it, another for another token, and made by a key that only computes MACs.
#[test]
fn derived_secrets_belong_to_the_token() {
    let cfg = new_token("derive");
    let a = Pkcs11Qscd::open(&cfg).unwrap();
    let first = a.derive_secret(b"context").unwrap();
    assert_eq!(first.len(), 32);
    let b = Pkcs11Qscd::open(&cfg).unwrap();
    assert_eq!(
        b.derive_secret(b"context").unwrap(),
        first,
        "same token, same secret"
    );
    assert_ne!(b.derive_secret(b"other").unwrap(), first);
    assert_ne!(token("derive-2").derive_secret(b"context").unwrap(), first);
    let attrs = attributes_of(
        &a,
        &[Attribute::Label(
            super::pkcs11::MAC_KEY_LABEL.as_bytes().to_vec(),
        )],
        &[
            AttributeType::Extractable,
            AttributeType::Sensitive,
            AttributeType::Sign,
            AttributeType::Decrypt,
            AttributeType::Value,
        ],
    );
    for want in [
        Attribute::Extractable(false),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
    ] {
        assert!(attrs.contains(&want), "{want:?} in {attrs:?}");
    }
    assert!(!attrs.iter().any(|a| matches!(a, Attribute::Value(_))));
}

/// Online OTP codes are stored sealed to their credential: a copy of the database gives no
/// way to test a guess (as it did under an unkeyed hash of six digits).
#[test]
fn online_codes_are_sealed_to_their_credential() {
    use crate::secret::Secret;
    use crate::service::challenge::{code_matches, seal_code};
    let q = token("otp-seal");
    let code = Secret::new("042917");
    let a = seal_code(&q, "cred-1", &code).unwrap();
    let b = seal_code(&q, "cred-1", &code).unwrap();
    assert_ne!(a, b, "fresh IV each time");
    assert!(!a.windows(6).any(|w| w == b"042917"));
    assert!(code_matches(&q, "cred-1", &a, &code).unwrap());
    assert!(!code_matches(&q, "cred-1", &a, &Secret::new("042918")).unwrap());
    assert!(!code_matches(&q, "cred-1", &a, &Secret::new("0429170")).unwrap());
    assert!(
        !code_matches(&q, "cred-2", &a, &code).unwrap(),
        "bound to its credential"
    );
    // what an older Quill stored (a hash) matches nothing
    assert!(!code_matches(&q, "cred-1", &[7u8; 32], &code).unwrap());
}

#[test]
fn seal_and_unseal() {
    let q = token("seal");
    let a = q.seal(b"cred-1", b"totp secret bytes").unwrap();
    let b = q.seal(b"cred-1", b"totp secret bytes").unwrap();
    assert_ne!(a, b, "fresh IV each time");
    assert_eq!(
        q.unseal(b"cred-1", &a).unwrap().as_slice(),
        b"totp secret bytes"
    );
    assert!(matches!(q.unseal(b"cred-2", &a), Err(QscdError::Unseal)));
    let mut t = a.clone();
    let last = t.len() - 1;
    t[last] ^= 1;
    assert!(matches!(q.unseal(b"cred-1", &t), Err(QscdError::Unseal)));
    assert!(matches!(
        q.unseal(b"cred-1", &a[..5]),
        Err(QscdError::Unseal)
    ));
}

#[test]
fn pool_is_bounded_under_concurrency() {
    let q = Arc::new(token("pool"));
    let spki = q.generate_key_pair(KeySpec::EcP256, b"p1", "p1").unwrap();
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t: u32| {
            let (q, vk) = (q.clone(), vk);
            std::thread::spawn(move || {
                for i in 0..50u32 {
                    let d =
                        sha2::Sha256::digest([t.to_be_bytes(), i.to_be_bytes()].concat()).to_vec();
                    let s = q.sign(b"p1", SignMechanism::Ecdsa, &[&d]).unwrap();
                    vk.verify_prehash(&d, &p256::ecdsa::Signature::from_slice(&s[0]).unwrap())
                        .unwrap();
                    assert!(q.open_sessions() <= 3);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(q.open_sessions() <= 3);
    let d = sha2::Sha256::digest(b"after").to_vec();
    let s = q.sign(b"p1", SignMechanism::Ecdsa, &[&d]).unwrap();
    vk.verify_prehash(&d, &p256::ecdsa::Signature::from_slice(&s[0]).unwrap())
        .unwrap();
}

#[test]
fn objects_made_from_several_threads_at_once_are_all_made_once() {
    // SoftHSM2's object store fails concurrent object creation now and then (CKR_GENERAL_ERROR,
    // SoftHSMv2 #573): the QSCD creates and destroys objects one at a time. Four threads each
    // seal a secret (the first seals create the sealing key: exactly one must come of it) and
    // make and destroy P-256 key pairs.
    let cfg = new_token("objects");
    let q = Pkcs11Qscd::open(&cfg).unwrap();
    let made: Vec<(Vec<u8>, Vec<Vec<u8>>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4u8)
            .map(|t| {
                let q = &q;
                s.spawn(move || {
                    let sealed = q.seal(b"aad", &[t; 8]).unwrap();
                    let mut ids = Vec::new();
                    for i in 0..6u8 {
                        let id = vec![b'c', t, i];
                        q.generate_key_pair(KeySpec::EcP256, &id, "concurrent")
                            .unwrap();
                        if i % 3 == 2 {
                            q.destroy_key_pair(&id).unwrap();
                        } else {
                            ids.push(id);
                        }
                    }
                    (sealed, ids)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let seal_keys = q.with_session_for_tests(|s| {
        s.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(super::pkcs11::SEAL_KEY_LABEL.as_bytes().to_vec()),
        ])
        .unwrap()
        .len()
    });
    assert_eq!(seal_keys, 1, "one sealing key");
    for (t, (sealed, ids)) in (0..4u8).zip(&made) {
        assert_eq!(q.unseal(b"aad", sealed).unwrap().as_slice(), &[t; 8]);
        assert_eq!(ids.len(), 4);
        for id in ids {
            ec_sign_verifies(&q, id);
        }
    }
    // A fresh instance (no cached handles) finds the same keys, and none of the destroyed.
    let fresh = Pkcs11Qscd::open(&cfg).unwrap();
    for t in 0..4u8 {
        for i in 0..6u8 {
            assert_eq!(fresh.has_key(&[b'c', t, i]).unwrap(), i % 3 != 2, "{t} {i}");
        }
    }
}

fn ec_sign_verifies(q: &dyn Qscd, id: &[u8]) {
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&q.public_key(id).unwrap()).unwrap();
    let d = sha2::Sha256::digest(id).to_vec();
    let s = q.sign(id, SignMechanism::Ecdsa, &[&d]).unwrap();
    vk.verify_prehash(&d, &p256::ecdsa::Signature::from_slice(&s[0]).unwrap())
        .unwrap();
}

#[test]
fn the_first_key_lookup_indexes_every_key_and_later_keys_are_still_found() {
    let cfg = new_token("index");
    let maker = Pkcs11Qscd::open(&cfg).unwrap();
    let ids: Vec<Vec<u8>> = (0..5).map(|i| format!("ix-{i}").into_bytes()).collect();
    for id in &ids {
        maker.generate_key_pair(KeySpec::EcP256, id, "ix").unwrap();
    }
    // The key maker knows its own handles; a fresh instance (a server started later) knows none.
    assert_eq!(maker.cached_handles(), ids.len());
    let server = Pkcs11Qscd::open(&cfg).unwrap();
    assert_eq!(server.cached_handles(), 0);
    // Its first signature indexes the token's private keys: every key is cached at once.
    ec_sign_verifies(&server, &ids[3]);
    assert_eq!(server.cached_handles(), ids.len());
    for id in &ids {
        ec_sign_verifies(&server, id);
    }
    // A key made after the index (by another instance) is still found, by its CKA_ID, once.
    maker
        .generate_key_pair(KeySpec::EcP256, b"ix-late", "ix")
        .unwrap();
    ec_sign_verifies(&server, b"ix-late");
    assert_eq!(server.cached_handles(), ids.len() + 1);
    // A key the token does not hold is not found, and caches nothing.
    assert!(matches!(
        server.sign(b"ix-none", SignMechanism::Ecdsa, &[&[0u8; 32]]),
        Err(QscdError::KeyNotFound)
    ));
    assert_eq!(server.cached_handles(), ids.len() + 1);
    // A destroyed key is gone from the cache and from the token.
    server.destroy_key_pair(&ids[0]).unwrap();
    assert!(!server.has_key(&ids[0]).unwrap());
    assert!(!maker.has_key(b"ix-none").unwrap());
    // Past the index limit, keys are found one by one, on first use.
    let big = Pkcs11Qscd::open(&cfg).unwrap().with_index_max(3);
    ec_sign_verifies(&big, &ids[2]);
    assert_eq!(big.cached_handles(), 1);
    ec_sign_verifies(&big, &ids[4]);
    assert_eq!(big.cached_handles(), 2);
}

#[test]
fn token_set_spreads_keys_and_finds_them_in_any_order() {
    let (a, b) = (new_token("set-a"), new_token("set-b"));
    let set = super::open(&[a.clone(), b.clone()]).unwrap();
    let ids: Vec<Vec<u8>> = (0..4).map(|i| format!("multi-{i}").into_bytes()).collect();
    for id in &ids {
        set.generate_key_pair(KeySpec::EcP256, id, "m").unwrap();
    }
    // Each token, opened on its own, holds every other key: new keys alternate.
    let (only_a, only_b) = (Pkcs11Qscd::open(&a).unwrap(), Pkcs11Qscd::open(&b).unwrap());
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            only_a.has_key(id).unwrap(),
            i % 2 == 0,
            "key {i} on token a"
        );
        assert_eq!(
            only_b.has_key(id).unwrap(),
            i % 2 == 1,
            "key {i} on token b"
        );
        ec_sign_verifies(set.as_ref(), id);
    }
    // A new set in the other order, with nothing cached, finds every key where it is.
    let reversed = super::open(&[b.clone(), a.clone()]).unwrap();
    for id in &ids {
        assert!(reversed.has_key(id).unwrap());
        ec_sign_verifies(reversed.as_ref(), id);
    }
    let d = sha2::Sha256::digest(b"x").to_vec();
    assert!(!reversed.has_key(b"nowhere").unwrap());
    assert!(matches!(
        reversed.sign(b"nowhere", SignMechanism::Ecdsa, &[&d]),
        Err(QscdError::KeyNotFound)
    ));
    // A key removed behind the set's back is not found in its remembered place any more.
    only_b.destroy_key_pair(&ids[1]).unwrap();
    assert!(matches!(
        set.sign(&ids[1], SignMechanism::Ecdsa, &[&d]),
        Err(QscdError::KeyNotFound)
    ));
    set.destroy_key_pair(&ids[2]).unwrap();
    // (a fresh instance: `only_a` caches the handle it found before)
    assert!(!Pkcs11Qscd::open(&a).unwrap().has_key(&ids[2]).unwrap());
    // Sealing uses the first token's key: the primary opens it, the other token cannot.
    let sealed = set.seal(b"aad", b"secret").unwrap();
    assert_eq!(
        only_a.unseal(b"aad", &sealed).unwrap().as_slice(),
        b"secret"
    );
    assert_eq!(set.unseal(b"aad", &sealed).unwrap().as_slice(), b"secret");
    only_b.seal(b"aad", b"its own key").unwrap();
    assert!(matches!(
        only_b.unseal(b"aad", &sealed),
        Err(QscdError::Unseal)
    ));
    set.check().unwrap();
}

/// A configuration for a token that does not exist yet (and a label no other test uses).
fn future_token(name: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: module(),
        token_label: format!("t-{name}-{}", crate::auth::token::random_id(4)),
        pin: SecretString::from("1234-user"),
        max_sessions: 2,
    }
}

#[test]
fn open_waits_for_a_token_another_process_creates() {
    // A server that starts before its token is readable (an HSM still booting; SoftHSM2 that
    // caught another process writing the token file, which it then skips until the module is
    // initialised again) finds it once it is there. The token is made by another process, so
    // this process's module only sees it after a rescan. (Each test is a process of its own
    // under nextest, so nothing else here holds the module.)
    if !is_softhsm2() {
        eprintln!("skipped: the token is made with softhsm2-util");
        return;
    }
    let cfg = future_token("late");
    let started = std::time::Instant::now();
    let maker = {
        let label = cfg.token_label.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(400));
            // softhsm2-util meets the same race with the other test processes now and then
            // ("Could not get info about the token in slot 0"): it tries again, as they do.
            let mut tries = 0;
            loop {
                tries += 1;
                let out = std::process::Command::new("softhsm2-util")
                    .args(["--init-token", "--free", "--label", &label])
                    .args(["--pin", "1234-user", "--so-pin", "so-pin-1"])
                    .output()
                    .expect("softhsm2-util runs");
                if out.status.success() {
                    break;
                }
                assert!(tries < 5, "{out:?}");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
    };
    let q = Pkcs11Qscd::open_within(&cfg, std::time::Duration::from_secs(20)).unwrap();
    maker.join().unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    q.generate_key_pair(KeySpec::EcP256, b"late", "late")
        .unwrap();
    ec_sign_verifies(&q, b"late");
}

/// `token.object` (SoftHSM2's file store) without the user PIN's record: after the generation
/// number, each attribute is its type, its kind (2: a number, 3: bytes, with their length
/// first) and its value, every number 8 bytes big-endian.
fn without_user_pin(token_object: &[u8]) -> Vec<u8> {
    const CKA_OS_USERPIN: u64 = 0x8000_0000 + 0x5348 + 5;
    let number = |at: usize| u64::from_be_bytes(token_object[at..at + 8].try_into().unwrap());
    let mut out = token_object[..8].to_vec();
    let mut at = 8;
    let mut dropped = false;
    while at < token_object.len() {
        let (kind, start) = (number(at + 8), at);
        at += 16;
        at += match kind {
            2 => 8,
            3 => 8 + usize::try_from(number(at)).unwrap(),
            other => panic!("attribute kind {other} in token.object"),
        };
        if number(start) == CKA_OS_USERPIN {
            dropped = true;
        } else {
            out.extend_from_slice(&token_object[start..at]);
        }
    }
    assert!(dropped, "token.object holds a user PIN");
    out
}

#[test]
fn open_waits_for_a_token_file_another_process_is_rewriting() {
    // Every C_Login rewrites SoftHSM2's token file (the token's flags), and it reads as empty
    // for a moment. A process whose module is initialised at that moment (`quill enroll`
    // starting while another logs in) takes the user PIN as not set: its login fails with
    // CKR_USER_PIN_NOT_INITIALIZED until the module is initialised again. Seen as a failed
    // enrolment in `cli::concurrent_first_enrolments_…` (3 in 100 runs). Here the module is
    // initialised while the file lacks the PIN's record, which comes back 400 ms later.
    if !is_softhsm2() {
        eprintln!("skipped: SoftHSM2's token file is rewritten by hand");
        return;
    }
    let cfg = future_token("pinlater");
    let out = std::process::Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", &cfg.token_label])
        .args(["--pin", "1234-user", "--so-pin", "so-pin-1"])
        .output()
        .expect("softhsm2-util runs");
    assert!(out.status.success(), "{out:?}");
    let file = softhsm2_token_dir(&cfg.token_label).join("token.object");
    let whole = std::fs::read(&file).unwrap();
    std::fs::write(&file, without_user_pin(&whole)).unwrap();
    let started = std::time::Instant::now();
    let restorer = {
        let file = file.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(400));
            std::fs::write(&file, whole).unwrap();
        })
    };
    let opened = Pkcs11Qscd::open_within(&cfg, std::time::Duration::from_secs(20));
    restorer.join().unwrap();
    let q = opened.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    q.generate_key_pair(KeySpec::EcP256, b"pin", "pin").unwrap();
    ec_sign_verifies(&q, b"pin");
}

#[test]
fn open_gives_up_after_its_patience_and_never_retries_a_wrong_pin() {
    let started = std::time::Instant::now();
    let missing = Pkcs11Qscd::open_within(
        &future_token("never"),
        std::time::Duration::from_millis(500),
    );
    let waited = started.elapsed();
    match missing {
        Err(QscdError::Config(m)) => assert!(m.contains("no initialised token"), "{m}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert!(
        waited >= std::time::Duration::from_millis(300)
            && waited < std::time::Duration::from_secs(5),
        "{waited:?}"
    );

    // A wrong PIN fails on the first try, long before the patience runs out.
    let cfg = new_token("pin");
    let wrong = Pkcs11Config {
        pin: SecretString::from("not-the-pin"),
        ..cfg.clone()
    };
    let started = std::time::Instant::now();
    match Pkcs11Qscd::open_within(&wrong, std::time::Duration::from_secs(30)) {
        Err(QscdError::Config(m)) => assert!(m.contains("login"), "{m}"),
        other => panic!("expected a login failure, got {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // While an open token uses the module, a failed open does not re-initialise it under that
    // token's sessions: its idle session still answers.
    let open = Pkcs11Qscd::open(&cfg).unwrap();
    assert!(
        Pkcs11Qscd::open_within(
            &future_token("absent"),
            std::time::Duration::from_millis(300)
        )
        .is_err()
    );
    open.with_session_for_tests(|s| s.get_session_info())
        .unwrap();
    open.generate_key_pair(KeySpec::EcP256, b"after", "after")
        .unwrap();
    ec_sign_verifies(&open, b"after");
}

/// The first key (of scalars 1, 2, …) whose bare uncompressed point also parses as a DER OCTET
/// STRING: its first X byte equals the length of the rest.
fn ambiguous_point(scalar_len: usize, to_point: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    for i in 1..20_000u32 {
        let mut scalar = vec![0u8; scalar_len];
        scalar[scalar_len - 4..].copy_from_slice(&i.to_be_bytes());
        let Some(point) = to_point(&scalar) else {
            continue;
        };
        if usize::from(point[1]) == point.len() - 2 {
            return point;
        }
    }
    panic!("no such key among the first 20000");
}

#[test]
fn ec_points_are_read_bare_or_der_wrapped() {
    use super::pkcs11::ec_point_bytes;
    use der::{Decode, Encode};
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let p256_point = |s: &[u8]| {
        let pk = p256::SecretKey::from_slice(s).ok()?.public_key();
        Some(pk.to_encoded_point(false).as_bytes().to_vec())
    };
    let p384_point = |s: &[u8]| {
        let pk = p384::SecretKey::from_slice(s).ok()?.public_key();
        Some(pk.to_encoded_point(false).as_bytes().to_vec())
    };
    for (field_len, bare) in [
        (32, ambiguous_point(32, p256_point)),
        (48, ambiguous_point(48, p384_point)),
    ] {
        // The trap: this bare point (as some tokens answer) also parses as DER.
        assert!(der::asn1::OctetString::from_der(&bare).is_ok());
        assert_eq!(ec_point_bytes(bare.clone(), field_len), bare);
        let wrapped = der::asn1::OctetString::new(bare.clone())
            .unwrap()
            .to_der()
            .unwrap();
        assert_eq!(ec_point_bytes(wrapped, field_len), bare);
    }
    // Ordinary points, bare and wrapped, uncompressed and compressed.
    let pk = p256::SecretKey::from_slice(&[7u8; 32])
        .unwrap()
        .public_key();
    for compress in [false, true] {
        let bare = pk.to_encoded_point(compress).as_bytes().to_vec();
        let wrapped = der::asn1::OctetString::new(bare.clone())
            .unwrap()
            .to_der()
            .unwrap();
        assert_eq!(ec_point_bytes(bare.clone(), 32), bare);
        assert_eq!(ec_point_bytes(wrapped, 32), bare);
    }
}

/// The directory of the SoftHSM2 token labelled `label` (SoftHSM2's file store: one directory
/// per token under `directories.tokendir`, its label in `token.object`).
fn softhsm2_token_dir(label: &str) -> std::path::PathBuf {
    let conf = std::fs::read_to_string(std::env::var_os("SOFTHSM2_CONF").unwrap()).unwrap();
    let tokens = conf
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "directories.tokendir").then(|| value.trim().to_string())
        })
        .unwrap();
    std::fs::read_dir(tokens)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|dir| {
            std::fs::read(dir.join("token.object"))
                .is_ok_and(|t| t.windows(label.len()).any(|w| w == label.as_bytes()))
        })
        .unwrap()
}

/// SoftHSM2's file store makes a key pair in several writes of each object's file: first the
/// class, then every other attribute's default value one at a time (`CKA_TOKEN` false, an empty
/// `CKA_ID`), then the caller's template (`CKA_TOKEN` true, the CKA_ID), then the key itself.
/// A process that read an attribute of such a half-made key (C_GetAttributeValue) filled in its
/// own copy with defaults and wrote that back over the file; when its write came last, the
/// key was lost. Seen as a 500 ("credential key missing from token") on signHash after
/// enrolments ran in parallel (`cli::concurrent_first_enrolments_…`): the first key lookup of
/// an enrolment (or a server) indexes every private key on the token by reading its CKA_ID,
/// and read the key another enrolment was making at that moment.
///
/// Here the half-made key is what the other process has on disk after its second write: the
/// object file holds the class alone, and the token's generation counter says it changed.
/// Indexing the token, and listing its keys, must not write to it.
#[test]
fn key_lookups_leave_a_key_another_process_is_still_making_alone() {
    if !is_softhsm2() {
        return;
    }
    let cfg = new_token("half");
    let maker = Pkcs11Qscd::open(&cfg).unwrap();
    maker
        .generate_key_pair(KeySpec::EcP256, b"whole", "quill:whole")
        .unwrap();
    let dir = softhsm2_token_dir(&cfg.token_label);
    // The other process's file: generation 2, then CKA_CLASS (0) as an unsigned long (kind 2)
    // with the value CKO_PRIVATE_KEY (3), each number 8 bytes big-endian.
    let mut half = Vec::new();
    for n in [2u64, 0, 2, 3] {
        half.extend_from_slice(&n.to_be_bytes());
    }
    let object = dir.join("0badc0de-half-made.object");
    std::fs::write(&object, &half).unwrap();
    std::fs::write(dir.join("0badc0de-half-made.lock"), b"").unwrap();
    let bump_generation = || {
        let generation = dir.join("generation");
        let bytes: [u8; 8] = std::fs::read(&generation).unwrap().try_into().unwrap();
        let next = u64::from_be_bytes(bytes) + 1;
        std::fs::write(&generation, next.to_be_bytes()).unwrap();
    };
    bump_generation();
    // A fresh instance (a server, or another enrolment) indexes the token at its first lookup.
    let untouched = |after: &str| {
        let now = std::fs::read(&object).unwrap();
        assert!(
            now == half,
            "{after} wrote over the half-made key's file ({} bytes, were {})",
            now.len(),
            half.len()
        );
    };
    let reader = Pkcs11Qscd::open(&cfg).unwrap();
    assert!(reader.has_key(b"whole").unwrap());
    untouched("the index");
    ec_sign_verifies(&reader, b"whole");
    assert!(
        !reader.has_key(b"").unwrap(),
        "the half-made key is not indexed"
    );
    // Listing keys (`quill credential orphan-keys`) reads every key's CKA_ID and label too.
    let lister = Pkcs11Qscd::open(&cfg).unwrap();
    assert_eq!(
        lister.key_ids_labelled("quill:").unwrap(),
        vec![b"whole".to_vec()]
    );
    untouched("the listing");
    std::fs::remove_file(&object).unwrap();
    std::fs::remove_file(dir.join("0badc0de-half-made.lock")).unwrap();
    bump_generation();
    assert!(reader.has_key(b"whole").unwrap());
}
