//! Two more `signatures/signDoc` rows paid for by the signDoc credential's main SAD (planned by
//! [`doc_plan`](super::doc_plan)): a whole document (`documents`) signed **detached** — one
//! `SignatureObject`, a CMS without eContent whose message-digest is the document's digest —
//! and **several entries and hashes in one call** — two `documentDigests` entries (two hashes
//! with the credential's first signAlgo, one with its second), answered with one
//! `SignatureObject` per hash in request order, each verified against its own hash
//! ([`cades_batch`](crate::cades_batch)).

use super::signdoc::signer_of;
use super::*;

impl Suite<'_> {
    /// The detached-document and several-entries rows `inputs` has, with the main SAD. Whether
    /// every call sent was answered 200 (so spent its signatures of the SAD).
    pub(super) fn doc_batch_rows(
        &mut self,
        cred: &Cred,
        (sad, issued, ttl): (&str, Instant, Option<u64>),
        inputs: &DocInputs,
    ) -> bool {
        let when = (issued, ttl);
        let mut all_ok = true;
        if let Some((p, document)) = &inputs.detached_doc {
            let body = Self::doc_document_body(cred, sad, p, document, "Detached");
            let d = DocExpect::DetachedDocument { document };
            all_ok &= self.doc_sign_row(cred, (p, &body, d), when, n::DOC_DETACHED_DOC);
        }
        if let Some(digests) = &inputs.several {
            let (body, expected) = Self::several_body(cred, sad, digests);
            let token = self.bearer();
            let sent = self.call("signatures/signDoc", Auth::Bearer(&token), &body);
            all_ok &= matches!(&sent, Ok(r) if r.status == 200);
            let res = sent
                .and_then(|r| self.verify_several(cred, &expected, &r))
                .map_err(|e| with_sad_age(e, issued, ttl));
            self.result(n::DOC_SEVERAL, Some(&cred.id), res);
        }
        all_ok
    }

    /// The several-entries body: `documentDigests` `[{hashes: [d0, d1], the credential's first
    /// signAlgo}, {hashes: [d2], its second (else the first)}]`, detached CAdES-B-B; and what
    /// each signature must be, in request order.
    pub(super) fn several_body<'d>(
        cred: &Cred,
        sad: &str,
        digests: &'d [Vec<u8>],
    ) -> (Value, Vec<cades_batch::Expected<'d>>) {
        let (Some(p1), [first @ .., last]) = (cred.plans.first().copied(), digests) else {
            return (json!({}), Vec::new());
        };
        let p2 = cred.plans.get(1).copied().unwrap_or(p1);
        let first: Vec<&[u8]> = first.iter().map(Vec::as_slice).collect();
        let items = [
            Self::doc_item(cred, &p1, &first, "Ades-B-B"),
            Self::doc_item(cred, &p2, &[last.as_slice()], "Ades-B-B"),
        ];
        let mut expected: Vec<cades_batch::Expected<'d>> =
            first.into_iter().map(|d| (p1, d)).collect();
        expected.push((p2, last.as_slice()));
        let body = json!({"credentialID": cred.id, "SAD": sad, "documentDigests": items});
        (body, expected)
    }

    /// The several-entries answer: 200, one `SignatureObject` per hash (no
    /// `DocumentWithSignature`), each a detached CAdES-B-B over its own hash, in request order.
    pub(super) fn verify_several(
        &mut self,
        cred: &Cred,
        expected: &[cades_batch::Expected<'_>],
        r: &Resp,
    ) -> Result<String, String> {
        self.expect_ok("signatures/signDoc", r, 200)?;
        let objects = r
            .body
            .get("SignatureObject")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no SignatureObject array: {}", r.summary()))?;
        let others = r
            .body
            .get("DocumentWithSignature")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if others != 0 {
            return Err(format!(
                "{others} DocumentWithSignature for detached signatures over digests"
            ));
        }
        let cms = objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                o.as_str()
                    .ok_or_else(|| format!("SignatureObject[{i}] is not a string"))
                    .and_then(|t| {
                        std_base64(t).map_err(|_| format!("SignatureObject[{i}] is not base64"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (leaf, cert) = signer_of(cred)?;
        let d = cades_batch::verify_each_detached(leaf, &cert, expected, &cms)?;
        Ok(format!(
            "two documentDigests entries, {} hashes in one call: {d}",
            expected.len()
        ))
    }
}
