//! Certificates from the operator's own CA (a qualified trust service provider's) instead of
//! Quill's development CA: a PKCS#10 request for a credential's key, signed in the token
//! (`quill credential csr`), and the import of the chain that CA issued for it
//! (`quill credential import-cert`).

use std::sync::Arc;

use crate::clock::Clock;
use crate::crypto::{self, HashAlg, KeyType};
use crate::pki::{self, PkiError};
use crate::qscd::{Qscd, SignMechanism};
use crate::store::models::CredentialRow;
use crate::store::{Store, repo};

/// A credential's key in the token, as the signer of its certification request.
struct TokenKey<'a> {
    qscd: &'a dyn Qscd,
    key_id: &'a [u8],
    key_type: KeyType,
    spki: Vec<u8>,
}

impl pki::SubjectKey for TokenKey<'_> {
    fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        let key_error = |e: &dyn std::fmt::Display| PkiError::Key(e.to_string());
        let (mechanism, input) = match self.key_type {
            KeyType::Rsa => (
                SignMechanism::RsaPkcs1,
                crypto::digest_info(HashAlg::Sha256, &HashAlg::Sha256.digest(msg))
                    .map_err(|e| key_error(&e))?,
            ),
            KeyType::EcP256 => (SignMechanism::Ecdsa, HashAlg::Sha256.digest(msg)),
            KeyType::EcP384 => (SignMechanism::Ecdsa, HashAlg::Sha384.digest(msg)),
        };
        let signed = self
            .qscd
            .sign(self.key_id, mechanism, &[input.as_slice()])
            .map_err(|e| key_error(&e))?;
        let raw = signed
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Key("token returned no signature".into()))?;
        match self.key_type {
            KeyType::Rsa => Ok(raw),
            ec => crypto::ecdsa::raw_to_der(ec, &raw).map_err(|e| key_error(&e)),
        }
    }
}

/// The credential and its end-entity certificate (DER).
fn credential_and_certificate(
    store: &Store,
    credential_id: &str,
) -> anyhow::Result<(CredentialRow, Vec<u8>)> {
    let row = store
        .with(|c| repo::credentials::by_id(c, credential_id))?
        .ok_or_else(|| anyhow::anyhow!("no credential {credential_id:?}"))?;
    let ee = pki::split_chain(&row.cert_chain)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("credential {credential_id:?} has no certificate"))?;
    Ok((row, ee))
}

/// A PEM PKCS#10 certification request for the credential's key, with its current
/// certificate's subject, signed by the key in the token (which must be the certificate's
/// key). Changes nothing, so nothing is audited.
pub fn certification_request(
    store: &Store,
    qscd: &Arc<dyn Qscd>,
    credential_id: &str,
) -> anyhow::Result<String> {
    let (row, ee) = credential_and_certificate(store, credential_id)?;
    let key_type = super::key_type_of(&row.key_type)?;
    let spki = qscd.public_key(&row.key_id)?;
    anyhow::ensure!(
        spki == pki::parse(&ee)?.spki_der,
        "the token's key for credential {credential_id:?} is not the key of its certificate"
    );
    let key = TokenKey {
        qscd: qscd.as_ref(),
        key_id: &row.key_id,
        key_type,
        spki,
    };
    Ok(pki::certification_request(&key, &ee)?)
}

/// What `quill credential import-cert` did.
#[derive(Debug, serde::Serialize)]
pub struct Imported {
    pub credential_id: String,
    /// The new certificate's serial number, upper-case hex.
    pub serial_number: String,
    pub previous_serial_number: String,
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The `signatureQualifier` the new certificate supports.
    pub signature_qualifier: &'static str,
    /// Certificates in the chain, end entity included.
    pub chain_length: usize,
}

/// Replace a credential's certificate chain with one its CA issued for its key (PEM, end entity
/// first, then its issuers: see `pki::check_issued_chain` for what is refused). The chain and
/// the validity columns change as `quill credential renew` changes them, with one audit record
/// (`import_certificate`: both serial numbers and the issuer), in one transaction; anything
/// refused changes nothing. The key is unchanged, so SADs already issued stay valid.
pub fn import_certificate(
    store: &Store,
    clock: &dyn Clock,
    credential_id: &str,
    chain_pem: &[u8],
) -> anyhow::Result<Imported> {
    let (row, old) = credential_and_certificate(store, credential_id)?;
    let old_info = pki::parse(&old)?;
    let certs = pki::pem_certificates(chain_pem)?;
    let now = clock.now();
    let issued = pki::check_issued_chain(&certs, &old_info.spki_der, now)?;
    let info = issued.end_entity;
    let audit = super::event(
        now,
        "operator",
        "import_certificate",
        Some(credential_id),
        "ok",
        serde_json::json!({
            "previous_serial_number": old_info.serial_hex,
            "serial_number": info.serial_hex,
            "issuer": info.issuer_dn,
            "not_after": info.not_after,
        }),
    );
    let replaced = super::enrol::replace_certificate_audited(
        store,
        &row,
        &issued.chain,
        (info.not_before, info.not_after),
        &audit,
    )?;
    anyhow::ensure!(
        replaced,
        "credential {credential_id:?} changed meanwhile (renewed or imported by someone else?); \
         nothing done"
    );
    Ok(Imported {
        credential_id: credential_id.to_owned(),
        serial_number: info.serial_hex,
        previous_serial_number: old_info.serial_hex,
        subject: info.subject_dn,
        issuer: info.issuer_dn,
        not_before: info.not_before,
        not_after: info.not_after,
        signature_qualifier: info.qualifier,
        chain_length: issued.len,
    })
}
