//! Token objects and attributes: finding the slot by label, logging in, EC curve parameters,
//! hash mechanisms, reading a public key object as DER SPKI, and finding objects, among them
//! the finished private keys (`made_private_keys`) the key index reads.

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::mechanism::rsa::PkcsMgfType;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use der::{Decode, Encode};
use secrecy::SecretString;

use super::super::{KeySpec, QscdError};
use super::errors::{OpError, rv};
use crate::crypto::HashAlg;

pub(super) fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Option<Slot>, CkError> {
    for slot in ctx.get_slots_with_token()? {
        let info = ctx.get_token_info(slot)?;
        if info.token_initialized() && info.label().trim_end() == label {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

pub(in crate::qscd) fn login(session: &Session, pin: &SecretString) -> Result<(), CkError> {
    match session.login(UserType::User, Some(pin)) {
        Err(e) if rv(&e) == Some(RvError::UserAlreadyLoggedIn) => Ok(()),
        other => other,
    }
}

pub(super) fn curve_params(spec: KeySpec) -> Result<Vec<u8>, QscdError> {
    let oid = match spec {
        KeySpec::EcP256 => const_oid::db::rfc5912::SECP_256_R_1,
        KeySpec::EcP384 => const_oid::db::rfc5912::SECP_384_R_1,
        KeySpec::Rsa { .. } => return Err(QscdError::BadInput("not an EC key".into())),
    };
    oid.to_der().map_err(|e| QscdError::Device(e.to_string()))
}

pub(super) fn hash_mech(h: HashAlg) -> (MechanismType, PkcsMgfType) {
    match h {
        HashAlg::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        HashAlg::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        HashAlg::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
    }
}

/// The SEC1 bytes of a `CKA_EC_POINT` on a curve of `field_len`-byte coordinates. PKCS#11
/// says a DER OCTET STRING, and SoftHSM2 and kryoptic answer so; some tokens answer the bare
/// SEC1 point (PKCS#11 3.x's form for Edwards and Montgomery keys). An uncompressed point begins
/// with 0x04, the OCTET STRING tag, and parses as DER whenever its next byte happens to equal
/// the length of the rest (1 key in 256), so the bare form is recognised by its length first.
pub(in crate::qscd) fn ec_point_bytes(point: Vec<u8>, field_len: usize) -> Vec<u8> {
    if point.len() == 1 + 2 * field_len && point.first() == Some(&0x04) {
        return point;
    }
    der::asn1::OctetString::from_der(&point)
        .map(|o| o.into_bytes())
        .unwrap_or(point)
}

/// DER SPKI of a public key object.
pub(super) fn spki_of(session: &Session, public: ObjectHandle) -> Result<Vec<u8>, OpError> {
    use rsa::pkcs8::EncodePublicKey;
    let attrs = session.get_attributes(
        public,
        &[
            AttributeType::KeyType,
            AttributeType::Modulus,
            AttributeType::PublicExponent,
            AttributeType::EcParams,
            AttributeType::EcPoint,
        ],
    )?;
    let (mut kt, mut n, mut e, mut params, mut point) = (None, None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(k) => kt = Some(k),
            Attribute::Modulus(v) => n = Some(v),
            Attribute::PublicExponent(v) => e = Some(v),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    let bad = |m: &str| OpError::Q(QscdError::Device(m.to_string()));
    let der = if kt == Some(KeyType::RSA) {
        let (n, e) = n.zip(e).ok_or_else(|| bad("RSA key without modulus"))?;
        rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&n),
            rsa::BigUint::from_bytes_be(&e),
        )
        .map_err(|e| bad(&e.to_string()))?
        .to_public_key_der()
        .map_err(|e| bad(&e.to_string()))?
        .into_vec()
    } else {
        let (params, point) = params
            .zip(point)
            .ok_or_else(|| bad("EC key without point"))?;
        if params == curve_params(KeySpec::EcP256)? {
            let raw = ec_point_bytes(point, 32);
            p256::PublicKey::from_sec1_bytes(&raw)
                .map_err(|e| bad(&e.to_string()))?
                .to_public_key_der()
        } else if params == curve_params(KeySpec::EcP384)? {
            let raw = ec_point_bytes(point, 48);
            p384::PublicKey::from_sec1_bytes(&raw)
                .map_err(|e| bad(&e.to_string()))?
                .to_public_key_der()
        } else {
            return Err(bad("unsupported curve"));
        }
        .map_err(|e| bad(&e.to_string()))?
        .into_vec()
    };
    Ok(der)
}

pub(super) fn first(
    session: &Session,
    template: &[Attribute],
) -> Result<Option<ObjectHandle>, CkError> {
    Ok(session.find_objects(template)?.into_iter().next())
}

/// The template that finds every private key on the token that is finished being made: with
/// `CKA_TOKEN` true. Reading an attribute of an object (C_GetAttributeValue) is safe only on
/// those: SoftHSM2's file store makes a key by writing its file once per default attribute
/// (`CKA_TOKEN` false among them) and then once with the caller's template (`CKA_TOKEN` true,
/// `CKA_ID`, ...), and another process that reads an attribute of such a half-made object
/// "completes" it with default values in its own copy and writes that copy back over the
/// file. When that write lands last, the key is lost: its file holds a default-valued,
/// unreadable object, while the enrolment that made it succeeded and stored its credential
/// (signHash then failed with 500, "credential key missing from token").
pub(super) fn made_private_keys() -> [Attribute; 2] {
    [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Token(true),
    ]
}

/// Every private key on the token with its CKA_ID (keys without one are left out); nothing
/// when there are more than `max`. Keys another process is still making are left out (see
/// [`made_private_keys`]); they are found later by their CKA_ID.
pub(super) fn private_key_ids(
    session: &Session,
    max: usize,
) -> Result<Vec<(Vec<u8>, ObjectHandle)>, CkError> {
    let keys = session.find_objects(&made_private_keys())?;
    if keys.len() > max {
        tracing::info!(
            keys = keys.len(),
            max,
            "too many private keys to index; each is found on first use"
        );
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(keys.len());
    for h in keys {
        for attribute in session.get_attributes(h, &[AttributeType::Id])? {
            if let Attribute::Id(id) = attribute {
                out.push((id, h));
            }
        }
    }
    Ok(out)
}
