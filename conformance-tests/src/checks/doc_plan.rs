//! Which `signatures/signDoc` checks a credential's main SAD can pay for ([`DocPlan`], chosen
//! by [`Suite::doc_offer`] within its `multisign`, a row it cannot pay for SKIP with why), what
//! `info` must offer for each, and what they sign ([`DocInputs`]: the digests and documents the
//! SAD authorizes).

use super::*;

/// The multisign a credential needs for the signDoc checks: two signHash signatures and one
/// signDoc signature (the CAdES-B-B) from its main SAD; the B-T, the attached, the
/// asynchronous signature and the detached document take one more each, the several-entries
/// call [`SEVERAL_HASHES`].
pub(super) const DOC_MULTISIGN: u64 = 3;

/// The hashes of the several-entries call: two in its first `documentDigests` entry, one in
/// its second.
pub(super) const SEVERAL_HASHES: u64 = 3;

/// The signDoc checks one credential's main SAD pays for, beyond the CAdES-B-B (one
/// signature each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct DocPlan {
    /// A detached CAdES-B-T too.
    pub(super) t: bool,
    /// An attached CAdES of a whole document, signed with this plan: its signAlgo implies the
    /// digest (a `documents` entry has no hashAlgorithmOID).
    pub(super) attached: Option<SignPlan>,
    /// A detached CAdES-B-B of one more digest, asynchronously (`operationMode: "A"`).
    pub(super) asynchronous: bool,
    /// A detached CAdES of a whole document (`documents`, `Detached`), signed with this plan
    /// (its signAlgo implies the digest).
    pub(super) detached_doc: Option<SignPlan>,
    /// One call with two `documentDigests` entries, [`SEVERAL_HASHES`] hashes in all.
    pub(super) several: bool,
}

impl DocPlan {
    /// The signatures the plan takes from the SAD.
    pub(super) fn signatures(&self) -> u64 {
        1 + u64::from(self.t)
            + u64::from(self.attached.is_some())
            + u64::from(self.asynchronous)
            + u64::from(self.detached_doc.is_some())
            + if self.several { SEVERAL_HASHES } else { 0 }
    }

    /// The rows the plan records.
    pub(super) fn rows(&self) -> Vec<&'static str> {
        let mut rows = vec![n::DOC_BAD_FORMAT, n::DOC_SIGN];
        if self.t {
            rows.push(n::DOC_SIGN_T);
        }
        if self.attached.is_some() {
            rows.push(n::DOC_ATTACHED);
        }
        if self.asynchronous {
            rows.push(n::DOC_ASYNC);
        }
        if self.detached_doc.is_some() {
            rows.push(n::DOC_DETACHED_DOC);
        }
        if self.several {
            rows.push(n::DOC_SEVERAL);
        }
        rows.push(n::DOC_REFUSED);
        rows
    }
}

/// Why no whole document can be signed: no signAlgo says the digest.
const NO_IMPLIED_DIGEST: &str = "no signAlgo of key.algo the suite signs with implies the digest \
                                 algorithm (a documents entry carries no hashAlgorithmOID)";

/// What the signDoc calls sign: the digests and the document the main SAD authorizes.
pub(super) struct DocInputs {
    /// The digest signed as a detached CAdES-B-B.
    pub(super) b: Vec<u8>,
    /// The digest signed as a detached CAdES-B-T.
    pub(super) t: Option<Vec<u8>>,
    /// The document signed as an attached CAdES, and how.
    pub(super) attached: Option<(SignPlan, Vec<u8>)>,
    /// The digest signed as a detached CAdES-B-B asynchronously.
    pub(super) asynchronous: Option<Vec<u8>>,
    /// The document signed as a detached CAdES, and how.
    pub(super) detached_doc: Option<(SignPlan, Vec<u8>)>,
    /// The [`SEVERAL_HASHES`] digests of the several-entries call, in request order.
    pub(super) several: Option<Vec<Vec<u8>>>,
}

impl DocInputs {
    /// Every digest the signDoc checks sign, for the SAD to authorize.
    pub(super) fn digests(&self) -> Vec<Vec<u8>> {
        let mut all = vec![self.b.clone()];
        all.extend(self.t.clone());
        all.extend(self.attached.as_ref().map(|(p, d)| p.hash.digest(d)));
        all.extend(self.asynchronous.clone());
        all.extend(self.detached_doc.as_ref().map(|(p, d)| p.hash.digest(d)));
        all.extend(self.several.iter().flatten().cloned());
        all
    }
}

impl Suite<'_> {
    /// Why the signDoc checks cannot run (None: they can): the method is not advertised, or
    /// `info` says the server builds no CAdES, or no baseline B level.
    pub(super) fn doc_unsupported(&self) -> Option<String> {
        if !self.advertised("signatures/signDoc") {
            return Some(Self::not_advertised("signatures/signDoc"));
        }
        if let Some(formats) = &self.signature_formats
            && !formats.iter().any(|f| f == "C")
        {
            return Some(format!(
                "info.signature_formats.formats {formats:?} does not offer C (CAdES)"
            ));
        }
        if let Some(levels) = &self.conformance_levels
            && !levels.is_empty()
            && !levels.iter().any(|l| l.eq_ignore_ascii_case("Ades-B-B"))
        {
            return Some(format!(
                "info.conformance_levels {levels:?} does not offer Ades-B-B"
            ));
        }
        None
    }

    /// Why the CAdES-B-T check cannot run (None: it can): `info.conformance_levels` lists
    /// levels, Ades-B-T not among them.
    fn doc_t_unsupported(&self) -> Option<String> {
        match &self.conformance_levels {
            Some(levels)
                if !levels.is_empty()
                    && !levels.iter().any(|l| l.eq_ignore_ascii_case("Ades-B-T")) =>
            {
                Some(format!(
                    "info.conformance_levels {levels:?} does not offer Ades-B-T"
                ))
            }
            _ => None,
        }
    }

    /// Why the attached check cannot run (None: it can): `info.signature_formats` gives the
    /// envelope properties of C, Attached not among them. (An attached CAdES can only be made
    /// of a whole document, so a server that offers it must take `documents`.)
    fn doc_attached_unsupported(&self) -> Option<String> {
        match &self.cades_envelopes {
            Some(envelopes) if !envelopes.iter().any(|e| e == "Attached") => Some(format!(
                "info.signature_formats.envelope_properties for C is {envelopes:?}: no Attached"
            )),
            _ => None,
        }
    }

    /// Why the detached-document check cannot run (None: it can): `info.signature_formats`
    /// gives the envelope properties of C, Detached not among them.
    pub(super) fn doc_detached_doc_unsupported(&self) -> Option<String> {
        match &self.cades_envelopes {
            Some(envelopes) if !envelopes.iter().any(|e| e == "Detached") => Some(format!(
                "info.signature_formats.envelope_properties for C is {envelopes:?}: no Detached"
            )),
            _ => None,
        }
    }

    /// The signDoc checks `cred`'s main SAD could pay for beyond the CAdES-B-B (its multisign
    /// less the two signHash signatures and the B-B), B-T first, then the attached, then the
    /// asynchronous one, and the rows left out, with why.
    pub(super) fn doc_offer(&self, cred: &Cred) -> (DocPlan, Vec<(&'static str, String)>) {
        let mut spare = cred.multisign.saturating_sub(DOC_MULTISIGN);
        let mut plan = DocPlan::default();
        let mut skipped = Vec::new();
        let no_spare = |plan: &DocPlan| {
            format!(
                "multisign {}: the SAD (two signHash signatures, {} signDoc) has no signature \
                 to spare for it",
                cred.multisign,
                plan.signatures()
            )
        };
        match self.doc_t_unsupported() {
            Some(why) => skipped.push((n::DOC_SIGN_T, why)),
            None if spare > 0 => {
                plan.t = true;
                spare -= 1;
            }
            None => skipped.push((n::DOC_SIGN_T, no_spare(&plan))),
        }
        // A `documents` entry has no hashAlgorithmOID: the signAlgo must imply the digest.
        let implied = cred.plans.iter().find(|p| !p.send_hash_oid).copied();
        match (self.doc_attached_unsupported(), implied) {
            (Some(why), _) => skipped.push((n::DOC_ATTACHED, why)),
            (None, None) => skipped.push((n::DOC_ATTACHED, NO_IMPLIED_DIGEST.into())),
            (None, Some(p)) if spare > 0 => {
                plan.attached = Some(p);
                spare -= 1;
            }
            (None, Some(_)) => skipped.push((n::DOC_ATTACHED, no_spare(&plan))),
        }
        match self.async_unsupported() {
            Some(why) => skipped.push((n::DOC_ASYNC, why)),
            None if spare > 0 => {
                plan.asynchronous = true;
                spare -= 1;
            }
            None => skipped.push((n::DOC_ASYNC, no_spare(&plan))),
        }
        match (self.doc_detached_doc_unsupported(), implied) {
            (Some(why), _) => skipped.push((n::DOC_DETACHED_DOC, why)),
            (None, None) => skipped.push((n::DOC_DETACHED_DOC, NO_IMPLIED_DIGEST.into())),
            (None, Some(p)) if spare > 0 => {
                plan.detached_doc = Some(p);
                spare -= 1;
            }
            (None, Some(_)) => skipped.push((n::DOC_DETACHED_DOC, no_spare(&plan))),
        }
        if spare >= SEVERAL_HASHES {
            plan.several = true;
        } else {
            let why = format!(
                "{}; the call needs {SEVERAL_HASHES}",
                no_spare(&plan).replace("no signature", "too few signatures")
            );
            skipped.push((n::DOC_SEVERAL, why));
        }
        (plan, skipped)
    }

    /// A document the suite signs (`envelope`: "attached", "detached"): text that belongs to
    /// this run only.
    pub(super) fn document(&self, cred: &Cred, envelope: &str) -> Vec<u8> {
        format!(
            "csc-conformance {} {}: a whole document, signed {envelope}\n",
            self.nonce, cred.id
        )
        .into_bytes()
    }
}
