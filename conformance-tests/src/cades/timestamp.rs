//! CAdES-B-T's signature-time-stamp: the RFC 3161 TimeStampToken carried as an unsigned
//! attribute of the SignerInfo, checked against the signature value, the TSA's certificate in
//! the token, and the suite's clock.

use cms::signed_data::{CertificateSet, SignerInfo};
use der::{Decode, Encode};
use x509_cert::attr::Attribute;
use x509_tsp::TstInfo;

use super::{
    GEN_TIME_WINDOW_SECS, ID_CT_TST_INFO, ID_SIGNATURE_TIME_STAMP, content_attrs, econtent,
    hash_alg, one_signer, sid_matches, signed_data, single_value, verify_signed_attrs,
};
use crate::verify;

/// CAdES-B-T's signature-time-stamp of `si`: exactly one unsigned attribute
/// id-aa-signatureTimeStampToken with one value, a TimeStampToken (CMS SignedData of a TSTInfo,
/// RFC 3161 §2.4.2) whose messageImprint is the digest, with the imprint's own algorithm, of
/// the SignerInfo's signature value; whose one SignerInfo signed content-type id-ct-TSTInfo and
/// the TSTInfo's digest, and whose signature verifies with the certificate the token carries
/// for that signer's sid; and whose genTime is within [`GEN_TIME_WINDOW_SECS`] of `now`.
pub fn signature_time_stamp(si: &SignerInfo, now: u64) -> Result<String, String> {
    let unsigned: Vec<Attribute> = si
        .unsigned_attrs
        .iter()
        .flat_map(|set| set.iter().cloned())
        .collect();
    let token = single_value(
        &unsigned,
        ID_SIGNATURE_TIME_STAMP,
        "signature-time-stamp",
        "unsigned",
    )
    .map_err(|e| format!("CAdES-B-T: {e}"))?
    .to_der()
    .map_err(|e| format!("cannot encode the time-stamp token: {e}"))?;
    let what = "the time-stamp token";
    let sd = signed_data(&token, what)?;
    let ect = sd.encap_content_info.econtent_type.to_string();
    if ect != ID_CT_TST_INFO {
        return Err(format!(
            "{what}: eContentType is {ect}, not id-ct-TSTInfo ({ID_CT_TST_INFO})"
        ));
    }
    let tst_der = econtent(&sd)
        .map_err(|e| format!("{what}: {e}"))?
        .ok_or_else(|| format!("{what} carries no TSTInfo (no eContent)"))?;
    let tst = TstInfo::from_der(&tst_der).map_err(|e| format!("{what}: not a DER TSTInfo: {e}"))?;

    // The imprint: the digest of the signature value (the OCTET STRING's contents).
    let imprint_oid = tst.message_imprint.hash_algorithm.oid.to_string();
    let imprint_alg = hash_alg(&imprint_oid).ok_or_else(|| {
        format!("{what}: messageImprint hashes with {imprint_oid}, which the suite cannot compute")
    })?;
    if tst.message_imprint.hashed_message.as_bytes()
        != imprint_alg.digest(si.signature.as_bytes()).as_slice()
    {
        return Err(format!(
            "{what}: messageImprint is not the {} of the SignerInfo's signature value",
            imprint_alg.name()
        ));
    }

    // The TSA's signature, with the certificate the token carries for its signer.
    let tsi = one_signer(&sd, what)?;
    let tsa_cert = sd
        .certificates
        .iter()
        .flat_map(|CertificateSet(set)| set.iter())
        .find_map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(c) if sid_matches(&tsi.sid, c, false) => {
                Some(c)
            }
            _ => None,
        })
        .ok_or_else(|| format!("{what} carries no certificate its SignerInfo's sid names"))?;
    let tsa_leaf = verify::leaf_key(tsa_cert).map_err(|e| format!("the TSA's certificate: {e}"))?;
    let dig_oid = tsi.digest_alg.oid.to_string();
    let dig = hash_alg(&dig_oid).ok_or_else(|| {
        format!("{what}: digestAlgorithm {dig_oid}, which the suite cannot compute")
    })?;
    content_attrs(
        tsi,
        ID_CT_TST_INFO,
        &dig.digest(&tst_der),
        "the digest of the TSTInfo",
    )
    .map_err(|e| format!("{what}: {e}"))?;
    let plan = verify::cms_plan(&tsa_leaf.kind, &tsi.signature_algorithm, dig)
        .map_err(|e| format!("{what}: {e}"))?;
    verify_signed_attrs(tsi, &tsa_leaf, &plan)
        .map_err(|e| format!("{what}: the TSA's signature: {e}"))?;

    let stamped = tst.gen_time.to_unix_duration().as_secs();
    let off = i128::from(stamped) - i128::from(now);
    if off.unsigned_abs() > u128::from(GEN_TIME_WINDOW_SECS) {
        return Err(format!(
            "{what}: genTime {} is {off} s from the suite's clock (more than \
             {GEN_TIME_WINDOW_SECS} s)",
            tst.gen_time.to_date_time()
        ));
    }
    Ok(format!(
        "signature-time-stamp: messageImprint = the {} of the signature value, the TSA's \
         signature ({}) verifies with the token's certificate ({}), genTime {} ({off:+} s)",
        imprint_alg.name(),
        plan.describe(),
        tsa_cert.tbs_certificate.subject,
        tst.gen_time.to_date_time()
    ))
}
