//! `signatures/signHash` (CSC v2) with a credential's main SAD: the error answers (missing or
//! unknown credential, malformed base64, wrong hash length, unsupported signAlgo, made-up or
//! another credential's SAD, SCAL 2 unbound hash), the two bound hashes signed and verified against
//! the certificate, the spent SAD refused; and the helpers that build signHash bodies and verify
//! their signatures for the other areas.

use super::*;

impl Suite<'_> {
    /// A digest that belongs to this run only.
    pub(super) fn hash(&self, cred: &Cred, label: &str) -> Vec<u8> {
        cred.hash
            .digest(format!("csc-conformance {} {} {label}", self.nonce, cred.id).as_bytes())
    }

    pub(super) fn sign_body(cred: &Cred, sad: &str, plan: &SignPlan, hashes: &[String]) -> Value {
        Self::sign_body_for(&cred.id, sad, plan, hashes)
    }

    fn sign_body_for(id: &str, sad: &str, plan: &SignPlan, hashes: &[String]) -> Value {
        let mut body = json!({
            "credentialID": id,
            "SAD": sad,
            "hashes": hashes,
            "signAlgo": plan.sign_algo,
        });
        if plan.send_hash_oid {
            set(&mut body, "hashAlgorithmOID", json!(plan.hash.oid()));
        }
        if let Ok(Some(params)) = plan.params_b64() {
            set(&mut body, "signAlgoParams", json!(params));
        }
        body
    }

    /// signHash over `digest` and verify the one signature against the certificate. A failure
    /// says how old the SAD was (a slow client may simply have let it expire).
    pub(super) fn sign_and_verify(
        &mut self,
        cred: &Cred,
        sad: (&str, Instant, Option<u64>),
        plan: &SignPlan,
        digest: &[u8],
    ) -> Result<String, String> {
        let (sad, issued, ttl) = sad;
        self.sign_and_verify_inner(cred, sad, plan, digest)
            .map_err(|e| with_sad_age(e, issued, ttl))
    }

    fn sign_and_verify_inner(
        &mut self,
        cred: &Cred,
        sad: &str,
        plan: &SignPlan,
        digest: &[u8],
    ) -> Result<String, String> {
        let body = Self::sign_body(cred, sad, plan, &[b64(digest)]);
        let token = self.bearer();
        let r = self.call("signatures/signHash", Auth::Bearer(&token), &body)?;
        self.expect_ok("signatures/signHash", &r, 200)?;
        Self::verify_answer(cred, plan, digest, &r)
    }

    /// The one signature of a signHash answer (given at once, or polled for an asynchronous
    /// call), verified against the credential's certificate.
    pub(super) fn verify_answer(
        cred: &Cred,
        plan: &SignPlan,
        digest: &[u8],
        r: &Resp,
    ) -> Result<String, String> {
        let sigs = r
            .body
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no signatures array: {}", r.summary()))?;
        if sigs.len() != 1 {
            return Err(format!("{} signatures for 1 hash", sigs.len()));
        }
        let sig = sigs
            .first()
            .and_then(Value::as_str)
            .ok_or("signatures[0] is not a string")?;
        let sig = std_base64(sig).map_err(|e| format!("signatures[0]: {e}"))?;
        let leaf = cred.leaf.as_ref().ok_or("no certificate to verify with")?;
        verify::verify(leaf, plan, digest, &sig)?;
        Ok(format!(
            "{}: {}-byte signature verifies against the certificate",
            plan.describe(),
            sig.len()
        ))
    }

    pub(super) fn main_task(&mut self, cred: &mut Cred) {
        let c = cred.id.clone();
        let cid = Some(c.as_str());
        let count = if cred.multisign >= 2 { 2 } else { 1 };
        let (h1, h2, h3) = (
            self.hash(cred, "h1"),
            self.hash(cred, "h2"),
            self.hash(cred, "h3"),
        );
        // The signDoc credential's SAD authorizes one hash more per signDoc signature: the
        // digests signed detached (B-B, B-T), the digest of the document signed attached, the
        // digest signed asynchronously, the digest of the document signed detached and the
        // several-entries call's digests (after the two signHash signatures, before the
        // exhaustion check).
        let doc = cred.doc.map(|plan| DocInputs {
            b: self.hash(cred, "signDoc"),
            t: plan.t.then(|| self.hash(cred, "signDoc B-T")),
            attached: plan.attached.map(|p| (p, self.document(cred, "attached"))),
            asynchronous: plan.asynchronous.then(|| self.hash(cred, "signDoc async")),
            detached_doc: plan
                .detached_doc
                .map(|p| (p, self.document(cred, "detached"))),
            several: plan.several.then(|| {
                (0..doc_plan::SEVERAL_HASHES)
                    .map(|i| self.hash(cred, &format!("signDoc several {i}")))
                    .collect()
            }),
        });
        let mut bound: Vec<Vec<u8>> = [h1.clone(), h2.clone()].into_iter().take(count).collect();
        bound.extend(doc.iter().flat_map(DocInputs::digests));
        let doc_signatures = cred.doc.map_or(0, |d| d.signatures());
        let pin = self.cfg.pin.clone();
        let granted = self
            .authorize(cred, &bound, &pin)
            .and_then(|r| self.sad_of("credentials/authorize", &r));
        let sad = match granted {
            Ok((sad, ttl)) => {
                cred.sad_ttl = ttl;
                self.record(
                    n::AUTHZ,
                    cid,
                    Outcome::Pass,
                    format!(
                        "SAD for {} hash(es) ({}){}, expiresIn {}",
                        bound.len(),
                        cred.hash.name(),
                        if doc_signatures > 0 {
                            format!(", {doc_signatures} for signDoc")
                        } else {
                            String::new()
                        },
                        ttl.map_or("absent".into(), |t| format!("{t} s"))
                    ),
                );
                sad
            }
            Err(e) => {
                cred.authorize_failed = true;
                self.record(n::AUTHZ, cid, Outcome::Fail, e);
                let why = "no SAD: credentials/authorize failed";
                self.skip_all(n::MAIN_TASK, cid, why);
                if let Some(plan) = cred.doc {
                    self.skip_all(&plan.rows(), cid, why);
                }
                return;
            }
        };
        let (issued, ttl) = (Instant::now(), cred.sad_ttl);
        let Some(p1) = cred.plans.first().copied() else {
            return;
        };
        let p2 = cred.plans.get(1).copied().unwrap_or(p1);
        let token = self.bearer();
        let auth = Auth::Bearer(&token);
        let base = Self::sign_body(cred, &sad, &p1, &[b64(&h1)]);
        let with = |key: &str, value: Option<Value>| {
            let mut b = base.clone();
            if let Some(obj) = b.as_object_mut() {
                match value {
                    Some(v) => {
                        obj.insert(key.to_string(), v);
                    }
                    None => {
                        obj.remove(key);
                    }
                }
            }
            b
        };
        let unknown = format!("csc-conformance-unknown-{}", self.nonce);
        let short = b64(&vec![
            0x5a;
            cred.hash.digest_len().saturating_sub(12).max(1)
        ]);
        let other_algo = {
            let algos: Vec<&str> = cred.key_algo.iter().map(String::as_str).collect();
            verify::unsupported_sign_algo(&algos)
        };
        let bad_algo = {
            let mut b = with("signAlgo", Some(json!(other_algo)));
            if let Some(obj) = b.as_object_mut() {
                obj.insert("hashAlgorithmOID".into(), json!(cred.hash.oid()));
                obj.remove("signAlgoParams");
            }
            b
        };
        // A digest shorter than hashAlgorithmOID says.
        let mut bad_length = with("hashes", Some(json!([short])));
        set(&mut bad_length, "hashAlgorithmOID", json!(cred.hash.oid()));
        let fake_sad = format!("csc-conformance-made-up-SAD-{}", self.nonce);
        let other_sad = cred.other.clone().map(|(id, plan, hash)| {
            let digest = if hash == cred.hash {
                h1.clone()
            } else {
                hash.digest(format!("csc-conformance {} {id} other", self.nonce).as_bytes())
            };
            Self::sign_body_for(&id, &sad, &plan, &[b64(&digest)])
        });
        let mut cases: Vec<(&str, Value)> = vec![
            (n::SIGN_MISSING_ID, with("credentialID", None)),
            (
                n::SIGN_UNKNOWN_ID,
                with("credentialID", Some(json!(unknown))),
            ),
            (
                n::SIGN_BAD_BASE64,
                with("hashes", Some(json!(["%%%not-base64%%%"]))),
            ),
            (n::SIGN_BAD_ALGO, bad_algo),
            (n::SIGN_FAKE_SAD, with("SAD", Some(json!(fake_sad)))),
        ];
        if !cred.scal2 {
            cases.insert(3, (n::SIGN_BAD_LENGTH, bad_length));
        }
        for (name, body) in cases {
            let sent = self.call_bad("signatures/signHash", auth, &body);
            self.error_check(name, cid, sent, &[400], INVALID_REQUEST);
        }
        if cred.scal2 {
            // Without authData, like the other parameter checks: no failed attempt is counted.
            let body = json!({"credentialID": c, "numSignatures": 1, "hashes": [short],
                              "hashAlgorithmOID": cred.hash.oid()});
            let res = self
                .call_bad("credentials/authorize", auth, &body)
                .and_then(|r| self.expect_error(&r, &[400], INVALID_REQUEST))
                .map(|d| format!("SCAL 2, a short digest to credentials/authorize: {d}"));
            self.result(n::SIGN_BAD_LENGTH, cid, res);
        }
        // This credential's live SAD with another credential's ID (§4.1: the SAD is bound to
        // its credential).
        match other_sad {
            Some(body) => {
                let sent = self.call_bad("signatures/signHash", auth, &body);
                self.error_check(n::SIGN_OTHER_SAD, cid, sent, &[400], INVALID_REQUEST);
            }
            None => self.skip(
                n::SIGN_OTHER_SAD,
                cid,
                "one credential under test: no other credential to present the SAD for",
            ),
        }
        if cred.scal2 {
            let body = Self::sign_body(cred, &sad, &p1, &[b64(&h3)]);
            let sent = self.call("signatures/signHash", auth, &body);
            self.error_check(n::SCAL2_UNBOUND, cid, sent, &[400], INVALID_REQUEST);
        } else {
            self.skip(
                n::SCAL2_UNBOUND,
                cid,
                "the credential is SCAL 1 (SADs are not bound to hashes)",
            );
        }
        let res = self.sign_and_verify(cred, (&sad, issued, ttl), &p1, &h1);
        self.result(n::SIGN_FIRST, cid, res);
        if count == 2 {
            let res = self.sign_and_verify(cred, (&sad, issued, ttl), &p2, &h2);
            self.result(n::SIGN_SECOND, cid, res);
        } else {
            self.skip(
                n::SIGN_SECOND,
                cid,
                "multisign is 1: the SAD covers one hash",
            );
        }
        // signDoc spends the SAD's last signatures (the document digests).
        let doc_signed = match &doc {
            Some(d) => self.doc_checks(cred, (&sad, issued, ttl), &p1, d, &h3),
            None => true,
        };
        // The budget (numSignatures) is spent: one more signature must be refused. SCAL 1: a
        // hash never signed, so the budget alone is tested. SCAL 2: only bound hashes are
        // signable, so a bound hash is signed again.
        if !doc_signed && !cred.scal2 {
            let why = "a signDoc call was not answered 200: the SAD may have a signature left \
                       (SCAL 1)";
            self.skip(n::SAD_EXHAUSTED, cid, why);
            return;
        }
        let (again, what) = if cred.scal2 {
            (
                if count == 2 { &h2 } else { &h1 },
                "SCAL 2: a bound hash sent again (refused for the spent budget or the reuse)",
            )
        } else {
            (&h3, "a fresh hash after numSignatures were spent")
        };
        let body = Self::sign_body(cred, &sad, &p1, &[b64(again)]);
        let res = self
            .call("signatures/signHash", auth, &body)
            .and_then(|r| self.expect_error(&r, &[400], INVALID_REQUEST))
            .map(|d| format!("{what}: {d}"));
        self.result(n::SAD_EXHAUSTED, cid, res);
    }
}
