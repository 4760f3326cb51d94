//! PKCS#1 v1.5 `DigestInfo` (RFC 8017 §9.2 note 1) for `signAlgo` rsaEncryption and
//! sha*WithRSAEncryption (CSC API v2 §8.2): the token's raw `CKM_RSA_PKCS` signs exactly these
//! bytes. The fixed DER prefixes below are the standard constants from RFC 8017; a test checks
//! them against the `rsa` crate.

use super::{CryptoError, HashAlg};

/// `SEQUENCE { SEQUENCE { id-sha256, NULL }, OCTET STRING (32) }` header.
const SHA256_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
/// `SEQUENCE { SEQUENCE { id-sha384, NULL }, OCTET STRING (48) }` header.
const SHA384_PREFIX: [u8; 19] = [
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, 0x04, 0x30,
];
/// `SEQUENCE { SEQUENCE { id-sha512, NULL }, OCTET STRING (64) }` header.
const SHA512_PREFIX: [u8; 19] = [
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
    0x00, 0x04, 0x40,
];

fn prefix(hash: HashAlg) -> &'static [u8] {
    match hash {
        HashAlg::Sha256 => &SHA256_PREFIX,
        HashAlg::Sha384 => &SHA384_PREFIX,
        HashAlg::Sha512 => &SHA512_PREFIX,
    }
}

/// DER `DigestInfo` (with NULL parameters) wrapping `digest`, whose length must match `hash`.
pub fn digest_info(hash: HashAlg, digest: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if digest.len() != hash.digest_len() {
        return Err(CryptoError::InvalidDigestLength);
    }
    let prefix = prefix(hash);
    let mut out = Vec::with_capacity(prefix.len() + digest.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(digest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::traits::PublicKeyParts;
    use rsa::{Pkcs1v15Sign, RsaPrivateKey};

    fn rsa_prefix(hash: HashAlg) -> Vec<u8> {
        match hash {
            HashAlg::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>().prefix.to_vec(),
            HashAlg::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>().prefix.to_vec(),
            HashAlg::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>().prefix.to_vec(),
        }
    }

    #[test]
    fn prefixes_match_the_rsa_crate() {
        for hash in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let digest = hash.digest(b"quill");
            let info = digest_info(hash, &digest).unwrap();
            let mut expected = rsa_prefix(hash);
            expected.extend_from_slice(&digest);
            assert_eq!(info, expected, "{}", hash.name());
        }
    }

    #[test]
    fn wrong_length_refused() {
        assert_eq!(
            digest_info(HashAlg::Sha256, &[0; 48]),
            Err(CryptoError::InvalidDigestLength)
        );
        assert_eq!(
            digest_info(HashAlg::Sha512, &[]),
            Err(CryptoError::InvalidDigestLength)
        );
    }

    #[test]
    fn raw_rsa_over_digest_info_verifies_as_pkcs1v15() {
        let mut rng = rsa::rand_core::OsRng;
        let key = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let public = key.to_public_key();
        for hash in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let digest = hash.digest(b"a PDF byte range");
            let info = digest_info(hash, &digest).unwrap();
            // What the token does for CKM_RSA_PKCS: pad and exponentiate, no hashing.
            let sig = key.sign(Pkcs1v15Sign::new_unprefixed(), &info).unwrap();
            assert_eq!(sig.len(), public.size());
            let scheme = match hash {
                HashAlg::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
                HashAlg::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
                HashAlg::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
            };
            public.verify(scheme, &digest, &sig).unwrap();
        }
    }
}
