//! Certificates, key consistency, which signAlgo to use for a key, and signature verification
//! with RustCrypto (`rsa`, `p256`, `p384`) against the credential's end-entity certificate.

use der::{Decode, Encode};
use serde_json::Value;
use sha2::Digest;
use x509_cert::Certificate;

use crate::formats::{b64, std_base64};

pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
pub const RSA_PSS: &str = "1.2.840.113549.1.1.10";
pub const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
pub const SHA384_RSA: &str = "1.2.840.113549.1.1.12";
pub const SHA512_RSA: &str = "1.2.840.113549.1.1.13";
pub const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
pub const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
pub const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
pub const ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
pub const P256_CURVE: &str = "1.2.840.10045.3.1.7";
pub const P384_CURVE: &str = "1.3.132.0.34";

/// A digest algorithm the suite hashes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn oid(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "2.16.840.1.101.3.4.2.1",
            HashAlg::Sha384 => "2.16.840.1.101.3.4.2.2",
            HashAlg::Sha512 => "2.16.840.1.101.3.4.2.3",
        }
    }

    pub fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// The end-entity key, as the certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    Rsa {
        bits: usize,
    },
    P256,
    P384,
    /// An EC key on a curve the suite cannot verify with.
    OtherEc {
        curve: String,
    },
    /// Any other key algorithm (by OID).
    Other {
        algorithm: String,
    },
}

impl KeyKind {
    pub fn describe(&self) -> String {
        match self {
            KeyKind::Rsa { bits } => format!("RSA-{bits}"),
            KeyKind::P256 => "EC P-256".into(),
            KeyKind::P384 => "EC P-384".into(),
            KeyKind::OtherEc { curve } => format!("EC on curve {curve}"),
            KeyKind::Other { algorithm } => format!("key algorithm {algorithm}"),
        }
    }

    fn is_rsa(&self) -> bool {
        matches!(self, KeyKind::Rsa { .. })
    }
}

/// The end-entity certificate's public key.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub kind: KeyKind,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
}

/// Parse base64 DER certificates; each must be DER, not only decode (see [`ber_part`]).
pub fn parse_certificates(list: &[Value]) -> Result<Vec<Certificate>, String> {
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let text = v
                .as_str()
                .ok_or_else(|| format!("certificates[{i}] is not a string"))?;
            let der = std_base64(text).map_err(|e| format!("certificates[{i}]: {e}"))?;
            let cert = Certificate::from_der(&der)
                .map_err(|e| format!("certificates[{i}] is not a DER X.509 certificate: {e}"))?;
            match ber_part(&cert, &der) {
                None => Ok(cert),
                Some(part) => Err(format!(
                    "certificates[{i}] is BER, not DER (RFC 5280 §4.1): encoding {part} again \
                     changes it, e.g. a DEFAULT value written out; clients that re-encode \
                     what they parse (asn1crypto, under pyHanko) then hold two encodings of it"
                )),
            }
        })
        .collect()
}

/// The first of `cert.certificates` (the end entity) of a credential's information, if it
/// decodes; DER strictness and the chain are the `certificate chain` row's business.
pub fn first_certificate(info: &Value) -> Option<Certificate> {
    let text = info.pointer("/cert/certificates/0")?.as_str()?;
    Certificate::from_der(&std_base64(text).ok()?).ok()
}

/// Does `T`, decoded from `value`, encode to other bytes (or not decode at all)?
fn changes<T: der::DecodeOwned + Encode>(value: &[u8]) -> bool {
    T::from_der(value)
        .and_then(|t| t.to_der())
        .map_or(true, |again| again != value)
}

/// The part of a certificate that is not DER, if any. The decoder takes a DEFAULT value written
/// out (an extension's `critical FALSE`, basicConstraints' `cA FALSE`), which DER forbids, and
/// encoding drops it: so compare the certificate with its encoding again, and the values of
/// the common extensions (opaque OCTET STRINGs to the certificate's decoder) with theirs.
fn ber_part(cert: &Certificate, der: &[u8]) -> Option<String> {
    use der::oid::AssociatedOid;
    use x509_cert::ext::pkix;
    if cert.to_der().ok().as_deref() != Some(der) {
        return Some("the certificate".to_owned());
    }
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|ext| {
            let value = ext.extn_value.as_bytes();
            match ext.extn_id {
                pkix::BasicConstraints::OID => changes::<pkix::BasicConstraints>(value),
                pkix::KeyUsage::OID => changes::<pkix::KeyUsage>(value),
                pkix::ExtendedKeyUsage::OID => changes::<pkix::ExtendedKeyUsage>(value),
                pkix::SubjectKeyIdentifier::OID => changes::<pkix::SubjectKeyIdentifier>(value),
                pkix::AuthorityKeyIdentifier::OID => changes::<pkix::AuthorityKeyIdentifier>(value),
                _ => false,
            }
        })
        .map(|ext| format!("extension {}", ext.extn_id))
}

/// The chain is end-entity first: each certificate's issuer is the next one's subject.
pub fn check_chain_order(certs: &[Certificate]) -> Result<(), String> {
    for (i, pair) in certs.windows(2).enumerate() {
        if let [child, parent] = pair
            && child.tbs_certificate.issuer != parent.tbs_certificate.subject
        {
            return Err(format!(
                "certificates[{i}] issuer ({}) is not certificates[{}] subject ({})",
                child.tbs_certificate.issuer,
                i + 1,
                parent.tbs_certificate.subject
            ));
        }
    }
    Ok(())
}

/// The key of a certificate.
pub fn leaf_key(cert: &Certificate) -> Result<Leaf, String> {
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("cannot encode the SubjectPublicKeyInfo: {e}"))?;
    let parsed = spki::SubjectPublicKeyInfoRef::try_from(spki.as_slice())
        .map_err(|e| format!("cannot parse the SubjectPublicKeyInfo: {e}"))?;
    let (alg, param) = parsed
        .algorithm
        .oids()
        .map_err(|e| format!("key algorithm parameters: {e}"))?;
    let kind = match (alg.to_string().as_str(), param.map(|p| p.to_string())) {
        (RSA_ENCRYPTION, _) => {
            use rsa::pkcs8::DecodePublicKey;
            use rsa::traits::PublicKeyParts;
            let pk = rsa::RsaPublicKey::from_public_key_der(&spki)
                .map_err(|e| format!("RSA public key: {e}"))?;
            KeyKind::Rsa {
                bits: pk.n().bits(),
            }
        }
        (EC_PUBLIC_KEY, Some(c)) if c == P256_CURVE => KeyKind::P256,
        (EC_PUBLIC_KEY, Some(c)) if c == P384_CURVE => KeyKind::P384,
        (EC_PUBLIC_KEY, c) => KeyKind::OtherEc {
            curve: c.unwrap_or_default(),
        },
        (other, _) => KeyKind::Other {
            algorithm: other.to_string(),
        },
    };
    Ok(Leaf { kind, spki })
}

fn is_rsa_sign_oid(oid: &str) -> bool {
    oid.starts_with("1.2.840.113549.1.1.")
}

fn is_ec_sign_oid(oid: &str) -> bool {
    oid.starts_with("1.2.840.10045.4.")
        || oid == EC_PUBLIC_KEY
        || oid.starts_with("0.4.0.127.0.7.1.1.4.1.")
}

/// Whether `credentials/info`'s `key` object agrees with the certificate's key; `Ok(None)`
/// when the suite does not know the key type.
pub fn key_matches(leaf: &Leaf, key: &Value) -> Result<Option<String>, String> {
    let len = key.get("len").and_then(crate::formats::whole);
    let curve = key.get("curve").and_then(Value::as_str);
    let algos: Vec<&str> = key
        .get("algo")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let (want_len, want_curve) = match &leaf.kind {
        KeyKind::Rsa { bits } => (*bits, None),
        KeyKind::P256 => (256, Some(P256_CURVE)),
        KeyKind::P384 => (384, Some(P384_CURVE)),
        KeyKind::OtherEc { .. } | KeyKind::Other { .. } => return Ok(None),
    };
    let mut problems = Vec::new();
    if len != u64::try_from(want_len).ok() {
        problems.push(format!(
            "key.len is {} but the certificate's key has {want_len} bits",
            len.map_or("absent".to_string(), |l| l.to_string())
        ));
    }
    if curve != want_curve {
        problems.push(format!(
            "key.curve is {} but should be {}",
            curve.unwrap_or("absent"),
            want_curve.unwrap_or("absent (RSA key)")
        ));
    }
    let foreign: Vec<&str> = algos
        .iter()
        .copied()
        .filter(|a| {
            if leaf.kind.is_rsa() {
                is_ec_sign_oid(a)
            } else {
                is_rsa_sign_oid(a)
            }
        })
        .collect();
    if !foreign.is_empty() {
        problems.push(format!(
            "key.algo lists {foreign:?}, which a {} key cannot do",
            leaf.kind.describe()
        ));
    }
    if algos.is_empty() {
        problems.push("key.algo is empty".into());
    }
    if problems.is_empty() {
        Ok(Some(format!(
            "{} key, len {want_len}{}, key.algo {algos:?}",
            leaf.kind.describe(),
            want_curve
                .map(|c| format!(", curve {c}"))
                .unwrap_or_default()
        )))
    } else {
        Err(problems.join("; "))
    }
}

/// How one hash gets signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignPlan {
    pub sign_algo: &'static str,
    pub label: &'static str,
    pub hash: HashAlg,
    /// Send `hashAlgorithmOID` (signAlgo does not imply the digest).
    pub send_hash_oid: bool,
    /// RSASSA-PSS with MGF1 of the same digest and a salt as long as the digest.
    pub pss: bool,
}

impl SignPlan {
    /// `signAlgoParams` (base64 DER RSASSA-PSS-params) when needed.
    pub fn params_b64(&self) -> Result<Option<String>, String> {
        if !self.pss {
            return Ok(None);
        }
        let salt = u8::try_from(self.hash.digest_len()).map_err(|_| "salt too long".to_string())?;
        let params = match self.hash {
            HashAlg::Sha256 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha256>(salt),
            HashAlg::Sha384 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha384>(salt),
            HashAlg::Sha512 => rsa::pkcs1::RsaPssParams::new::<sha2::Sha512>(salt),
        };
        let der = params
            .to_der()
            .map_err(|e| format!("cannot encode RSASSA-PSS-params: {e}"))?;
        Ok(Some(b64(&der)))
    }

    /// `label with SHA-…` for report details.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}) over {}",
            self.label,
            self.sign_algo,
            self.hash.name()
        )
    }
}

const fn plan(
    sign_algo: &'static str,
    label: &'static str,
    hash: HashAlg,
    send_hash_oid: bool,
    pss: bool,
) -> SignPlan {
    SignPlan {
        sign_algo,
        label,
        hash,
        send_hash_oid,
        pss,
    }
}

fn candidates(kind: &KeyKind, hash: HashAlg) -> Vec<SignPlan> {
    match kind {
        KeyKind::Rsa { .. } => {
            let combined = match hash {
                HashAlg::Sha256 => plan(SHA256_RSA, "sha256WithRSAEncryption", hash, false, false),
                HashAlg::Sha384 => plan(SHA384_RSA, "sha384WithRSAEncryption", hash, false, false),
                HashAlg::Sha512 => plan(SHA512_RSA, "sha512WithRSAEncryption", hash, false, false),
            };
            vec![
                combined,
                plan(RSA_PSS, "RSASSA-PSS", hash, true, true),
                plan(
                    RSA_ENCRYPTION,
                    "rsaEncryption + hashAlgorithmOID",
                    hash,
                    true,
                    false,
                ),
            ]
        }
        KeyKind::P256 | KeyKind::P384 => {
            let combined = match hash {
                HashAlg::Sha256 => plan(ECDSA_SHA256, "ecdsa-with-SHA256", hash, false, false),
                HashAlg::Sha384 => plan(ECDSA_SHA384, "ecdsa-with-SHA384", hash, false, false),
                HashAlg::Sha512 => plan(ECDSA_SHA512, "ecdsa-with-SHA512", hash, false, false),
            };
            vec![
                combined,
                plan(
                    EC_PUBLIC_KEY,
                    "id-ecPublicKey + hashAlgorithmOID",
                    hash,
                    true,
                    false,
                ),
            ]
        }
        KeyKind::OtherEc { .. } | KeyKind::Other { .. } => Vec::new(),
    }
}

/// The digest algorithm and the signAlgos (most preferred first, all with that one digest, all
/// in `key.algo`) the suite uses for a key. `None` when the suite can do nothing with it.
pub fn plans_for(kind: &KeyKind, key_algo: &[&str]) -> Option<(HashAlg, Vec<SignPlan>)> {
    let order = match kind {
        KeyKind::P384 => [HashAlg::Sha384, HashAlg::Sha256, HashAlg::Sha512],
        _ => [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512],
    };
    let mut best: Option<(HashAlg, Vec<SignPlan>)> = None;
    for hash in order {
        let plans: Vec<SignPlan> = candidates(kind, hash)
            .into_iter()
            .filter(|p| key_algo.contains(&p.sign_algo))
            .collect();
        if plans.len() > best.as_ref().map_or(0, |(_, b)| b.len()) {
            best = Some((hash, plans));
        }
    }
    best
}

/// How a CMS SignerInfo made by someone else (a TSA) is verified: its signatureAlgorithm
/// (with its parameters) and its digestAlgorithm `digest`, for a key of `kind`. An error when
/// the suite cannot verify that combination.
pub fn cms_plan(
    kind: &KeyKind,
    signature_algorithm: &spki::AlgorithmIdentifierOwned,
    digest: HashAlg,
) -> Result<SignPlan, String> {
    let oid = signature_algorithm.oid.to_string();
    let plan = candidates(kind, digest)
        .into_iter()
        .find(|p| p.sign_algo == oid)
        .ok_or_else(|| {
            format!(
                "signatureAlgorithm {oid} with digestAlgorithm {} and a {} key: not a \
                 combination the suite verifies",
                digest.name(),
                kind.describe()
            )
        })?;
    if plan.pss {
        let der = signature_algorithm
            .parameters
            .as_ref()
            .ok_or("RSASSA-PSS without parameters")?
            .to_der()
            .map_err(|e| format!("cannot encode the RSASSA-PSS parameters: {e}"))?;
        let params = rsa::pkcs1::RsaPssParams::from_der(&der)
            .map_err(|e| format!("RSASSA-PSS-params do not parse: {e}"))?;
        let mgf_hash = params.mask_gen.parameters.map(|p| p.oid.to_string());
        if params.hash.oid.to_string() != digest.oid()
            || mgf_hash.as_deref() != Some(digest.oid())
            || usize::from(params.salt_len) != digest.digest_len()
        {
            return Err(format!(
                "RSASSA-PSS with hash {}, MGF1 hash {}, salt {}: the suite verifies only the \
                 digestAlgorithm ({}) for both and a salt as long as the digest",
                params.hash.oid,
                mgf_hash.unwrap_or_else(|| "absent".into()),
                params.salt_len,
                digest.name()
            ));
        }
    }
    Ok(plan)
}

/// A signAlgo OID that is well formed but not in `key.algo` (for the "unsupported signAlgo"
/// check).
pub fn unsupported_sign_algo(key_algo: &[&str]) -> &'static str {
    [
        ECDSA_SHA256,
        SHA256_RSA,
        ECDSA_SHA512,
        SHA512_RSA,
        "1.2.840.113549.1.1.5",
        "1.3.101.112",
    ]
    .into_iter()
    .find(|o| !key_algo.contains(o))
    .unwrap_or("1.3.6.1.4.1.55555.1")
}

/// Verify one signature value over `digest` with the certificate's key.
pub fn verify(leaf: &Leaf, plan: &SignPlan, digest: &[u8], sig: &[u8]) -> Result<(), String> {
    match &leaf.kind {
        KeyKind::Rsa { .. } => {
            use rsa::pkcs8::DecodePublicKey;
            use rsa::traits::PublicKeyParts;
            let pk = rsa::RsaPublicKey::from_public_key_der(&leaf.spki)
                .map_err(|e| format!("RSA public key: {e}"))?;
            if sig.len() != pk.size() {
                return Err(format!(
                    "an RSA signature is {} bytes (the modulus length), got {}",
                    pk.size(),
                    sig.len()
                ));
            }
            let salt = plan.hash.digest_len();
            let result = match (plan.pss, plan.hash) {
                (false, HashAlg::Sha256) => {
                    pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, sig)
                }
                (false, HashAlg::Sha384) => {
                    pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), digest, sig)
                }
                (false, HashAlg::Sha512) => {
                    pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), digest, sig)
                }
                (true, HashAlg::Sha256) => {
                    pk.verify(rsa::Pss::new_with_salt::<sha2::Sha256>(salt), digest, sig)
                }
                (true, HashAlg::Sha384) => {
                    pk.verify(rsa::Pss::new_with_salt::<sha2::Sha384>(salt), digest, sig)
                }
                (true, HashAlg::Sha512) => {
                    pk.verify(rsa::Pss::new_with_salt::<sha2::Sha512>(salt), digest, sig)
                }
            };
            result.map_err(|e| format!("{} does not verify: {e}", plan.describe()))
        }
        KeyKind::P256 => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            use p256::pkcs8::DecodePublicKey;
            let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&leaf.spki)
                .map_err(|e| format!("P-256 public key: {e}"))?;
            let s = p256::ecdsa::Signature::from_der(sig)
                .map_err(|e| format!("not a DER Ecdsa-Sig-Value: {e}"))?;
            vk.verify_prehash(digest, &s)
                .map_err(|e| format!("{} does not verify: {e}", plan.describe()))
        }
        KeyKind::P384 => {
            use p384::ecdsa::signature::hazmat::PrehashVerifier;
            use p384::pkcs8::DecodePublicKey;
            let vk = p384::ecdsa::VerifyingKey::from_public_key_der(&leaf.spki)
                .map_err(|e| format!("P-384 public key: {e}"))?;
            let s = p384::ecdsa::Signature::from_der(sig)
                .map_err(|e| format!("not a DER Ecdsa-Sig-Value: {e}"))?;
            vk.verify_prehash(digest, &s)
                .map_err(|e| format!("{} does not verify: {e}", plan.describe()))
        }
        other => Err(format!(
            "cannot verify signatures of a {}",
            other.describe()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_choice() {
        let rsa = KeyKind::Rsa { bits: 2048 };
        let (h, p) = plans_for(&rsa, &[SHA256_RSA, RSA_PSS, RSA_ENCRYPTION, SHA384_RSA]).unwrap();
        assert_eq!(h, HashAlg::Sha256);
        assert_eq!(
            p.iter().map(|p| p.sign_algo).collect::<Vec<_>>(),
            [SHA256_RSA, RSA_PSS, RSA_ENCRYPTION]
        );
        let (h, p) = plans_for(&KeyKind::P384, &[ECDSA_SHA256, ECDSA_SHA384]).unwrap();
        assert_eq!((h, p.len()), (HashAlg::Sha384, 1));
        assert!(plans_for(&KeyKind::P256, &[SHA256_RSA]).is_none());
        assert_eq!(unsupported_sign_algo(&[ECDSA_SHA256]), SHA256_RSA);
        let pss = p256_free_pss();
        assert!(pss.params_b64().unwrap().is_some());
    }

    /// A certificate (unsigned: the DER check does not verify) with one basicConstraints
    /// extension whose value is `bc`, as DER.
    fn cert_with_basic_constraints(bc: &[u8]) -> Vec<u8> {
        use der::asn1::OctetString;
        use der::oid::AssociatedOid;
        use x509_cert::ext;
        let extension = ext::Extension {
            extn_id: ext::pkix::BasicConstraints::OID,
            critical: true,
            extn_value: OctetString::new(bc).unwrap(),
        };
        crate::test_support::certificate(
            &crate::test_support::p256_key(7),
            1,
            Some(vec![extension]),
        )
    }

    fn parse_one(der: &[u8]) -> Result<Vec<Certificate>, String> {
        parse_certificates(&[Value::String(b64(der))])
    }

    #[test]
    fn certificates_must_be_der() {
        // cA FALSE is the DEFAULT: DER leaves it out.
        let der = cert_with_basic_constraints(&[0x30, 0x00]);
        assert_eq!(parse_one(&der).unwrap().len(), 1);
        let ber = cert_with_basic_constraints(&[0x30, 0x03, 0x01, 0x01, 0x00]);
        let err = parse_one(&ber).unwrap_err();
        assert!(err.contains("encoding extension 2.5.29.19 again"), "{err}");
        // The extension's critical flag written out as FALSE, in the certificate itself.
        let at = der
            .windows(8)
            .position(|w| w == [0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff])
            .unwrap();
        let mut tampered = der.clone();
        tampered[at + 7] = 0x00;
        let err = parse_one(&tampered).unwrap_err();
        assert!(err.contains("encoding the certificate again"), "{err}");
        // A value that does not decode as basic constraints is not DER of them either.
        let err = parse_one(&cert_with_basic_constraints(&[0x04, 0x00])).unwrap_err();
        assert!(err.contains("2.5.29.19"), "{err}");
    }

    #[test]
    fn cms_signer_plans() {
        let alg = |oid: &str, params: Option<Vec<u8>>| spki::AlgorithmIdentifierOwned {
            oid: der::oid::ObjectIdentifier::new_unwrap(oid),
            parameters: params.map(|p| der::Any::from_der(&p).unwrap()),
        };
        let p = cms_plan(&KeyKind::P256, &alg(ECDSA_SHA256, None), HashAlg::Sha256).unwrap();
        assert_eq!((p.sign_algo, p.hash), (ECDSA_SHA256, HashAlg::Sha256));
        let p = cms_plan(&KeyKind::P384, &alg(EC_PUBLIC_KEY, None), HashAlg::Sha384).unwrap();
        assert!(p.send_hash_oid);
        // The signature algorithm's digest is not the digestAlgorithm, or not the key's kind.
        assert!(cms_plan(&KeyKind::P256, &alg(ECDSA_SHA384, None), HashAlg::Sha256).is_err());
        assert!(cms_plan(&KeyKind::P256, &alg(SHA256_RSA, None), HashAlg::Sha256).is_err());
        let rsa = KeyKind::Rsa { bits: 2048 };
        let p = cms_plan(&rsa, &alg(RSA_ENCRYPTION, None), HashAlg::Sha512).unwrap();
        assert_eq!((p.pss, p.hash), (false, HashAlg::Sha512));
        // RSASSA-PSS: parameters naming the digestAlgorithm and its length as the salt.
        let pss = |salt: u8| {
            rsa::pkcs1::RsaPssParams::new::<sha2::Sha384>(salt)
                .to_der()
                .unwrap()
        };
        let p = cms_plan(&rsa, &alg(RSA_PSS, Some(pss(48))), HashAlg::Sha384).unwrap();
        assert!(p.pss);
        let e = cms_plan(&rsa, &alg(RSA_PSS, Some(pss(20))), HashAlg::Sha384).unwrap_err();
        assert!(e.contains("salt 20"), "{e}");
        assert!(cms_plan(&rsa, &alg(RSA_PSS, Some(pss(48))), HashAlg::Sha256).is_err());
        assert!(cms_plan(&rsa, &alg(RSA_PSS, None), HashAlg::Sha384).is_err());
    }

    fn p256_free_pss() -> SignPlan {
        plan(RSA_PSS, "RSASSA-PSS", HashAlg::Sha256, true, true)
    }

    #[test]
    fn ecdsa_round_trip() {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        use p256::pkcs8::EncodePublicKey;
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let spki = sk
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        let leaf = Leaf {
            kind: KeyKind::P256,
            spki,
        };
        let digest = HashAlg::Sha256.digest(b"doc");
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
        let p = plan(
            ECDSA_SHA256,
            "ecdsa-with-SHA256",
            HashAlg::Sha256,
            false,
            false,
        );
        verify(&leaf, &p, &digest, sig.to_der().as_bytes()).unwrap();
        assert!(
            verify(&leaf, &p, &digest, &sig.to_bytes()).is_err(),
            "raw r||s is not DER"
        );
        let other = HashAlg::Sha256.digest(b"other");
        assert!(verify(&leaf, &p, &other, sig.to_der().as_bytes()).is_err());
    }
}
