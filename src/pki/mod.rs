//! STUB
#![allow(clippy::all, unused)]
pub trait CaKey {
    fn spki_der(&self) -> &[u8];
    fn sign_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError>;
}
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0}")]
    Key(String),
    #[error("{0}")]
    Rcgen(String),
    #[error("{0}")]
    Parse(String),
}
pub fn self_signed_ca(
    key: &dyn CaKey,
    common_name: &str,
    now: time::OffsetDateTime,
) -> Result<Vec<u8>, PkiError> {
    todo!()
}
pub fn issue_end_entity(
    ca_cert_der: &[u8],
    ca_key: &dyn CaKey,
    subject_spki_der: &[u8],
    common_name: &str,
    days: u32,
    now: time::OffsetDateTime,
) -> Result<Vec<u8>, PkiError> {
    todo!()
}
pub struct CertInfo {
    pub subject_dn: String,
    pub issuer_dn: String,
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
    pub spki_der: Vec<u8>,
}
pub fn parse(der: &[u8]) -> Result<CertInfo, PkiError> {
    todo!()
}
pub fn generalized_time(unix: i64) -> String {
    todo!()
}
pub fn split_chain(concatenated_der: &[u8]) -> Result<Vec<Vec<u8>>, PkiError> {
    todo!()
}
