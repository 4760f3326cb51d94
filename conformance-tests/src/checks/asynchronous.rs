//! The asynchronous mode (CSC v2 `operationMode: "A"` on `signatures/signHash` and
//! `signatures/signDoc`, answered by `signatures/signPolling`): gated on
//! `info.asynchronousOperationMode` and the method being advertised; the unknown-requestID
//! error, malformed calls and a made-up SAD refused, the polled signature verified, and the
//! answer polled again unchanged (with `--callback-listen`, the signing call carries a
//! `response_uri`: [`async_callback`](super::async_callback)); and the asynchronous signDoc
//! row, paid for by the signDoc credential's main SAD ([`signdoc`](super::signdoc) plans it).

use super::*;

/// `validity_period` of the suite's asynchronous calls, milliseconds: long enough to poll the
/// answer twice, well within CSC's usual bounds.
const ASYNC_VALIDITY_MS: u64 = 60_000;
/// How often and how long an asynchronous call's answer is polled for.
const POLL_EVERY: Duration = Duration::from_millis(100);
const POLL_FOR: Duration = Duration::from_secs(30);
const MAX_POLLS: usize = 300;

impl Suite<'_> {
    /// Why the asynchronous checks cannot run (None: they can). signHash itself is required
    /// by every signing task (see `blocker`).
    pub(super) fn async_unsupported(&self) -> Option<String> {
        if !self.async_mode {
            return Some("info.asynchronousOperationMode is not true".into());
        }
        if !self.advertised("signatures/signPolling") {
            return Some(Self::not_advertised("signatures/signPolling"));
        }
        None
    }

    /// `signatures/signPolling` for a requestID no call was answered with.
    pub(super) fn async_service_errors(&mut self) {
        if let Some(why) = self.async_unsupported() {
            self.skip(n::ASYNC_UNKNOWN_ID, None, &why);
            return;
        }
        let token = self.bearer();
        let random: u128 = rand::random();
        let body = json!({"requestID": format!("csc-conformance-unknown-{random:032x}")});
        let sent = self.call("signatures/signPolling", Auth::Bearer(&token), &body);
        self.error_check(n::ASYNC_UNKNOWN_ID, None, sent, &[400], INVALID_REQUEST);
    }

    /// A signHash body made asynchronous: `operationMode: "A"` and a `validity_period`.
    fn async_body(cred: &Cred, sad: &str, plan: &SignPlan, hashes: &[String]) -> Value {
        let mut body = Self::sign_body(cred, sad, plan, hashes);
        set(&mut body, "operationMode", json!("A"));
        set(&mut body, "validity_period", json!(ASYNC_VALIDITY_MS));
        body
    }

    /// The `responseID` of an accepted asynchronous call to `method`: HTTP 200, a non-empty
    /// string, and no signatures yet.
    pub(super) fn response_id_of(&mut self, method: &str, r: &Resp) -> Result<String, String> {
        self.expect_ok(method, r, 200)?;
        let signed = ["signatures", "SignatureObject", "DocumentWithSignature"];
        if signed.iter().any(|k| r.body.get(k).is_some()) {
            return Err(format!(
                "an asynchronous call is answered with a responseID, not signatures: {}",
                r.summary()
            ));
        }
        r.body
            .get("responseID")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("no responseID string: {}", r.summary()))
    }

    /// Poll `id` until the call has its answer (anything but 202), every [`POLL_EVERY`] for at
    /// most [`POLL_FOR`] (and never more than [`MAX_POLLS`] times); every 202 must be the CSC
    /// error `accepted_request`. The answer and how many polls it took.
    fn poll_answer(&mut self, id: &str) -> Result<(Resp, usize), String> {
        let body = json!({"requestID": id});
        let started = Instant::now();
        let file = schema::file_for("signatures/signPolling", Kind::Response);
        for polls in 1..=MAX_POLLS {
            let token = self.bearer();
            let r = self.call("signatures/signPolling", Auth::Bearer(&token), &body)?;
            if r.status != 202 {
                return Ok((r, polls));
            }
            if r.json_error.is_some() || r.error_code() != Some("accepted_request") {
                return Err(format!(
                    "HTTP 202 must carry the CSC error accepted_request: {}",
                    r.summary()
                ));
            }
            self.schema_note("schema: signatures/signPolling response", &file, &r.body);
            if started.elapsed() >= POLL_FOR {
                break;
            }
            std::thread::sleep(POLL_EVERY);
        }
        Err(format!(
            "still HTTP 202 accepted_request after {:.1} s of polling",
            started.elapsed().as_secs_f64()
        ))
    }

    /// A CSC error with a 4xx status, whatever its code, carrying nothing signed.
    pub(super) fn expect_client_error(&mut self, r: &Resp) -> Result<String, String> {
        let status = (!(400..500).contains(&r.status)).then(|| "expected a 4xx status".to_string());
        let code = r
            .error_code()
            .is_none_or(str::is_empty)
            .then(|| "expected a CSC error body with an error code".to_string());
        self.refusal(r, status, code)
    }

    /// An asynchronous signHash with a SAD of its own: malformed calls and a made-up SAD first
    /// (while the SAD is live, so that only the fault is refused), then the call that signs,
    /// its answer polled and verified, and polled again.
    pub(super) fn async_task(&mut self, cred: &mut Cred) {
        let c = cred.id.clone();
        let cid = Some(c.as_str());
        if cred.authorize_failed {
            let why = "credentials/authorize failed earlier; not retried (lockout counters)";
            self.skip_all(n::ASYNC_TASK, cid, why);
            return;
        }
        let Some(plan) = cred.plans.first().copied() else {
            self.skip_all(n::ASYNC_TASK, cid, "no signAlgo the suite can verify");
            return;
        };
        let digest = self.hash(cred, "async");
        let Some((sad, ttl)) = self.authorize_row(
            cred,
            std::slice::from_ref(&digest),
            n::ASYNC_AUTHZ,
            &[
                n::ASYNC_MALFORMED,
                n::ASYNC_FAKE_SAD,
                n::ASYNC_CALLBACK,
                n::ASYNC_SIGN,
                n::ASYNC_POLL_AGAIN,
            ],
        ) else {
            return;
        };
        let issued = Instant::now();
        let valid = Self::async_body(cred, &sad, &plan, &[b64(&digest)]);

        let res = self.async_malformed(cred, &valid);
        self.result(n::ASYNC_MALFORMED, cid, res);
        let res = self.async_fake_sad(&valid);
        self.result(n::ASYNC_FAKE_SAD, cid, res);

        // With a callback listener the call carries a response_uri, and its callback is
        // awaited before the answer is polled (the callback row, paid for by this signature).
        let (sent, announced) = self.async_sign_call(&valid, cid);
        let mut polls_taken = 0;
        let signed = sent.and_then(|id| {
            let (r, polls) = self.poll_answer(&id)?;
            polls_taken = polls;
            self.expect_ok("signatures/signPolling", &r, 200)?;
            let d = Self::verify_answer(cred, &plan, &digest, &r)?;
            Ok((id, r, format!("answered after {polls} poll(s): {d}")))
        });
        let polled = match &signed {
            Ok(_) => Ok(polls_taken),
            Err(e) => Err(e.clone()),
        };
        self.callback_verdict(announced, polled, cid);
        let (id, first) = match signed {
            Ok((id, first, d)) => {
                self.record(n::ASYNC_SIGN, cid, Outcome::Pass, d);
                (id, first)
            }
            Err(e) => {
                let e = with_sad_age(e, issued, ttl);
                self.record(n::ASYNC_SIGN, cid, Outcome::Fail, e);
                let why = "no signed answer to poll again";
                self.skip(n::ASYNC_POLL_AGAIN, cid, why);
                return;
            }
        };
        // An answer may be polled again within its validity period: the same answer.
        let token = self.bearer();
        let res = self
            .call(
                "signatures/signPolling",
                Auth::Bearer(&token),
                &json!({"requestID": id}),
            )
            .and_then(|r| {
                self.expect_ok("signatures/signPolling", &r, first.status)?;
                let (a, b) = (r.body.get("signatures"), first.body.get("signatures"));
                if a != b {
                    return Err(format!(
                        "the signatures differ from the first answer's: {}",
                        r.summary()
                    ));
                }
                Ok(format!(
                    "HTTP {}, the same {} signature(s)",
                    r.status,
                    a.and_then(Value::as_array).map_or(0, Vec::len)
                ))
            });
        self.result(n::ASYNC_POLL_AGAIN, cid, res);
    }

    /// Asynchronous calls that are malformed whoever's credential and SAD they name (hashes
    /// not base64; a `signAlgo` OID no algorithm has): refused at once with 400
    /// `invalid_request` and no `responseID`. One wrongly accepted is polled to its end
    /// before the SAD is used again.
    fn async_malformed(&mut self, cred: &Cred, valid: &Value) -> Result<String, String> {
        let token = self.bearer();
        let mut not_base64 = valid.clone();
        set(&mut not_base64, "hashes", json!(["%%%not-base64%%%"]));
        // An OID under 2.25 (UUIDs as integers) names no algorithm.
        let unknown_oid = format!("2.25.{}", rand::random::<u64>());
        let mut unknown_algo = valid.clone();
        set(&mut unknown_algo, "signAlgo", json!(unknown_oid));
        set(
            &mut unknown_algo,
            "hashAlgorithmOID",
            json!(cred.hash.oid()),
        );
        if let Some(obj) = unknown_algo.as_object_mut() {
            obj.remove("signAlgoParams");
        }
        let cases = [
            ("hashes not base64".to_string(), not_base64),
            (format!("unknown signAlgo {unknown_oid}"), unknown_algo),
        ];
        let (mut passed, mut problems) = (Vec::new(), Vec::new());
        for (what, body) in cases {
            let r = self.call_bad("signatures/signHash", Auth::Bearer(&token), &body)?;
            let accepted = r.body.get("responseID").and_then(Value::as_str);
            if let (200, Some(id)) = (r.status, accepted) {
                let later = match self.poll_answer(id) {
                    Ok((answer, _)) => answer.summary(),
                    Err(e) => e,
                };
                problems.push(format!(
                    "{what}: accepted (HTTP 200 with a responseID) instead of refused at once; \
                     its polled answer: {later}"
                ));
                continue;
            }
            match self.expect_error(&r, &[400], INVALID_REQUEST) {
                Ok(d) => passed.push(format!("{what}: {d}")),
                Err(e) => problems.push(format!("{what}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(passed.join("; "))
        } else {
            Err(problems.join("; "))
        }
    }

    /// An asynchronous call with a random SAD: refused at once with a 4xx CSC error, or
    /// accepted and its polled answer a 4xx CSC error; never signatures.
    fn async_fake_sad(&mut self, valid: &Value) -> Result<String, String> {
        let token = self.bearer();
        let mut body = valid.clone();
        let random: u128 = rand::random();
        set(
            &mut body,
            "SAD",
            json!(format!("csc-conformance-random-SAD-{random:032x}")),
        );
        let r = self.call_bad("signatures/signHash", Auth::Bearer(&token), &body)?;
        if r.status != 200 {
            return self
                .expect_client_error(&r)
                .map(|d| format!("refused at once: {d}"));
        }
        let id = self.response_id_of("signatures/signHash", &r)?;
        let (answer, polls) = self.poll_answer(&id)?;
        if answer.status == 200 {
            return Err(format!(
                "the polled answer of a call with a made-up SAD must be a CSC error: {}",
                answer.summary()
            ));
        }
        self.expect_client_error(&answer)
            .map(|d| format!("accepted, then polled ({polls} poll(s)): {d}"))
    }

    /// The asynchronous signDoc check, one more signature of the signDoc credential's main SAD
    /// (no authorization of its own): `body`, a synchronous detached CAdES-B-B over `digest`,
    /// sent with `operationMode: "A"`; accepted with a responseID, polled to its answer, whose
    /// `SignatureObject` must verify as the synchronous B-B's does; recorded as `row`. Whether
    /// the polled answer was 200 (so spent a signature of the SAD, whether or not what came
    /// back is right).
    pub(super) fn doc_async_row(
        &mut self,
        cred: &Cred,
        (plan, body, digest): (&SignPlan, &Value, &[u8]),
        (issued, ttl): (Instant, Option<u64>),
        row: &str,
    ) -> bool {
        let mut body = body.clone();
        set(&mut body, "operationMode", json!("A"));
        set(&mut body, "validity_period", json!(ASYNC_VALIDITY_MS));
        let token = self.bearer();
        let mut spent = false;
        let signed = self
            .call("signatures/signDoc", Auth::Bearer(&token), &body)
            .and_then(|r| self.response_id_of("signatures/signDoc", &r))
            .and_then(|id| {
                let (r, polls) = self.poll_answer(&id)?;
                spent = r.status == 200;
                let expect = DocExpect::Detached { digest, t: false };
                let method = "signatures/signPolling";
                let d = self.verify_doc_answer(method, cred, plan, expect, &r)?;
                Ok(format!("answered after {polls} poll(s): {d}"))
            })
            .map_err(|e| with_sad_age(e, issued, ttl));
        self.result(row, Some(&cred.id), signed);
        spent
    }
}
