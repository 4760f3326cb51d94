//! Credential discovery and static checks: `credentials/list` (CSC v2 §11.4, with its
//! `credentialInfos`), the error answers that need no credential of the user's own (missing
//! and unknown `credentialID`, invalid `certificates`), `credentials/info` (§11.5: schema,
//! formats, chain, key against certificate, certInfo rows), and whether and how the suite can
//! authorize each credential (its auth objects, [`factors`]).

use super::*;

impl Suite<'_> {
    /// `credentials/list`: the credentials under test and (if any) their listed infos.
    pub(super) fn list(&mut self) -> (Vec<String>, Vec<Value>) {
        let wanted = self.cfg.credentials.clone();
        if !self.advertised("credentials/list") {
            let why = Self::not_advertised("credentials/list");
            self.skip_all(&[n::LIST, n::LIST_INFOS], None, &why);
            return (wanted, Vec::new());
        }
        let token = self.bearer();
        let mut listed = Vec::new();
        let res = self
            .call("credentials/list", Auth::Bearer(&token), &json!({}))
            .and_then(|r| {
                self.expect_ok("credentials/list", &r, 200)?;
                listed = str_list(r.body.get("credentialIDs"));
                let missing: Vec<&String> = wanted.iter().filter(|w| !listed.contains(w)).collect();
                if !missing.is_empty() {
                    return Err(format!(
                        "credentials given to the suite are not listed: {missing:?}"
                    ));
                }
                Ok(format!(
                    "{} credential(s): {}",
                    listed.len(),
                    listed.join(", ")
                ))
            });
        self.result(n::LIST, None, res);

        let mut infos = Vec::new();
        let body = json!({"credentialInfo": true, "certificates": "chain", "certInfo": true, "authInfo": true});
        let res = self
            .call("credentials/list", Auth::Bearer(&token), &body)
            .and_then(|r| {
                self.expect_ok("credentials/list", &r, 200)?;
                let ids = str_list(r.body.get("credentialIDs"));
                infos = r
                    .body
                    .get("credentialInfos")
                    .and_then(Value::as_array)
                    .cloned()
                    .ok_or("credentialInfos is missing although credentialInfo was true")?;
                let mut problems = Vec::new();
                if infos.len() != ids.len() {
                    problems.push(format!(
                        "{} credentialInfos for {} credentialIDs",
                        infos.len(),
                        ids.len()
                    ));
                }
                for (i, info) in infos.iter().enumerate() {
                    let id = info.get("credentialID").and_then(Value::as_str);
                    if !id.is_some_and(|id| ids.iter().any(|x| x == id)) {
                        problems.push(format!(
                            "credentialInfos[{i}].credentialID {id:?} is not in credentialIDs"
                        ));
                    }
                    let (p, _) = formats::credential_problems(info);
                    problems.extend(p.into_iter().map(|p| format!("credentialInfos[{i}]: {p}")));
                }
                if problems.is_empty() {
                    Ok(format!("{} credentialInfos", infos.len()))
                } else {
                    Err(problems.join("; "))
                }
            });
        self.result(n::LIST_INFOS, None, res);
        let ids = if wanted.is_empty() { listed } else { wanted };
        (ids, infos)
    }

    /// Error answers that need no credential of the user's own.
    pub(super) fn service_errors(&mut self) {
        let token = self.bearer();
        let unknown = format!("csc-conformance-unknown-{}", self.nonce);
        if self.advertised("credentials/info") {
            let sent = self.call_bad("credentials/info", Auth::Bearer(&token), &json!({}));
            self.error_check(n::INFO_MISSING_ID, None, sent, &[400], INVALID_REQUEST);
            let sent = self.call_bad(
                "credentials/info",
                Auth::Bearer(&token),
                &json!({"credentialID": unknown}),
            );
            self.error_check(n::INFO_UNKNOWN_ID, None, sent, &[400], INVALID_REQUEST);
        } else {
            let why = Self::not_advertised("credentials/info");
            self.skip_all(&[n::INFO_MISSING_ID, n::INFO_UNKNOWN_ID], None, &why);
        }
        if self.advertised("credentials/authorize") {
            // No authData: these must fail on the parameters, never count as a failed attempt.
            let body = json!({"numSignatures": 1, "hashes": [b64(&[0u8; 32])],
                              "hashAlgorithmOID": HashAlg::Sha256.oid()});
            let sent = self.call_bad("credentials/authorize", Auth::Bearer(&token), &body);
            self.error_check(n::AUTHZ_MISSING_ID, None, sent, &[400], INVALID_REQUEST);
            let mut body = body;
            set(&mut body, "credentialID", json!(unknown));
            let sent = self.call_bad("credentials/authorize", Auth::Bearer(&token), &body);
            self.error_check(n::AUTHZ_UNKNOWN_ID, None, sent, &[400], INVALID_REQUEST);
        } else {
            let why = Self::not_advertised("credentials/authorize");
            self.skip_all(&[n::AUTHZ_MISSING_ID, n::AUTHZ_UNKNOWN_ID], None, &why);
        }
    }

    /// `credentials/info` and the static checks of one credential.
    pub(super) fn credential(&mut self, id: &str, listed: Option<Value>) -> Cred {
        let token = self.bearer();
        let mut cred = Cred::new(id);
        let c = Some(id);
        let listed_copy = listed.clone();
        if self.advertised("credentials/info") {
            let body = json!({"credentialID": id, "certificates": "chain", "certInfo": true, "authInfo": true});
            match self.call("credentials/info", Auth::Bearer(&token), &body) {
                Ok(r) => {
                    let ok = self.expect_ok("credentials/info", &r, 200);
                    if r.status == 200 && r.body.is_object() {
                        cred.info = r.body.clone();
                    }
                    let ok = ok.map(|()| {
                        format!(
                            "SCAL {}, multisign {}, key.status {}",
                            r.body
                                .get("SCAL")
                                .and_then(Value::as_str)
                                .unwrap_or("absent (1)"),
                            r.body.get("multisign").map_or("?".into(), Value::to_string),
                            r.body
                                .pointer("/key/status")
                                .and_then(Value::as_str)
                                .unwrap_or("?")
                        )
                    });
                    self.result(n::CRED_INFO, c, ok);
                }
                Err(e) => self.result(n::CRED_INFO, c, Err(e)),
            }
            if self.report.named(n::INFO_BAD_CERTIFICATES).is_empty() {
                let body = json!({"credentialID": id, "certificates": "csc-conformance-bogus"});
                let sent = self.call_bad("credentials/info", Auth::Bearer(&token), &body);
                self.error_check(
                    n::INFO_BAD_CERTIFICATES,
                    None,
                    sent,
                    &[400],
                    INVALID_REQUEST,
                );
            }
        } else if let Some(info) = listed {
            cred.info = info;
            self.skip(
                n::CRED_INFO,
                c,
                "credentials/info is not advertised; using credentials/list's credentialInfos",
            );
        } else {
            self.skip(n::CRED_INFO, c, &Self::not_advertised("credentials/info"));
        }
        if cred.info.is_null() {
            let why = "no credential information";
            self.skip_all(&[n::CRED_FORMATS, n::CRED_CHAIN, n::CRED_KEY], c, why);
            self.skip_all(n::CERT_INFO_ROWS, c, why);
            self.list_cert_info_row(id, listed_copy.as_ref(), None);
            cred.blocked = Some(why.into());
            return cred;
        }

        let (problems, checked) = formats::credential_problems(&cred.info);
        let res = if problems.is_empty() {
            Ok(format!("{checked} OID/base64 values well formed"))
        } else {
            Err(problems.join("; "))
        };
        self.result(n::CRED_FORMATS, c, res);

        let chain = cred
            .info
            .pointer("/cert/certificates")
            .and_then(Value::as_array)
            .cloned();
        let chain_res = match chain {
            None => {
                Err("cert.certificates is missing although certificates=chain was asked".into())
            }
            Some(list) if list.is_empty() => Err("cert.certificates is empty".into()),
            Some(list) => verify::parse_certificates(&list).and_then(|certs| {
                verify::check_chain_order(&certs)?;
                let first = certs.first().ok_or("no certificate")?;
                cred.leaf = Some(verify::leaf_key(first)?);
                Ok(format!(
                    "{} certificate(s), end entity first: {}",
                    certs.len(),
                    first.tbs_certificate.subject
                ))
            }),
        };
        self.result(n::CRED_CHAIN, c, chain_res);

        let key = cred.info.get("key").cloned().unwrap_or(Value::Null);
        match &cred.leaf {
            None => self.skip(n::CRED_KEY, c, "no end-entity certificate"),
            Some(leaf) => match verify::key_matches(leaf, &key) {
                Ok(Some(d)) => self.record(n::CRED_KEY, c, Outcome::Pass, d),
                Ok(None) => self.skip(
                    n::CRED_KEY,
                    c,
                    &format!("the suite does not know {} keys", leaf.kind.describe()),
                ),
                Err(e) => self.record(n::CRED_KEY, c, Outcome::Fail, e),
            },
        }

        let leaf_cert = verify::first_certificate(&cred.info);
        self.cert_info_rows(id, &cred.info, leaf_cert.as_ref());
        self.list_cert_info_row(id, listed_copy.as_ref(), leaf_cert.as_ref());

        cred.scal2 = cred.info.get("SCAL").and_then(Value::as_str) == Some("2");
        cred.multisign = cred
            .info
            .get("multisign")
            .and_then(formats::whole)
            .unwrap_or(1);
        cred.key_algo = str_list(key.get("algo"));
        cred.blocked = self.blocker(&mut cred).err();
        cred
    }

    fn verdict(&mut self, name: &str, cred: Option<&str>, v: Verdict) {
        match v {
            Verdict::Pass(d) => self.record(name, cred, Outcome::Pass, d),
            Verdict::Fail(d) => self.record(name, cred, Outcome::Fail, d),
            Verdict::Skip(d) => self.record(name, cred, Outcome::Skip, d),
        }
    }

    /// `cert.serialNumber`, `subjectDN`, `issuerDN`, `validFrom`/`validTo` and `status`
    /// against the end-entity certificate of the same answer.
    fn cert_info_rows(&mut self, id: &str, info: &Value, leaf: Option<&x509_cert::Certificate>) {
        let cert = info.get("cert").cloned().unwrap_or(Value::Null);
        let v = certinfo::check(&cert, leaf, unix_now());
        let c = Some(id);
        self.verdict(n::CERT_SERIAL, c, v.serial);
        self.verdict(n::CERT_SUBJECT, c, v.subject);
        self.verdict(n::CERT_ISSUER, c, v.issuer);
        self.verdict(n::CERT_VALIDITY, c, v.validity);
        self.verdict(n::CERT_STATUS, c, v.status);
    }

    /// The same comparisons on the credential's entry of `credentials/list`'s
    /// `credentialInfos`, against its own end-entity certificate (else the one of
    /// `credentials/info`).
    fn list_cert_info_row(
        &mut self,
        id: &str,
        listed: Option<&Value>,
        info_leaf: Option<&x509_cert::Certificate>,
    ) {
        let c = Some(id);
        let Some(listed) = listed else {
            let why = "credentials/list returned no credentialInfos entry for the credential";
            self.skip(n::LIST_CERT_INFO, c, why);
            return;
        };
        let own = verify::first_certificate(listed);
        let (leaf, whose) = match (&own, info_leaf) {
            (Some(l), _) => (Some(l), "its own cert.certificates"),
            (None, Some(l)) => (Some(l), "credentials/info's certificate"),
            (None, None) => (None, "no certificate"),
        };
        let cert = listed.get("cert").cloned().unwrap_or(Value::Null);
        let v = match certinfo::check(&cert, leaf, unix_now()).combined() {
            Verdict::Pass(d) => Verdict::Pass(format!("{d} (compared with {whose})")),
            other => other,
        };
        self.verdict(n::LIST_CERT_INFO, c, v);
    }

    /// Whether (and how) the suite can authorize this credential.
    fn blocker(&self, cred: &mut Cred) -> Result<(), String> {
        for m in ["credentials/authorize", "signatures/signHash"] {
            if !self.advertised(m) {
                return Err(Self::not_advertised(m));
            }
        }
        let status = cred.info.pointer("/key/status").and_then(Value::as_str);
        if status != Some("enabled") {
            return Err(format!("key.status is {}", status.unwrap_or("absent")));
        }
        let mode = cred.info.pointer("/auth/mode").and_then(Value::as_str);
        if mode.is_some_and(|m| m != "explicit") {
            return Err(format!(
                "auth.mode {} needs OAuth 2.0, which the suite does not do",
                mode.unwrap_or_default()
            ));
        }
        let leaf = cred
            .leaf
            .as_ref()
            .ok_or("no usable end-entity certificate")?;
        let algos: Vec<&str> = cred.key_algo.iter().map(String::as_str).collect();
        let (hash, plans) = verify::plans_for(&leaf.kind, &algos).ok_or_else(|| {
            format!(
                "no signAlgo in key.algo {algos:?} that the suite can verify for a {} key",
                leaf.kind.describe()
            )
        })?;
        cred.hash = hash;
        cred.plans = plans;
        cred.factors = factors(&cred.info);
        if cred.factors.iter().any(|(_, f)| *f == Factor::OnlineOtp) && !self.otp.has_command() {
            return Err("the credential uses an online OTP; pass --otp-command to fetch it".into());
        }
        Ok(())
    }
}

/// How to satisfy a credential's auth objects (v2 `auth.objects`, else the v1 `PIN`/`OTP`
/// descriptions, else PIN and a time-based OTP).
pub(super) fn factors(info: &Value) -> Vec<(String, Factor)> {
    let objects = info.pointer("/auth/objects").and_then(Value::as_array);
    if let Some(objects) = objects {
        return objects
            .iter()
            .filter_map(|o| {
                let id = o.get("id").and_then(Value::as_str)?.to_string();
                let kind = o.get("type").and_then(Value::as_str).unwrap_or("Password");
                let text = |k: &str| {
                    o.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_ascii_lowercase()
                };
                let otp_like = !text("generator").is_empty()
                    || id.to_ascii_lowercase().contains("otp")
                    || text("label").contains("otp");
                let factor = match kind {
                    "ChallengeResponse" => Factor::OnlineOtp,
                    "PasswordOOB" | "ChallengeResponseOOB" => Factor::NoValue,
                    _ if otp_like => Factor::OfflineOtp,
                    _ => Factor::Pin,
                };
                Some((id, factor))
            })
            .collect();
    }
    let mut out = Vec::new();
    let present = |k: &str| {
        info.get(k)
            .and_then(|o| o.get("presence"))
            .and_then(Value::as_str)
            .is_none_or(|p| p != "false")
    };
    if present("PIN") {
        out.push(("PIN".to_string(), Factor::Pin));
    }
    if present("OTP") {
        let online = info.pointer("/OTP/type").and_then(Value::as_str) == Some("online");
        let f = if online {
            Factor::OnlineOtp
        } else {
            Factor::OfflineOtp
        };
        out.push(("OTP".to_string(), f));
    }
    out
}
