//! Enrolment of an identity-proofed user: a non-extractable key pair generated in the token, a
//! certificate for it from the development CA (whose key is in the same token), the PIN hashed
//! with argon2 and the TOTP secret sealed by a token-resident AES key. Used by `quill enroll`
//! and `quill demo`. Also the renewal of a credential's certificate (`quill credential renew`).

use std::sync::Arc;

use crate::auth::{otp, password, token};
use crate::clock::Clock;
use crate::crypto::{self, HashAlg, KeyType};
use crate::pki::{self, CaKey, PkiError};
use crate::qscd::{KeySpec, Qscd, SignMechanism};
use crate::secret::Secret;
use crate::store::models::{CredentialRow, UserRow};
use crate::store::{Store, StoreError, repo};

/// CKA_ID and label of the development CA's key pair and certificate in the token.
pub const CA_ID: &[u8] = b"quill-dev-ca";
pub const CA_LABEL: &str = "quill-dev-ca";
const CA_COMMON_NAME: &str = "Quill Development CA";
/// The label of a credential's key pair is this and the credential ID (its CKA_ID).
pub const CREDENTIAL_KEY_LABEL: &str = "quill:";

/// End-entity certificates last two years (renewals too, unless told otherwise).
pub const CERT_DAYS: u32 = 730;
/// The longest validity `enroll` and `renew` may ask for: ten years, as the development CA's own.
pub const MAX_CERT_DAYS: u32 = 3653;

/// A certificate validity `enroll` and `renew` accept, in days.
pub fn check_cert_days(days: u32) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_CERT_DAYS).contains(&days),
        "a certificate's validity must be between 1 and {MAX_CERT_DAYS} days"
    );
    Ok(())
}

/// The key algorithms `quill enroll --key` accepts.
pub fn key_spec(name: &str) -> anyhow::Result<(KeySpec, KeyType, i32)> {
    Ok(match name {
        "rsa-2048" => (KeySpec::Rsa { bits: 2048 }, KeyType::Rsa, 2048),
        "rsa-3072" => (KeySpec::Rsa { bits: 3072 }, KeyType::Rsa, 3072),
        "ec-p256" => (KeySpec::EcP256, KeyType::EcP256, 256),
        "ec-p384" => (KeySpec::EcP384, KeyType::EcP384, 384),
        other => anyhow::bail!(
            "unknown key algorithm {other:?}: use rsa-2048, rsa-3072, ec-p256 or ec-p384"
        ),
    })
}

/// What to enrol.
pub struct EnrolRequest {
    pub user: String,
    pub password: Secret,
    pub pin: Secret,
    pub key: String,
    /// Base32; generated when absent (TOTP credentials).
    pub totp_secret: Option<Secret>,
    /// `sms:+NUMBER` or `email:ADDRESS`: an online OTP sent per signature instead of TOTP.
    pub online_otp: Option<String>,
    pub common_name: Option<String>,
    pub multisign: i32,
    pub description: Option<String>,
    /// Validity of the certificate from now, in days (1 to [`MAX_CERT_DAYS`]).
    pub cert_days: u32,
}

/// What enrolment tells the operator (printed as one JSON object).
#[derive(serde::Serialize)]
pub struct EnrolOutcome {
    pub user: String,
    pub credential_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otpauth_uri: Option<String>,
    /// The online OTP channel, when the credential uses one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
}

/// The certificate's subject common name (`--common-name`, else the user name): 1 to 64
/// characters (X.520's upper bound, RFC 5280 `ub-common-name`), no control characters, not
/// blank: it is the signer's name that signature validators show.
pub fn check_common_name(cn: &str) -> anyhow::Result<()> {
    let n = cn.chars().count();
    anyhow::ensure!(
        (1..=64).contains(&n) && !cn.trim().is_empty() && !cn.chars().any(char::is_control),
        "the certificate's common name (--common-name, else the user name) must be 1 to 64 \
         characters, not blank, without control characters (this one has {n})"
    );
    Ok(())
}

/// Parse `sms:+NUMBER` / `email:ADDRESS` into (kind, destination).
pub fn parse_online_otp(spec: &str) -> anyhow::Result<(&'static str, String)> {
    if let Some(number) = spec.strip_prefix("sms:") {
        let digits = number.strip_prefix('+').unwrap_or("");
        anyhow::ensure!(
            (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
            "--otp sms: needs an international number like sms:+3591234567"
        );
        return Ok(("sms", number.to_string()));
    }
    if let Some(address) = spec.strip_prefix("email:") {
        let ok = address
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !address.contains(' '));
        anyhow::ensure!(
            ok,
            "--otp email: needs an address like email:user@example.org"
        );
        return Ok(("email", address.to_string()));
    }
    anyhow::bail!("--otp takes sms:+NUMBER or email:ADDRESS")
}

/// The CA key inside the token, signing through the QSCD.
pub struct TokenCaKey {
    qscd: Arc<dyn Qscd>,
    spki: Vec<u8>,
}

impl CaKey for TokenCaKey {
    fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        let digest = HashAlg::Sha256.digest(msg);
        let raw = self
            .qscd
            .sign(CA_ID, SignMechanism::Ecdsa, &[digest.as_slice()])
            .map_err(|e| PkiError::Key(e.to_string()))?;
        let raw = raw
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Key("token returned no signature".into()))?;
        crypto::ecdsa::raw_to_der(KeyType::EcP256, &raw).map_err(|e| PkiError::Key(e.to_string()))
    }
}

/// The development CA, if the token holds its key and certificate.
pub fn find_ca(qscd: &Arc<dyn Qscd>) -> anyhow::Result<Option<(TokenCaKey, Vec<u8>)>> {
    if !qscd.has_key(CA_ID)? {
        return Ok(None);
    }
    let key = TokenCaKey {
        qscd: qscd.clone(),
        spki: qscd.public_key(CA_ID)?,
    };
    Ok(qscd.find_certificate(CA_LABEL)?.map(|cert| (key, cert)))
}

/// The development CA: created in the token on first use, reused afterwards.
pub fn ensure_ca(qscd: &Arc<dyn Qscd>, now: i64) -> anyhow::Result<(TokenCaKey, Vec<u8>)> {
    if let Some(found) = find_ca(qscd)? {
        return Ok(found);
    }
    let spki = if qscd.has_key(CA_ID)? {
        qscd.public_key(CA_ID)?
    } else {
        qscd.generate_key_pair(KeySpec::EcP256, CA_ID, CA_LABEL)?
    };
    let key = TokenCaKey {
        qscd: qscd.clone(),
        spki,
    };
    let now = time::OffsetDateTime::from_unix_timestamp(now)?;
    let cert = pki::self_signed_ca(&key, CA_COMMON_NAME, now)?;
    qscd.put_certificate(CA_ID, CA_LABEL, &cert)?;
    Ok((key, cert))
}

/// Enrol one credential (and the user, when new).
pub fn enrol(
    store: &Store,
    qscd: &Arc<dyn Qscd>,
    clock: &dyn Clock,
    params: password::HashParams,
    req: EnrolRequest,
) -> anyhow::Result<EnrolOutcome> {
    let (spec, key_type, key_bits) = key_spec(&req.key)?;
    anyhow::ensure!(
        !req.user.is_empty() && req.user.len() <= 128 && !req.user.contains(':'),
        "the user name must be 1 to 128 characters without ':'"
    );
    anyhow::ensure!(
        password::is_valid_pin(req.pin.expose()),
        "weak PIN: a PIN is 6 to 8 digits"
    );
    anyhow::ensure!(
        req.password.expose().chars().count() >= 8,
        "the password must be at least 8 characters"
    );
    anyhow::ensure!(
        (1..=1000).contains(&req.multisign),
        "multisign must be between 1 and 1000"
    );
    check_cert_days(req.cert_days)?;
    check_common_name(req.common_name.as_deref().unwrap_or(&req.user))?;
    let online = req
        .online_otp
        .as_deref()
        .map(parse_online_otp)
        .transpose()?;
    anyhow::ensure!(
        online.is_none() || req.totp_secret.is_none(),
        "--otp and --totp-secret exclude each other"
    );
    let otp_secret = match (&req.totp_secret, &online) {
        (_, Some((_, destination))) => zeroize::Zeroizing::new(destination.as_bytes().to_vec()),
        (Some(s), None) => otp::parse_secret(s.expose()).map_err(anyhow::Error::msg)?,
        (None, None) => otp::generate_secret(),
    };
    let now = clock.now();
    // The CA, the time-stamping unit it certifies, the sealing and MAC keys, before the first
    // `serve`; the pepper the password and PIN are hashed with comes from the token.
    super::tsa::ensure_objects(store, qscd, now)?;
    let pepper = password::Pepper::from_token(qscd.as_ref())?;

    let existing = store.with(|c| repo::users::by_name(c, &req.user))?;
    let new_user = match &existing {
        Some(user) => {
            anyhow::ensure!(
                password::verify(&req.password, &user.password_hash, &pepper),
                "user {:?} exists and the password does not match",
                req.user
            );
            None
        }
        None => Some(UserRow {
            id: token::random_id(16),
            name: req.user.clone(),
            password_hash: password::hash(&req.password, params, &pepper)
                .map_err(anyhow::Error::msg)?,
            failed_logins: 0,
            created_at: now,
        }),
    };
    let user_id = existing
        .as_ref()
        .or(new_user.as_ref())
        .map(|u| u.id.clone())
        .ok_or_else(|| anyhow::anyhow!("no user"))?;

    let (ca_key, ca_cert) = ensure_ca(qscd, now)?;
    let credential_id = token::random_id(16);
    let key_id = credential_id.as_bytes().to_vec();
    let spki = qscd.generate_key_pair(
        spec,
        &key_id,
        &format!("{CREDENTIAL_KEY_LABEL}{credential_id}"),
    )?;
    let result = (|| -> anyhow::Result<CredentialRow> {
        let cn = req.common_name.clone().unwrap_or_else(|| req.user.clone());
        let at = time::OffsetDateTime::from_unix_timestamp(now)?;
        let cert = pki::issue_end_entity(&ca_cert, &ca_key, &spki, &cn, req.cert_days, at)?;
        let info = pki::parse(&cert)?;
        let sealed = qscd.seal(credential_id.as_bytes(), &otp_secret)?;
        let mut chain = cert;
        chain.extend_from_slice(&ca_cert);
        Ok(CredentialRow {
            id: credential_id.clone(),
            user_id: user_id.clone(),
            key_id: key_id.clone(),
            key_type: super::key_type_name(key_type).to_string(),
            key_bits,
            cert_chain: chain,
            not_before: info.not_before,
            not_after: info.not_after,
            pin_hash: password::hash(&req.pin, params, &pepper).map_err(anyhow::Error::msg)?,
            otp_kind: online.as_ref().map_or("totp", |(kind, _)| kind).into(),
            otp_secret: Some(sealed),
            status: super::STATUS_ENABLED.into(),
            multisign: req.multisign,
            description: req.description.clone(),
            failed_auths: 0,
            last_otp_step: None,
            created_at: now,
        })
    })()
    .and_then(|row| {
        store
            .with(|c| {
                c.write_tx(|c| {
                    if let Some(u) = &new_user {
                        repo::users::insert(c, u)?;
                    }
                    repo::credentials::insert(c, &row)
                })
            })
            .map_err(|e: StoreError| anyhow::anyhow!(e))
    });
    if let Err(e) = result {
        // Leave no orphan key in the token.
        let _ = qscd.destroy_key_pair(&key_id);
        return Err(e);
    }
    if let Some((kind, destination)) = online {
        return Ok(EnrolOutcome {
            user: req.user,
            credential_id,
            totp_secret: None,
            otpauth_uri: None,
            otp: Some(format!("{kind}:{destination}")),
        });
    }
    Ok(EnrolOutcome {
        otpauth_uri: Some(
            otp::otpauth_uri(&otp_secret, &req.user)
                .map_err(anyhow::Error::msg)?
                .expose()
                .to_string(),
        ),
        totp_secret: Some(otp::to_base32(&otp_secret).expose().to_string()),
        user: req.user,
        credential_id,
        otp: None,
    })
}

/// What `quill credential renew` did.
#[derive(Debug, serde::Serialize)]
pub struct Renewed {
    pub credential_id: String,
    /// The new certificate's serial number, upper-case hex.
    pub serial_number: String,
    pub previous_serial_number: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// Replace `row`'s certificate chain with `new_chain` and its validity (notBefore, notAfter),
/// if the chain is still the row's, with `audit` in the same write transaction; whether it was
/// replaced (renewal and the import of another CA's chain).
pub(super) fn replace_certificate_audited(
    store: &Store,
    row: &CredentialRow,
    new_chain: &[u8],
    (not_before, not_after): (i64, i64),
    audit: &crate::store::repo::audit::Event,
) -> Result<bool, StoreError> {
    store.with(|c| {
        c.write_tx(|c| {
            let replaced = repo::credentials::replace_certificate(
                c,
                &row.id,
                &row.cert_chain,
                new_chain,
                not_before,
                not_after,
            )?;
            if replaced {
                repo::audit::append(c, audit)?;
            }
            Ok(replaced)
        })
    })
}

/// Renew a credential's certificate: a new one from the development CA for the same key and
/// subject, valid `days` from now. The key must still be in the token and be the key of the old
/// certificate; the CA must exist (renewal never creates one). SADs already issued stay valid:
/// the key has not changed. One audit record (`renew_certificate`, with both serial numbers).
pub fn renew_certificate(
    store: &Store,
    qscd: &Arc<dyn Qscd>,
    clock: &dyn Clock,
    credential_id: &str,
    days: u32,
) -> anyhow::Result<Renewed> {
    check_cert_days(days)?;
    let row = store
        .with(|c| repo::credentials::by_id(c, credential_id))?
        .ok_or_else(|| anyhow::anyhow!("no credential {credential_id:?}"))?;
    let chain = pki::split_chain(&row.cert_chain)?;
    let old = chain
        .first()
        .ok_or_else(|| anyhow::anyhow!("credential {credential_id:?} has no certificate"))?;
    let old_info = pki::parse(old)?;
    let spki = qscd.public_key(&row.key_id)?;
    anyhow::ensure!(
        spki == old_info.spki_der,
        "the token's key for credential {credential_id:?} is not the key of its certificate"
    );
    let (ca_key, ca_cert) = find_ca(qscd)?
        .ok_or_else(|| anyhow::anyhow!("the token holds no development CA to renew with"))?;
    // A certificate another CA issued (`quill credential import-cert`) is renewed by that CA:
    // replacing it here would silently swap the provider's certificate for a development one.
    anyhow::ensure!(
        chain.get(1) == Some(&ca_cert),
        "credential {credential_id:?} has a certificate from another CA ({}): renew it there \
         (quill credential csr, then import-cert)",
        old_info.issuer_dn
    );
    let now = clock.now();
    let at = time::OffsetDateTime::from_unix_timestamp(now)?;
    let cert = pki::renew_end_entity(&ca_cert, &ca_key, old, days, at)?;
    let info = pki::parse(&cert)?;
    let mut new_chain = cert;
    new_chain.extend_from_slice(&ca_cert);
    let audit = super::event(
        now,
        "operator",
        "renew_certificate",
        Some(credential_id),
        "ok",
        serde_json::json!({
            "previous_serial_number": old_info.serial_hex,
            "serial_number": info.serial_hex,
            "not_after": info.not_after,
        }),
    );
    let replaced = replace_certificate_audited(
        store,
        &row,
        &new_chain,
        (info.not_before, info.not_after),
        &audit,
    )?;
    anyhow::ensure!(
        replaced,
        "credential {credential_id:?} changed meanwhile (renewed by someone else?); nothing done"
    );
    Ok(Renewed {
        credential_id: credential_id.to_owned(),
        serial_number: info.serial_hex,
        previous_serial_number: old_info.serial_hex,
        not_before: info.not_before,
        not_after: info.not_after,
    })
}
