//! `impl Qscd for Pkcs11Qscd`: generating, reading, finding and destroying key pairs, signing,
//! sealing and unsealing, deriving secrets, storing and finding certificates, and the liveness
//! check, each on a pooled session through `with_session`.

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::PkcsPssParams;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass};
use rand::RngCore;
use zeroize::Zeroizing;

use super::super::{KeySpec, Qscd, QscdError, SignMechanism};
use super::errors::{OpError, is_session_level};
use super::objects::{curve_params, first, hash_mech, made_private_keys, spki_of};
use super::{IV_LEN, Pkcs11Qscd};

impl Qscd for Pkcs11Qscd {
    fn generate_key_pair(
        &self,
        spec: KeySpec,
        id: &[u8],
        label: &str,
    ) -> Result<Vec<u8>, QscdError> {
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Id(id.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
            ]
        };
        // A signing key signs and does nothing else: SoftHSM2's defaults would also let it
        // decrypt, unwrap and sign-recover for anyone holding the token PIN.
        let mut public = common(false);
        public.extend([
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::VerifyRecover(false),
        ]);
        let mut private = common(true);
        private.extend([
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::SignRecover(false),
            Attribute::Derive(false),
        ]);
        let (mech, extra) = match spec {
            KeySpec::Rsa { bits } => (
                Mechanism::RsaPkcsKeyPairGen,
                vec![
                    Attribute::ModulusBits(u64::from(bits).into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                ],
            ),
            KeySpec::EcP256 | KeySpec::EcP384 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(curve_params(spec)?)],
            ),
        };
        public.extend(extra);
        self.with_session(|s| {
            let (pubh, privh) = {
                let _one_at_a_time = self.lock_objects();
                s.generate_key_pair(&mech, &public, &private)?
            };
            let spki = spki_of(s, pubh)?;
            self.lock_handles().insert(id.to_vec(), privh);
            Ok(spki)
        })
    }

    fn public_key(&self, id: &[u8]) -> Result<Vec<u8>, QscdError> {
        self.with_session(|s| {
            let h = first(
                s,
                &[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::Id(id.to_vec()),
                ],
            )?
            .ok_or(QscdError::KeyNotFound)?;
            spki_of(s, h)
        })
    }

    fn sign(
        &self,
        id: &[u8],
        mechanism: SignMechanism,
        inputs: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, QscdError> {
        self.with_session(|s| {
            let key = self.private_key(s, id)?;
            // Mechanism is neither Send nor Sync: build it on the thread that signs.
            let mech = match mechanism {
                SignMechanism::RsaPkcs1 => Mechanism::RsaPkcs,
                SignMechanism::Ecdsa => Mechanism::Ecdsa,
                SignMechanism::RsaPss {
                    hash,
                    mgf_hash,
                    salt_len,
                } => Mechanism::RsaPkcsPss(PkcsPssParams {
                    hash_alg: hash_mech(hash).0,
                    mgf: hash_mech(mgf_hash).1,
                    s_len: salt_len.into(),
                }),
            };
            let mut out = Vec::with_capacity(inputs.len());
            for input in inputs {
                out.push(s.sign(&mech, key, input)?);
            }
            Ok(out)
        })
    }

    fn destroy_key_pair(&self, id: &[u8]) -> Result<(), QscdError> {
        self.lock_handles().remove(id);
        self.with_session(|s| {
            let _one_at_a_time = self.lock_objects();
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                for h in s.find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])? {
                    s.destroy_object(h)?;
                }
            }
            Ok(())
        })
    }

    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, QscdError> {
        self.with_session(|s| {
            let key = self.seal_key(s)?;
            let mut iv = [0u8; IV_LEN];
            rand::rng().fill_bytes(&mut iv);
            let mut iv_param = iv;
            let params = GcmParams::new(&mut iv_param, aad, 128.into())?;
            let ct = s.encrypt(&Mechanism::AesGcm(params), key, plaintext)?;
            let mut out = iv.to_vec();
            out.extend_from_slice(&ct);
            Ok(out)
        })
    }

    fn derive_secret(&self, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, QscdError> {
        self.with_session(|s| {
            let key = self.mac_key(s)?;
            Ok(Zeroizing::new(s.sign(
                &Mechanism::Sha256Hmac,
                key,
                context,
            )?))
        })
    }

    fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, QscdError> {
        let (iv, ct) = sealed.split_at_checked(IV_LEN).ok_or(QscdError::Unseal)?;
        self.with_session(|s| {
            let key = self.seal_key(s)?;
            let mut iv: [u8; IV_LEN] = iv.try_into().map_err(|_| OpError::Q(QscdError::Unseal))?;
            let params = GcmParams::new(&mut iv, aad, 128.into())?;
            match s.decrypt(&Mechanism::AesGcm(params), key, ct) {
                Ok(pt) => Ok(Zeroizing::new(pt)),
                // Session-level trouble is retried by `with_session`; anything else from a
                // GCM decryption (SoftHSM2 says CKR_GENERAL_ERROR) means it did not authenticate.
                Err(e) if is_session_level(&e) => Err(OpError::Ck(e)),
                Err(_) => Err(OpError::Q(QscdError::Unseal)),
            }
        })
    }

    fn put_certificate(&self, id: &[u8], label: &str, der: &[u8]) -> Result<(), QscdError> {
        use der::{Decode as _, Encode as _};
        let subject = x509_cert::Certificate::from_der(der)
            .and_then(|cert| cert.tbs_certificate.subject.to_der())
            .map_err(|e| QscdError::BadInput(format!("not a certificate: {e}")))?;
        self.with_session(|s| {
            let _one_at_a_time = self.lock_objects();
            s.create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Id(id.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Subject(subject.clone()),
                Attribute::Value(der.to_vec()),
            ])?;
            Ok(())
        })
    }

    fn find_certificate(&self, label: &str) -> Result<Option<Vec<u8>>, QscdError> {
        self.with_session(|s| {
            let Some(h) = first(
                s,
                &[
                    Attribute::Class(ObjectClass::CERTIFICATE),
                    Attribute::Label(label.as_bytes().to_vec()),
                ],
            )?
            else {
                return Ok(None);
            };
            for a in s.get_attributes(h, &[AttributeType::Value])? {
                if let Attribute::Value(v) = a {
                    return Ok(Some(v));
                }
            }
            Ok(None)
        })
    }

    fn has_key(&self, id: &[u8]) -> Result<bool, QscdError> {
        self.with_session(|s| match self.private_key(s, id) {
            Ok(_) => Ok(true),
            Err(OpError::Q(QscdError::KeyNotFound)) => Ok(false),
            Err(e) => Err(e),
        })
    }

    fn key_ids_labelled(&self, label_prefix: &str) -> Result<Vec<Vec<u8>>, QscdError> {
        // Only finished keys: reading a half-made one can destroy it (`made_private_keys`).
        self.with_session(|s| {
            let mut out = Vec::new();
            for h in s.find_objects(&made_private_keys())? {
                let (mut id, mut label) = (None, None);
                for a in s.get_attributes(h, &[AttributeType::Id, AttributeType::Label])? {
                    match a {
                        Attribute::Id(v) => id = Some(v),
                        Attribute::Label(v) => label = Some(v),
                        _ => {}
                    }
                }
                if let (Some(id), Some(label)) = (id, label)
                    && label.starts_with(label_prefix.as_bytes())
                {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }

    fn check(&self) -> Result<(), QscdError> {
        self.with_session(|s| Ok(s.get_session_info().map(|_| ())?))
    }
}
