//! Adapters that let rcgen (built without its crypto backend) see a subject public key given as
//! DER SubjectPublicKeyInfo, and sign with a [`CaKey`] held in the token.

use std::cell::Cell;

use der::Decode as _;
use der::asn1::ObjectIdentifier;
use rcgen::{PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, SignatureAlgorithm};
use sha2::Digest as _;
use spki::SubjectPublicKeyInfoRef;

use super::{CaKey, PkiError};

const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// RFC 7093 method 1: the leftmost 160 bits of SHA-256 over the subjectPublicKey bits.
pub(crate) fn key_id(subject_public_key: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(subject_public_key)
        .into_iter()
        .take(20)
        .collect()
}

/// The named curve of an id-ecPublicKey SubjectPublicKeyInfo (None: no OID parameter).
pub(crate) fn named_curve(spki: &SubjectPublicKeyInfoRef<'_>) -> Option<ObjectIdentifier> {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
}

/// A subject public key as rcgen wants it: the BIT STRING contents plus an rcgen algorithm
/// whose public-key identifier (rsaEncryption + NULL, or id-ecPublicKey + curve) rcgen writes.
pub(crate) struct SpkiKey {
    alg: &'static SignatureAlgorithm,
    bits: Vec<u8>,
}

impl SpkiKey {
    /// Accepts rsaEncryption and id-ecPublicKey on P-256 / P-384.
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<Self, PkiError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| PkiError::Parse(format!("SubjectPublicKeyInfo: {e}")))?;
        let alg = match spki.algorithm.oid {
            OID_RSA_ENCRYPTION => &PKCS_RSA_SHA256,
            OID_EC_PUBLIC_KEY => match named_curve(&spki) {
                Some(OID_P256) => &PKCS_ECDSA_P256_SHA256,
                Some(OID_P384) => &PKCS_ECDSA_P384_SHA384,
                _ => return Err(PkiError::Key("unsupported elliptic curve".to_owned())),
            },
            other => return Err(PkiError::Key(format!("unsupported key algorithm {other}"))),
        };
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| PkiError::Parse("subjectPublicKey has unused bits".to_owned()))?
            .to_vec();
        Ok(Self { alg, bits })
    }

    /// Whether this is a P-256 key (the only CA key type supported).
    pub(crate) fn is_p256(&self) -> bool {
        std::ptr::eq(self.alg, &PKCS_ECDSA_P256_SHA256)
    }

    /// The subject key identifier for this key.
    pub(crate) fn key_id(&self) -> Vec<u8> {
        key_id(&self.bits)
    }
}

impl rcgen::PublicKeyData for SpkiKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// rcgen's view of the CA key: signs through [`CaKey`], keeping the first signing error so the
/// caller sees it instead of rcgen's opaque `RemoteKeyError`.
pub(crate) struct CaSigner<'a> {
    key: &'a dyn CaKey,
    public: SpkiKey,
    error: Cell<Option<PkiError>>,
}

impl<'a> CaSigner<'a> {
    /// Wrap a P-256 CA key.
    pub(crate) fn new(key: &'a dyn CaKey) -> Result<Self, PkiError> {
        let public = SpkiKey::from_spki_der(key.spki_der())?;
        if !public.is_p256() {
            return Err(PkiError::Key("the CA key must be EC P-256".to_owned()));
        }
        Ok(Self {
            key,
            public,
            error: Cell::new(None),
        })
    }

    /// The CA's subject key identifier.
    pub(crate) fn key_id(&self) -> Vec<u8> {
        self.public.key_id()
    }

    /// Map an rcgen error, preferring the CA key's own error if signing failed.
    pub(crate) fn error(&self, e: rcgen::Error) -> PkiError {
        self.error
            .take()
            .unwrap_or_else(|| PkiError::Rcgen(e.to_string()))
    }
}

impl rcgen::PublicKeyData for CaSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.public.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for CaSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.key.sign_sha256(msg).map_err(|e| {
            self.error.set(Some(e));
            rcgen::Error::RemoteKeyError
        })
    }
}
