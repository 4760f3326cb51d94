//! `credentials/authorize` (CSC v2 §11.6) and the scheduling of every authorization: which
//! credential gets which task, in rounds that share the waits for a fresh TOTP step; online OTP
//! challenges (`credentials/getChallenge`, v1 `sendOTP`); `authData`; the SAD and `expiresIn`
//! of an answer; the wrong-PIN and wrong-OTP refusals.

use super::*;

impl Suite<'_> {
    /// Each authorization costs a fresh OTP, so: the wrong-PIN check on the last credential,
    /// the SAD lifecycle (extendTransaction, expiry) on the first, one signing SAD on each;
    /// run in rounds so credentials share the waits for the next TOTP step.
    pub(super) fn authorizations(&mut self, creds: &mut [Cred]) {
        let ready: Vec<usize> = creds
            .iter()
            .enumerate()
            .filter(|(_, c)| c.blocked.is_none())
            .map(|(i, _)| i)
            .collect();
        for cred in creds.iter().filter(|c| c.blocked.is_some()) {
            let why = cred.blocked.clone().unwrap_or_default();
            let c = Some(cred.id.as_str());
            self.skip(n::AUTHZ, c, &why);
            self.skip_all(n::MAIN_TASK, c, &why);
        }
        if ready.is_empty() {
            let why = if creds.is_empty() {
                "no credential to test"
            } else {
                "no credential the suite can authorize"
            };
            self.skip_all(&[n::AUTHZ_WRONG_PIN, n::AUTHZ_WRONG_OTP], None, why);
            self.skip_all(n::LIFECYCLE_TASK, None, why);
            let doc_why = self.doc_unsupported().unwrap_or_else(|| why.to_string());
            self.skip_all(n::DOC_TASK, None, &doc_why);
            let why = self.async_unsupported().unwrap_or_else(|| why.to_string());
            self.skip_all(n::ASYNC_TASK, None, &why);
            return;
        }
        let first = ready.first().copied().unwrap_or(0);
        // The wrong PIN and wrong OTP go to the last credential that has a PIN or a time-based
        // OTP (two deliberate failures, well under any lockout threshold).
        let has = |i: usize, f: Factor| {
            creds
                .get(i)
                .is_some_and(|c| c.factors.iter().any(|(_, x)| *x == f))
        };
        let wrong_target = ready
            .iter()
            .rev()
            .copied()
            .find(|&i| has(i, Factor::Pin) || has(i, Factor::OfflineOtp));
        if wrong_target.is_none() {
            let why = "no credential has a PIN or time-based OTP auth object";
            self.skip_all(&[n::AUTHZ_WRONG_PIN, n::AUTHZ_WRONG_OTP], None, why);
        }
        // For the another-credential's-SAD check: each credential's neighbour in `ready`.
        for (k, &i) in ready.iter().enumerate() {
            let j = ready.get((k + 1) % ready.len()).copied().unwrap_or(i);
            let other = creds
                .get(j)
                .filter(|_| j != i)
                .and_then(|o| o.plans.first().map(|p| (o.id.clone(), *p, o.hash)));
            if let Some(c) = creds.get_mut(i) {
                c.other = other;
            }
        }
        // One credential: [WrongAuth, Main, Lifecycle]. Several: the first gets [Main,
        // Lifecycle], the wrong-auth target [WrongAuth, Main], the others [Main] — at most two
        // TOTP steps each.
        let mut tasks: Vec<(usize, Vec<Task>)> = Vec::new();
        for &i in &ready {
            let mut t = Vec::new();
            if Some(i) == wrong_target {
                t.push(Task::WrongPin);
            }
            t.push(Task::Main);
            if i == first {
                t.push(Task::Lifecycle);
            }
            tasks.push((i, t));
        }
        // The asynchronous call has an authorization of its own, on one credential: one with
        // the fewest tasks (the last of those), so that it adds at most one TOTP step.
        match self.async_unsupported() {
            Some(why) => self.skip_all(n::ASYNC_TASK, None, &why),
            None => {
                let fewest = tasks.iter().map(|(_, t)| t.len()).min().unwrap_or(0);
                if let Some((_, t)) = tasks.iter_mut().rev().find(|(_, t)| t.len() == fewest) {
                    t.push(Task::Async);
                }
            }
        }
        // signDoc needs no authorization of its own: the main SAD of one credential (of those
        // whose multisign allows the most signDoc checks, the last) authorizes one hash more
        // per signDoc signature.
        match self.doc_unsupported() {
            Some(why) => self.skip_all(n::DOC_TASK, None, &why),
            None => {
                let target = ready
                    .iter()
                    .copied()
                    .filter_map(|i| creds.get(i).map(|c| (i, c)))
                    .filter(|(_, c)| c.multisign >= DOC_MULTISIGN)
                    .map(|(i, c)| (i, self.doc_offer(c)))
                    .max_by_key(|(_, (plan, _))| plan.signatures());
                match target {
                    Some((i, (plan, skipped))) => {
                        if let Some(cred) = creds.get_mut(i) {
                            cred.doc = Some(plan);
                            for (row, why) in skipped {
                                self.skip(row, Some(&cred.id), &why);
                            }
                        }
                    }
                    None => self.skip_all(
                        n::DOC_TASK,
                        None,
                        &format!(
                            "no credential has multisign {DOC_MULTISIGN} or more: its SAD (two \
                             signHash signatures) has none to spare for signDoc"
                        ),
                    ),
                }
            }
        }
        let rounds = tasks.iter().map(|(_, t)| t.len()).max().unwrap_or(0);
        for round in 0..rounds {
            for (i, list) in &tasks {
                let (Some(task), Some(cred)) = (list.get(round), creds.get_mut(*i)) else {
                    continue;
                };
                match task {
                    Task::WrongPin => self.wrong_pin_task(cred),
                    Task::Main => self.main_task(cred),
                    Task::Lifecycle => self.lifecycle_task(cred),
                    Task::Async => self.async_task(cred),
                }
            }
        }
    }

    /// Trigger an online OTP for `object`; returns the in-band challenge, if any.
    fn challenge(&mut self, cred: &mut Cred, object: &str) -> Result<Option<String>, String> {
        let token = self.bearer();
        let c = cred.id.clone();
        let res = if self.advertised("credentials/getChallenge") {
            self.call(
                "credentials/getChallenge",
                Auth::Bearer(&token),
                &json!({"credentialID": c, "authObjectID": object}),
            )
            .and_then(|r| match r.status {
                204 => Ok(None),
                200 => r
                    .body
                    .get("challenge")
                    .and_then(Value::as_str)
                    .map(|s| Some(s.to_string()))
                    .ok_or_else(|| format!("HTTP 200 without a challenge: {}", r.summary())),
                _ => Err(format!("expected HTTP 200 or 204, got {}", r.summary())),
            })
        } else if self.advertised("credentials/sendOTP") {
            self.call(
                "credentials/sendOTP",
                Auth::Bearer(&token),
                &json!({"credentialID": c}),
            )
            .and_then(|r| match r.status {
                200 | 204 => Ok(None),
                _ => Err(format!("expected HTTP 204, got {}", r.summary())),
            })
        } else {
            Err("online OTP, but neither credentials/getChallenge nor credentials/sendOTP is advertised".into())
        };
        if !cred.challenge_recorded || res.is_err() {
            cred.challenge_recorded = true;
            let row = res
                .as_ref()
                .map(|ch| match ch {
                    Some(_) => "HTTP 200 with an in-band challenge".to_string(),
                    None => "challenge sent out of band".to_string(),
                })
                .map_err(Clone::clone);
            self.result(n::CHALLENGE, Some(&c), row);
        }
        res
    }

    /// `authData` for the credential's auth objects.
    fn auth_data(
        &mut self,
        cred: &mut Cred,
        pin: &str,
        wrong_otp: bool,
    ) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for (id, factor) in cred.factors.clone() {
            let value = match factor {
                Factor::Pin => Some(pin.to_string()),
                // Not a code of any step near now, and the real code stays unused.
                Factor::OfflineOtp if wrong_otp => Some(self.otp.wrong_offline_code(&cred.id)?),
                Factor::OfflineOtp => Some(self.otp.offline_code(&cred.id)?),
                Factor::OnlineOtp => {
                    let challenge = self.challenge(cred, &id)?;
                    Some(self.otp.online_code(&cred.id, challenge.as_deref())?)
                }
                Factor::NoValue => None,
            };
            out.push(match value {
                Some(v) => json!({"id": id, "value": v}),
                None => json!({"id": id}),
            });
        }
        Ok(out)
    }

    /// `credentials/authorize` for `hashes` with `pin` and a fresh OTP.
    pub(super) fn authorize(
        &mut self,
        cred: &mut Cred,
        hashes: &[Vec<u8>],
        pin: &str,
    ) -> Result<Resp, String> {
        self.authorize_with(cred, hashes, pin, false)
    }

    /// `credentials/authorize`; `wrong_otp`: send a code that is not valid now.
    fn authorize_with(
        &mut self,
        cred: &mut Cred,
        hashes: &[Vec<u8>],
        pin: &str,
        wrong_otp: bool,
    ) -> Result<Resp, String> {
        let auth_data = self.auth_data(cred, pin, wrong_otp)?;
        let body = json!({
            "credentialID": cred.id,
            "numSignatures": hashes.len(),
            "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            "hashAlgorithmOID": cred.hash.oid(),
            "authData": auth_data,
            "description": "csc-conformance",
        });
        let token = self.bearer();
        self.call("credentials/authorize", Auth::Bearer(&token), &body)
    }

    /// The SAD and expiresIn of an authorize or extendTransaction answer.
    pub(super) fn sad_of(
        &mut self,
        method: &str,
        r: &Resp,
    ) -> Result<(String, Option<u64>), String> {
        if r.status == 202 {
            return Err(format!(
                "authorization pending (HTTP 202): asynchronous authorization is not supported by the suite: {}",
                r.summary()
            ));
        }
        self.expect_ok(method, r, 200)
            .map_err(|e| match r.error_code() {
                Some("invalid_authentication_data" | "invalid_pin" | "invalid_otp") => {
                    format!("{e} — are --pin and the OTP source right?")
                }
                _ => e,
            })?;
        let sad = r
            .body
            .get("SAD")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("no SAD: {}", r.summary()))?;
        Ok((
            sad.to_string(),
            r.body.get("expiresIn").and_then(formats::whole),
        ))
    }

    /// A wrong PIN (with a valid OTP), then the right PIN with a wrong OTP: both refused.
    pub(super) fn wrong_pin_task(&mut self, cred: &mut Cred) {
        let c = cred.id.clone();
        let has = |f: Factor| cred.factors.iter().any(|(_, x)| *x == f);
        let (pin_object, otp_object) = (has(Factor::Pin), has(Factor::OfflineOtp));
        if pin_object {
            let h = self.hash(cred, "wrong-pin");
            let pin = wrong_pin(&self.cfg.pin);
            let res = self.authorize(cred, &[h], &pin).and_then(|r| {
                if r.status == 200 {
                    return Err(format!("a wrong PIN was accepted: {}", r.summary()));
                }
                self.expect_error(&r, &[400], WRONG_PIN_CODES)
            });
            self.result(n::AUTHZ_WRONG_PIN, Some(&c), res);
        } else {
            self.skip(n::AUTHZ_WRONG_PIN, Some(&c), "no auth object is a PIN");
        }
        if otp_object {
            let h = self.hash(cred, "wrong-otp");
            let pin = self.cfg.pin.clone();
            let res = self.authorize_with(cred, &[h], &pin, true).and_then(|r| {
                if r.status == 200 {
                    return Err(format!("a wrong OTP was accepted: {}", r.summary()));
                }
                self.expect_error(&r, &[400], WRONG_OTP_CODES)
            });
            self.result(n::AUTHZ_WRONG_OTP, Some(&c), res);
        } else {
            self.skip(
                n::AUTHZ_WRONG_OTP,
                Some(&c),
                "no time-based OTP auth object (online OTPs are not tested with a wrong code)",
            );
        }
    }

    /// A SAD for `hashes` with the configured PIN, recorded as `row`: PASS with its lifetime,
    /// or FAIL, the credential marked (no later authorization of it) and `dependents` skipped.
    pub(super) fn authorize_row(
        &mut self,
        cred: &mut Cred,
        hashes: &[Vec<u8>],
        row: &str,
        dependents: &[&str],
    ) -> Option<(String, Option<u64>)> {
        let c = cred.id.clone();
        let cid = Some(c.as_str());
        let pin = self.cfg.pin.clone();
        let granted = self
            .authorize(cred, hashes, &pin)
            .and_then(|r| self.sad_of("credentials/authorize", &r));
        match granted {
            Ok((sad, ttl)) => {
                let d = format!(
                    "SAD for {} hash(es), expiresIn {}",
                    hashes.len(),
                    ttl.map_or("absent".into(), |t| format!("{t} s"))
                );
                self.record(row, cid, Outcome::Pass, d);
                Some((sad, ttl))
            }
            Err(e) => {
                cred.authorize_failed = true;
                self.record(row, cid, Outcome::Fail, e);
                self.skip_all(dependents, cid, "no SAD: credentials/authorize failed");
                None
            }
        }
    }
}
