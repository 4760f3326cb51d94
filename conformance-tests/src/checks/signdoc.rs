//! `signatures/signDoc` (CSC v2; CAdES, ETSI EN 319 122-1): the bodies sent and the checks
//! (which of them a credential's main SAD pays for is [`doc_plan`](super::doc_plan)'s): an unknown
//! `signature_format` refused, detached CAdES-B-B and B-T and an attached CAdES verified (the
//! asynchronous B-B's call and polling are in [`asynchronous`](super::asynchronous), the
//! detached whole document and the several-entries call in [`signdoc_batch`](super::signdoc_batch)),
//! the spent SAD or an unbound hash refused.

use super::*;

/// The credential's key and its end-entity certificate (DER), to verify a CAdES with.
pub(super) fn signer_of(cred: &Cred) -> Result<(&Leaf, Vec<u8>), String> {
    let leaf = cred.leaf.as_ref().ok_or("no certificate to verify with")?;
    let cert = cred
        .info
        .pointer("/cert/certificates/0")
        .and_then(Value::as_str)
        .and_then(|t| std_base64(t).ok())
        .ok_or("no end-entity certificate in credentials/info")?;
    Ok((leaf, cert))
}

/// The signature one signDoc call must return.
#[derive(Debug, Clone, Copy)]
pub(super) enum DocExpect<'a> {
    /// A detached CAdES over `digest`, B-B or (`t`) B-T.
    Detached { digest: &'a [u8], t: bool },
    /// An attached CAdES of `document`.
    Attached { document: &'a [u8] },
    /// A detached CAdES of the whole `document` (its digest with the plan's hash).
    DetachedDocument { document: &'a [u8] },
}

impl Suite<'_> {
    /// A signDoc body: one detached CAdES at `level` over `digest` (`documentDigests`).
    fn doc_body(cred: &Cred, sad: &str, plan: &SignPlan, digest: &[u8], level: &str) -> Value {
        let item = Self::doc_item(cred, plan, &[digest], level);
        json!({"credentialID": cred.id, "SAD": sad, "documentDigests": [item]})
    }

    /// One `documentDigests` entry: detached CAdES at `level` over `digests`, with `plan`.
    pub(super) fn doc_item(cred: &Cred, plan: &SignPlan, digests: &[&[u8]], level: &str) -> Value {
        let hashes: Vec<String> = digests.iter().map(|d| b64(d)).collect();
        let mut item = json!({
            "hashes": hashes,
            "hashAlgorithmOID": cred.hash.oid(),
            "signAlgo": plan.sign_algo,
            "signature_format": "C",
            "conformance_level": level,
            "signed_envelope_property": "Detached",
        });
        if let Ok(Some(params)) = plan.params_b64() {
            set(&mut item, "signAlgoParams", json!(params));
        }
        item
    }

    /// A signDoc body: one CAdES-B-B of `document` (`documents`), `envelope` "Attached" or
    /// "Detached".
    pub(super) fn doc_document_body(
        cred: &Cred,
        sad: &str,
        plan: &SignPlan,
        document: &[u8],
        envelope: &str,
    ) -> Value {
        let mut item = json!({
            "document": b64(document),
            "signAlgo": plan.sign_algo,
            "signature_format": "C",
            "conformance_level": "Ades-B-B",
            "signed_envelope_property": envelope,
        });
        if let Ok(Some(params)) = plan.params_b64() {
            set(&mut item, "signAlgoParams", json!(params));
        }
        json!({"credentialID": cred.id, "SAD": sad, "documents": [item]})
    }

    /// The one signature of a signDoc answer (given at once by `method` signatures/signDoc, or
    /// polled from signatures/signPolling) — a `SignatureObject` when detached, a
    /// `DocumentWithSignature` when attached, nothing in the other array — checked as
    /// `expect` says, made with the credential's key and certificate.
    pub(super) fn verify_doc_answer(
        &mut self,
        method: &str,
        cred: &Cred,
        plan: &SignPlan,
        expect: DocExpect<'_>,
        r: &Resp,
    ) -> Result<String, String> {
        self.expect_ok(method, r, 200)?;
        let (field, other, kind) = match expect {
            DocExpect::Detached { .. } => (
                "SignatureObject",
                "DocumentWithSignature",
                "a detached signature over a digest",
            ),
            DocExpect::Attached { .. } => (
                "DocumentWithSignature",
                "SignatureObject",
                "an attached signature of a document",
            ),
            DocExpect::DetachedDocument { .. } => (
                "SignatureObject",
                "DocumentWithSignature",
                "a detached signature of a document",
            ),
        };
        let objects = r
            .body
            .get(field)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no {field} array: {}", r.summary()))?;
        let [object] = objects.as_slice() else {
            return Err(format!("{} {field}s for {kind}", objects.len()));
        };
        let others = r
            .body
            .get(other)
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if others != 0 {
            return Err(format!("{others} {other} for {kind}"));
        }
        let cms = object
            .as_str()
            .ok_or_else(|| format!("{field}[0] is not a string"))
            .and_then(|t| std_base64(t).map_err(|_| format!("{field}[0] is not base64")))?;
        let (leaf, cert) = signer_of(cred)?;
        let d = match expect {
            DocExpect::Detached { digest, t: false } => {
                crate::cades::verify_detached(leaf, &cert, plan, digest, &cms)?
            }
            DocExpect::Detached { digest, t: true } => {
                crate::cades::verify_detached_t(leaf, &cert, plan, digest, &cms, unix_now())?
            }
            DocExpect::Attached { document } => {
                crate::cades::verify_attached(leaf, &cert, plan, document, &cms)?
            }
            DocExpect::DetachedDocument { document } => {
                crate::cades::verify_detached_document(leaf, &cert, plan, document, &cms)?
            }
        };
        Ok(format!("{}-byte CMS: {d}", cms.len()))
    }

    /// One signDoc call that must sign (`body`), its answer checked as `expect` says, recorded
    /// as `row`. Whether it was answered 200 (so spent a signature of the SAD, whether or not
    /// what came back is right).
    pub(super) fn doc_sign_row(
        &mut self,
        cred: &Cred,
        (plan, body, expect): (&SignPlan, &Value, DocExpect<'_>),
        (issued, ttl): (Instant, Option<u64>),
        row: &str,
    ) -> bool {
        let token = self.bearer();
        let sent = self.call("signatures/signDoc", Auth::Bearer(&token), body);
        let ok = matches!(&sent, Ok(r) if r.status == 200);
        let signed = sent
            .and_then(|r| self.verify_doc_answer("signatures/signDoc", cred, plan, expect, &r))
            .map_err(|e| with_sad_age(e, issued, ttl));
        self.result(row, Some(&cred.id), signed);
        ok
    }

    /// signDoc with the credential's main SAD, which still authorizes the digests of `inputs`:
    /// a made-up signature_format, (SCAL 2) a hash the SAD does not bind (`unbound`), both
    /// while the SAD is live; then the detached CAdES-B-B, the B-T, the attached CAdES, the
    /// asynchronous B-B, the detached document and the several-entries call the plan has, each
    /// verified; then the B-B call again, the SAD now
    /// spent. Whether every signing call was answered 200 (so the SAD's signatures are all
    /// spent).
    pub(super) fn doc_checks(
        &mut self,
        cred: &Cred,
        sad: (&str, Instant, Option<u64>),
        plan: &SignPlan,
        inputs: &DocInputs,
        unbound: &[u8],
    ) -> bool {
        let cid = Some(cred.id.as_str());
        let (sad, issued, ttl) = sad;
        let token = self.bearer();
        let valid = Self::doc_body(cred, sad, plan, &inputs.b, "Ades-B-B");

        // Not a CSC signature_format: refused, not signed in some other format.
        let mut bad_format = valid.clone();
        if let Some(item) = bad_format.pointer_mut("/documentDigests/0") {
            set(item, "signature_format", json!("Z"));
        }
        let sent = self.call_bad("signatures/signDoc", Auth::Bearer(&token), &bad_format);
        let res = sent
            .and_then(|r| self.expect_error(&r, &[400], INVALID_REQUEST))
            .map(|d| format!("signature_format \"Z\": {d}"));
        self.result(n::DOC_BAD_FORMAT, cid, res);

        // SCAL 2: a hash outside the SAD (any 4xx CSC error, e.g. 403 invalid_hash).
        let unbound_res = cred.scal2.then(|| {
            let body = Self::doc_body(cred, sad, plan, unbound, "Ades-B-B");
            self.call("signatures/signDoc", Auth::Bearer(&token), &body)
                .and_then(|r| self.expect_client_error(&r))
                .map(|d| format!("a hash the SAD does not bind: {d}"))
                .map_err(|e| format!("a hash the SAD does not bind: {e}"))
        });

        let when = (issued, ttl);
        let b = DocExpect::Detached {
            digest: &inputs.b,
            t: false,
        };
        let b_ok = self.doc_sign_row(cred, (plan, &valid, b), when, n::DOC_SIGN);
        let mut all_ok = b_ok;
        if let Some(digest) = &inputs.t {
            let body = Self::doc_body(cred, sad, plan, digest, "Ades-B-T");
            let t = DocExpect::Detached { digest, t: true };
            all_ok &= self.doc_sign_row(cred, (plan, &body, t), when, n::DOC_SIGN_T);
        }
        if let Some((p, document)) = &inputs.attached {
            let body = Self::doc_document_body(cred, sad, p, document, "Attached");
            let a = DocExpect::Attached { document };
            all_ok &= self.doc_sign_row(cred, (p, &body, a), when, n::DOC_ATTACHED);
        }
        if let Some(digest) = &inputs.asynchronous {
            let body = Self::doc_body(cred, sad, plan, digest, "Ades-B-B");
            all_ok &= self.doc_async_row(cred, (plan, &body, digest), when, n::DOC_ASYNC);
        }
        all_ok &= self.doc_batch_rows(cred, (sad, issued, ttl), inputs);

        // The B-B call again: its signature is spent (SCAL 1: the budget, so only once every
        // call signed; SCAL 2: the budget or the hash's one use).
        let send_again = b_ok && (all_ok || cred.scal2);
        let spent_res = send_again.then(|| {
            self.call("signatures/signDoc", Auth::Bearer(&token), &valid)
                .and_then(|r| self.expect_client_error(&r))
                .map(|d| format!("the same call again, the SAD spent: {d}"))
                .map_err(|e| format!("the same call again, the SAD spent: {e}"))
        });
        let parts: Vec<Result<String, String>> = unbound_res.into_iter().chain(spent_res).collect();
        if parts.is_empty() {
            self.skip(
                n::DOC_REFUSED,
                cid,
                "SCAL 1 (no hash binding) and a signDoc call was not answered 200: nothing \
                 spent to refuse",
            );
        } else {
            let failed = parts.iter().any(Result::is_err);
            let mut detail = parts
                .iter()
                .map(|p| match p {
                    Ok(d) | Err(d) => d.as_str(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            if !send_again {
                detail.push_str(
                    " (a signDoc call was not answered 200: the spent-SAD call is not sent)",
                );
            }
            self.result(
                n::DOC_REFUSED,
                cid,
                if failed { Err(detail) } else { Ok(detail) },
            );
        }
        all_ok
    }
}
