//! The SAD lifecycle on one credential: a second SAD, `credentials/extendTransaction` and a
//! signature with the extended SAD, then the SAD refused once its `expiresIn` (CSC v2
//! `credentials/authorize` output) has passed.

use super::*;

impl Suite<'_> {
    pub(super) fn lifecycle_task(&mut self, cred: &mut Cred) {
        let c = cred.id.clone();
        let cid = Some(c.as_str());
        let extend = self.advertised("credentials/extendTransaction");
        let max_wait = self.cfg.max_wait.as_secs();
        let too_long = |ttl: u64| ttl.saturating_add(1) > max_wait;
        let expiry_skip =
            |ttl: u64| format!("expiresIn {ttl} s + 1 s exceeds --max-wait-secs {max_wait}");
        if cred.authorize_failed {
            let why = "credentials/authorize failed earlier; not retried (lockout counters)";
            self.skip_all(n::LIFECYCLE_TASK, cid, why);
            return;
        }
        let ttl_known = cred.sad_ttl.unwrap_or(DEFAULT_SAD_TTL);
        if !extend && too_long(ttl_known) {
            self.skip(
                n::AUTHZ_AGAIN,
                cid,
                "nothing to do: no extendTransaction, no expiry check",
            );
            let why = Self::not_advertised("credentials/extendTransaction");
            self.skip_all(&[n::EXTEND, n::SIGN_EXTENDED], cid, &why);
            self.skip(n::SAD_EXPIRY, cid, &expiry_skip(ttl_known));
            return;
        }
        let count = if cred.multisign >= 2 { 2 } else { 1 };
        let hashes: Vec<Vec<u8>> = ["h4", "h5"]
            .into_iter()
            .take(count)
            .map(|l| self.hash(cred, l))
            .collect();
        let Some((mut sad, mut ttl)) = self.authorize_row(
            cred,
            &hashes,
            n::AUTHZ_AGAIN,
            &[n::EXTEND, n::SIGN_EXTENDED, n::SAD_EXPIRY],
        ) else {
            return;
        };
        let mut issued = Instant::now();
        let Some(p1) = cred.plans.first().copied() else {
            return;
        };
        let token = self.bearer();
        if extend {
            let mut body = json!({"credentialID": c, "SAD": sad});
            if cred.scal2 {
                set(
                    &mut body,
                    "hashes",
                    json!(hashes.iter().map(|h| b64(h)).collect::<Vec<_>>()),
                );
                set(&mut body, "hashAlgorithmOID", json!(cred.hash.oid()));
            }
            let res = self
                .call("credentials/extendTransaction", Auth::Bearer(&token), &body)
                .and_then(|r| self.sad_of("credentials/extendTransaction", &r));
            match res {
                Ok((new_sad, new_ttl)) => {
                    let same = new_sad == sad;
                    issued = Instant::now();
                    sad = new_sad;
                    ttl = new_ttl;
                    self.record(
                        n::EXTEND,
                        cid,
                        Outcome::Pass,
                        format!(
                            "{} SAD, expiresIn {}",
                            if same { "same" } else { "new" },
                            ttl.map_or("absent".into(), |t| format!("{t} s"))
                        ),
                    );
                    if let (2, Some(h4)) = (count, hashes.first()) {
                        let plan = cred.plans.get(2).copied().unwrap_or(p1);
                        let res = self.sign_and_verify(cred, (&sad, issued, ttl), &plan, h4);
                        self.result(n::SIGN_EXTENDED, cid, res);
                    } else {
                        self.skip(
                            n::SIGN_EXTENDED,
                            cid,
                            "multisign is 1: the one signature is kept for the expiry check",
                        );
                    }
                }
                Err(e) => {
                    self.record(n::EXTEND, cid, Outcome::Fail, e);
                    self.skip(n::SIGN_EXTENDED, cid, "extendTransaction failed");
                }
            }
        } else {
            let why = Self::not_advertised("credentials/extendTransaction");
            self.skip_all(&[n::EXTEND, n::SIGN_EXTENDED], cid, &why);
        }

        let ttl = ttl.unwrap_or(DEFAULT_SAD_TTL);
        if too_long(ttl) {
            self.skip(n::SAD_EXPIRY, cid, &expiry_skip(ttl));
            return;
        }
        let Some(last) = hashes.last() else {
            return;
        };
        let until = issued + Duration::from_secs(ttl + 1);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        let body = Self::sign_body(cred, &sad, &p1, &[b64(last)]);
        let sent = self.call("signatures/signHash", Auth::Bearer(&token), &body);
        let res = sent
            .and_then(|r| self.expect_error(&r, &[400], INVALID_REQUEST))
            .map(|d| format!("waited {} s: {d}", ttl + 1));
        self.result(n::SAD_EXPIRY, cid, res);
    }
}
