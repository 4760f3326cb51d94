//! Quill's own secret keys on the token, found by label or made on first use: the AES key
//! that seals (`SEAL_KEY_LABEL`) and the HMAC key behind `derive_secret` (`MAC_KEY_LABEL`).

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::errors::OpError;
use super::objects::first;
use super::{MAC_KEY_LABEL, Pkcs11Qscd, SEAL_KEY_LABEL};

impl Pkcs11Qscd {
    /// The sealing key's handle (AES-256), created on first use. It seals and unseals,
    /// nothing else.
    pub(super) fn seal_key(&self, session: &Session) -> Result<ObjectHandle, OpError> {
        self.secret_key(session, SEAL_KEY_LABEL, |session, class, label| {
            session.generate_key(
                &Mechanism::AesKeyGen,
                &[
                    class,
                    label,
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Sign(false),
                    Attribute::Verify(false),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Derive(false),
                ],
            )
        })
    }

    /// The key of `derive_secret` (a 256-bit generic secret for HMAC-SHA256), created on
    /// first use. It computes MACs, nothing else.
    pub(super) fn mac_key(&self, session: &Session) -> Result<ObjectHandle, OpError> {
        self.secret_key(session, MAC_KEY_LABEL, |session, class, label| {
            session.generate_key(
                &Mechanism::GenericSecretKeyGen,
                &[
                    class,
                    label,
                    Attribute::KeyType(KeyType::GENERIC_SECRET),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                    Attribute::Verify(false),
                    Attribute::Encrypt(false),
                    Attribute::Decrypt(false),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Derive(false),
                ],
            )
        })
    }

    /// A secret key of Quill's own by label: cached, else found, else made by `make` (given
    /// the class and label attributes), one maker at a time in this process (across processes
    /// `tsa::ensure_objects` makes them under the database's writer lock).
    fn secret_key(
        &self,
        session: &Session,
        label: &str,
        make: impl FnOnce(&Session, Attribute, Attribute) -> cryptoki::error::Result<ObjectHandle>,
    ) -> Result<ObjectHandle, OpError> {
        let cache_key = label.as_bytes().to_vec();
        if let Some(h) = self.lock_handles().get(&cache_key) {
            return Ok(*h);
        }
        let _one_at_a_time = self.lock_objects();
        if let Some(h) = self.lock_handles().get(&cache_key) {
            return Ok(*h);
        }
        let label = Attribute::Label(label.as_bytes().to_vec());
        let class = Attribute::Class(ObjectClass::SECRET_KEY);
        let h = match first(session, &[class.clone(), label.clone()])? {
            Some(h) => h,
            None => make(session, class, label)?,
        };
        self.lock_handles().insert(cache_key, h);
        Ok(h)
    }
}
