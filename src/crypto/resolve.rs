//! Turns the CSC `signatures/signHash` algorithm fields (`signAlgo`, `hashAlgorithmOID`,
//! `signAlgoParams`; CSC API v2 §4.1, §8.2) into a typed signing plan for one key, refusing
//! every inconsistent or weak combination before anything reaches the token.

use super::{CryptoError, HashAlg, KeyType, SignAlgo, pss};

/// The padding / encoding scheme the token must apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5 over a `DigestInfo` built by Quill.
    Pkcs1v15,
    /// RSASSA-PSS with these MGF1 hash and salt length.
    Pss { mgf_hash: HashAlg, salt_len: u32 },
    /// ECDSA over the digest; the result is returned as DER `Ecdsa-Sig-Value`.
    Ecdsa,
}

/// A request's algorithm fields, resolved and checked against the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedSign {
    pub algo: SignAlgo,
    pub hash: HashAlg,
    pub scheme: Scheme,
}

/// DER NULL, which some clients send as `signAlgoParams` for algorithms without parameters.
const DER_NULL: [u8; 2] = [0x05, 0x00];

/// Turn the CSC request fields signAlgo, hashAlgorithmOID (optional), signAlgoParams (optional,
/// already base64-decoded DER) into what to do, for a key of `key` type.
///
/// Rules: unknown signAlgo → `UnknownSignAlgo`; not for this key → `SignAlgoNotForKey`; a given
/// hashAlgorithmOID is parsed first (weak/unknown OIDs give their own error); combined OIDs imply
/// the hash and a given hashAlgorithmOID must equal it (`HashAlgoContradicts`); generic RsaPkcs1
/// needs hashAlgorithmOID (`MissingHashAlgo`); RsaPss needs signAlgoParams
/// (`InvalidSignAlgoParams("missing")`) which give hash, MGF1 hash and salt length, and a given
/// hashAlgorithmOID must equal the params' hash. With `rsa_modulus_bytes` = Some(k), a PSS salt
/// longer than k − hLen − 2 is refused. Algorithms without parameters accept signAlgoParams only
/// when empty or DER NULL.
pub fn resolve(
    key: KeyType,
    rsa_modulus_bytes: Option<usize>,
    sign_algo: &str,
    hash_algo: Option<&str>,
    sign_algo_params: Option<&[u8]>,
) -> Result<ResolvedSign, CryptoError> {
    let algo = SignAlgo::from_oid(sign_algo)?;
    if !algo.fits(key) {
        return Err(CryptoError::SignAlgoNotForKey);
    }
    let given_hash = hash_algo.map(HashAlg::from_oid).transpose()?;
    let agree = |implied: HashAlg| match given_hash {
        Some(given) if given != implied => Err(CryptoError::HashAlgoContradicts),
        _ => Ok(implied),
    };
    if algo != SignAlgo::RsaPss
        && let Some(params) = sign_algo_params
        && !params.is_empty()
        && params != DER_NULL
    {
        return Err(CryptoError::InvalidSignAlgoParams(format!(
            "{} takes no parameters",
            algo.oid()
        )));
    }
    let (hash, scheme) = match algo {
        SignAlgo::RsaPkcs1 => (
            given_hash.ok_or(CryptoError::MissingHashAlgo)?,
            Scheme::Pkcs1v15,
        ),
        SignAlgo::RsaPkcs1With(implied) => (agree(implied)?, Scheme::Pkcs1v15),
        SignAlgo::Ecdsa(implied) => (agree(implied)?, Scheme::Ecdsa),
        SignAlgo::RsaPss => {
            let der = sign_algo_params
                .ok_or_else(|| CryptoError::InvalidSignAlgoParams("missing".to_owned()))?;
            let params = pss::parse(der)?;
            let hash = agree(params.hash)?;
            // PKCS#11 tokens differ on a mask hash other than the message hash (SoftHSM2 refuses
            // it with CKR_ARGUMENTS_BAD, after the SAD is spent); ETSI TS 119 312 and every
            // client seen use the same hash for both, so Quill asks for that up front.
            if params.mgf_hash != hash {
                return Err(CryptoError::InvalidSignAlgoParams(
                    "the MGF1 hash must be the message hash".to_owned(),
                ));
            }
            if let Some(k) = rsa_modulus_bytes {
                check_salt_fits(k, hash, params.salt_len)?;
            }
            let scheme = Scheme::Pss {
                mgf_hash: params.mgf_hash,
                salt_len: params.salt_len,
            };
            (hash, scheme)
        }
    };
    Ok(ResolvedSign { algo, hash, scheme })
}

/// [`resolve`] before the key is known: every refusal that does not depend on the key (whether
/// the algorithm fits it, a PSS salt's length against its modulus). An asynchronous call is
/// refused with these before it is accepted.
pub fn resolve_any_key(
    sign_algo: &str,
    hash_algo: Option<&str>,
    sign_algo_params: Option<&[u8]>,
) -> Result<ResolvedSign, CryptoError> {
    let key = if SignAlgo::from_oid(sign_algo)?.fits(KeyType::Rsa) {
        KeyType::Rsa
    } else {
        KeyType::EcP256
    };
    resolve(key, None, sign_algo, hash_algo, sign_algo_params)
}

/// RFC 8017 §9.1.1: emLen ≥ hLen + sLen + 2, with emLen taken as the modulus length k.
fn check_salt_fits(k: usize, hash: HashAlg, salt_len: u32) -> Result<(), CryptoError> {
    let max = k.saturating_sub(hash.digest_len() + 2);
    match usize::try_from(salt_len) {
        Ok(salt) if salt <= max => Ok(()),
        _ => Err(CryptoError::InvalidSignAlgoParams(format!(
            "salt length {salt_len} exceeds the maximum {max} for this key"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PssParams;

    const SHA1: &str = "1.3.14.3.2.26";
    const SHA256: &str = "2.16.840.1.101.3.4.2.1";
    const SHA384: &str = "2.16.840.1.101.3.4.2.2";
    const RSA: &str = "1.2.840.113549.1.1.1";
    const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
    const RSA_PSS: &str = "1.2.840.113549.1.1.10";
    const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
    const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";

    fn pss_der(hash: HashAlg, salt_len: u32) -> Vec<u8> {
        pss::encode(&PssParams {
            hash,
            mgf_hash: hash,
            salt_len,
        })
    }

    #[test]
    fn combined_oids_imply_the_hash() {
        let r = resolve(KeyType::Rsa, Some(256), RSA_SHA256, None, None).unwrap();
        assert_eq!(
            r,
            ResolvedSign {
                algo: SignAlgo::RsaPkcs1With(HashAlg::Sha256),
                hash: HashAlg::Sha256,
                scheme: Scheme::Pkcs1v15
            }
        );
        let r = resolve(KeyType::EcP256, None, ECDSA_SHA384, Some(SHA384), None).unwrap();
        assert_eq!((r.hash, r.scheme), (HashAlg::Sha384, Scheme::Ecdsa));
        assert_eq!(
            resolve(KeyType::EcP384, None, ECDSA_SHA256, Some(SHA384), None),
            Err(CryptoError::HashAlgoContradicts)
        );
        assert_eq!(
            resolve(KeyType::Rsa, None, RSA_SHA256, Some(SHA1), None),
            Err(CryptoError::WeakHashAlgo)
        );
        assert_eq!(
            resolve(KeyType::Rsa, None, RSA_SHA256, Some("1.2.3.4"), None),
            Err(CryptoError::UnknownHashAlgo)
        );
    }

    #[test]
    fn generic_rsa_needs_a_hash() {
        let r = resolve(KeyType::Rsa, None, RSA, Some(SHA384), None).unwrap();
        assert_eq!((r.algo, r.hash), (SignAlgo::RsaPkcs1, HashAlg::Sha384));
        assert_eq!(
            resolve(KeyType::Rsa, None, RSA, None, None),
            Err(CryptoError::MissingHashAlgo)
        );
    }

    #[test]
    fn algo_must_fit_the_key() {
        assert_eq!(
            resolve(KeyType::Rsa, None, ECDSA_SHA256, None, None),
            Err(CryptoError::SignAlgoNotForKey)
        );
        assert_eq!(
            resolve(KeyType::EcP256, None, RSA_PSS, None, None),
            Err(CryptoError::SignAlgoNotForKey)
        );
        assert_eq!(
            resolve(KeyType::EcP256, None, "1.2.840.10045.2.1", None, None),
            Err(CryptoError::UnknownSignAlgo)
        );
    }

    #[test]
    fn params_on_parameterless_algos() {
        assert!(resolve(KeyType::Rsa, None, RSA_SHA256, None, Some(&[0x05, 0x00])).is_ok());
        assert!(resolve(KeyType::EcP256, None, ECDSA_SHA256, None, Some(&[])).is_ok());
        let pss = pss_der(HashAlg::Sha256, 32);
        assert!(matches!(
            resolve(KeyType::Rsa, None, RSA_SHA256, None, Some(&pss)),
            Err(CryptoError::InvalidSignAlgoParams(_))
        ));
    }

    #[test]
    fn pss_takes_everything_from_params() {
        let params = pss_der(HashAlg::Sha256, 222);
        let r = resolve(
            KeyType::Rsa,
            Some(256),
            RSA_PSS,
            Some(SHA256),
            Some(&params),
        )
        .unwrap();
        assert_eq!(r.hash, HashAlg::Sha256);
        assert_eq!(
            r.scheme,
            Scheme::Pss {
                mgf_hash: HashAlg::Sha256,
                salt_len: 222
            }
        );
        // RSA-3072 with pyHanko's maximum salt.
        let params = pss_der(HashAlg::Sha256, 350);
        assert!(resolve(KeyType::Rsa, Some(384), RSA_PSS, None, Some(&params)).is_ok());
        assert_eq!(
            resolve(
                KeyType::Rsa,
                Some(384),
                RSA_PSS,
                Some(SHA384),
                Some(&params)
            ),
            Err(CryptoError::HashAlgoContradicts)
        );
        // A mask hash other than the message hash is refused before anything is spent.
        let mixed = pss::encode(&PssParams {
            hash: HashAlg::Sha256,
            mgf_hash: HashAlg::Sha512,
            salt_len: 32,
        });
        assert!(matches!(
            resolve(KeyType::Rsa, Some(256), RSA_PSS, None, Some(&mixed)),
            Err(CryptoError::InvalidSignAlgoParams(why)) if why.contains("MGF1")
        ));
    }

    #[test]
    fn pss_refusals() {
        assert_eq!(
            resolve(KeyType::Rsa, Some(256), RSA_PSS, Some(SHA256), None),
            Err(CryptoError::InvalidSignAlgoParams("missing".to_owned()))
        );
        // 223 > 256 − 32 − 2.
        let params = pss_der(HashAlg::Sha256, 223);
        assert!(matches!(
            resolve(KeyType::Rsa, Some(256), RSA_PSS, None, Some(&params)),
            Err(CryptoError::InvalidSignAlgoParams(_))
        ));
        // Without a modulus size the salt is not limited here.
        assert!(resolve(KeyType::Rsa, None, RSA_PSS, None, Some(&params)).is_ok());
        assert_eq!(
            resolve(KeyType::Rsa, Some(256), RSA_PSS, None, Some(&[0x30, 0x00])),
            Err(CryptoError::WeakHashAlgo)
        );
    }

    #[test]
    fn resolving_for_any_key_keeps_the_refusals_that_do_not_depend_on_the_key() {
        let rsa = resolve_any_key(RSA_SHA256, None, None).unwrap();
        assert_eq!(rsa.hash, HashAlg::Sha256);
        let ec = resolve_any_key(ECDSA_SHA384, None, None).unwrap();
        assert_eq!(ec.scheme, Scheme::Ecdsa);
        // A salt no 2048-bit key could take passes: the key is not known yet.
        let huge_salt = pss_der(HashAlg::Sha256, 4000);
        assert!(resolve_any_key(RSA_PSS, None, Some(&huge_salt)).is_ok());
        assert!(matches!(
            resolve_any_key("1.0.0.85038", None, None),
            Err(CryptoError::UnknownSignAlgo)
        ));
        assert!(resolve_any_key(RSA_SHA256, Some(SHA1), None).is_err());
        assert!(matches!(
            resolve_any_key(ECDSA_SHA256, Some(SHA384), None),
            Err(CryptoError::HashAlgoContradicts)
        ));
        assert!(resolve_any_key(RSA, None, None).is_err());
        assert!(resolve_any_key(RSA_PSS, Some(SHA256), None).is_err());
    }
}
