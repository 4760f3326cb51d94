//! Service-level checks: `info` (CSC v2 §11.1: status, schema, OIDs and base64), missing and
//! invalid bearer tokens on a protected method, `auth/login` (§11.2, with a malformed
//! Authorization header first) and, last of the run, `auth/revoke` (§11.3) and the revoked
//! token refused afterwards.

use super::*;

impl Suite<'_> {
    /// `info`: 200, schema, formats. Returns whether the rest can run.
    pub(super) fn info(&mut self) -> Result<bool, Fatal> {
        let r = self
            .call("info", Auth::None, &json!({}))
            .map_err(Fatal::Connection)?;
        let ok = self.expect_ok("info", &r, 200);
        self.methods = str_list(r.body.get("methods"));
        self.async_mode = r.body.get("asynchronousOperationMode") == Some(&Value::Bool(true));
        self.signature_formats = r
            .body
            .pointer("/signature_formats/formats")
            .filter(|v| v.is_array())
            .map(|v| str_list(Some(v)));
        self.conformance_levels = r
            .body
            .get("conformance_levels")
            .filter(|v| v.is_array())
            .map(|v| str_list(Some(v)));
        // envelope_properties[i] lists the envelopes of formats[i].
        self.cades_envelopes = self.signature_formats.as_ref().and_then(|formats| {
            let at = formats.iter().position(|f| f == "C")?;
            r.body
                .pointer(&format!("/signature_formats/envelope_properties/{at}"))
                .filter(|v| v.is_array())
                .map(|v| str_list(Some(v)))
        });
        let usable = r.status == 200 && r.body.is_object();
        let detail = ok.map(|()| {
            format!(
                "specs {}, {} methods: {}",
                r.body.get("specs").and_then(Value::as_str).unwrap_or("?"),
                self.methods.len(),
                self.methods.join(", ")
            )
        });
        self.result(n::INFO, None, detail);
        if !usable {
            self.skip(n::INFO_FORMATS, None, "info failed");
            return Ok(false);
        }
        let (problems, checked) = formats::info_problems(&r.body);
        let res = if problems.is_empty() {
            Ok(format!("{checked} OID/base64 values well formed"))
        } else {
            Err(problems.join("; "))
        };
        self.result(n::INFO_FORMATS, None, res);
        Ok(true)
    }

    /// Missing and invalid bearer tokens on a protected method.
    pub(super) fn token_errors(&mut self) {
        let Some(method) = PROTECTED.iter().copied().find(|m| self.advertised(m)) else {
            let why = "no method needing a bearer token is advertised";
            self.skip_all(&[n::NO_TOKEN, n::BAD_TOKEN], None, why);
            return;
        };
        let body = json!({"credentialID": "csc-conformance"});
        let sent = self.call_bad(method, Auth::None, &body);
        self.error_check(n::NO_TOKEN, None, sent, &[401], MISSING_TOKEN_CODES);
        let fake = format!("csc-conformance-invalid-{}", self.nonce);
        let sent = self.call_bad(method, Auth::Bearer(&fake), &body);
        self.error_check(n::BAD_TOKEN, None, sent, &[401], BAD_TOKEN_CODES);
    }

    pub(super) fn login(&mut self) {
        if !self.advertised("auth/login") {
            let why = Self::not_advertised("auth/login");
            self.skip_all(&[n::LOGIN_MALFORMED, n::LOGIN], None, &why);
            return;
        }
        // CSC §2.1: a malformed Authorization header is 401 invalid_request.
        let sent = self.call_bad(
            "auth/login",
            Auth::Header("Basic %%%not-base64%%%"),
            &json!({}),
        );
        self.error_check(n::LOGIN_MALFORMED, None, sent, &[401], INVALID_REQUEST);

        let (user, password) = (self.cfg.user.clone(), self.cfg.password.clone());
        let res = self
            .call("auth/login", Auth::Basic(&user, &password), &json!({}))
            .and_then(|r| {
                self.expect_ok("auth/login", &r, 200)?;
                let token = r
                    .body
                    .get("access_token")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| format!("no access_token: {}", r.summary()))?;
                self.token = Some(token.to_string());
                Ok(format!(
                    "access token received, expires_in {}",
                    r.body
                        .get("expires_in")
                        .map_or("absent".to_string(), Value::to_string)
                ))
            });
        self.result(n::LOGIN, None, res);
    }

    pub(super) fn revoke(&mut self) {
        if !self.advertised("auth/revoke") {
            let why = Self::not_advertised("auth/revoke");
            self.skip_all(&[n::REVOKE, n::REVOKED_TOKEN], None, &why);
            return;
        }
        let token = self.bearer();
        let res = self
            .call(
                "auth/revoke",
                Auth::Bearer(&token),
                &json!({"token": token, "token_type_hint": "access_token"}),
            )
            .and_then(|r| self.expect_ok("auth/revoke", &r, 204))
            .map(|()| "HTTP 204".to_string());
        let revoked = res.is_ok();
        self.result(n::REVOKE, None, res);
        if !revoked {
            self.skip(n::REVOKED_TOKEN, None, "auth/revoke failed");
            return;
        }
        let Some(method) = PROTECTED.iter().copied().find(|m| self.advertised(m)) else {
            self.skip(
                n::REVOKED_TOKEN,
                None,
                "no method needing a bearer token is advertised",
            );
            return;
        };
        let body = match method {
            "credentials/list" => json!({}),
            _ => json!({"credentialID": "csc-conformance"}),
        };
        let sent = self.call_bad(method, Auth::Bearer(&token), &body);
        self.error_check(n::REVOKED_TOKEN, None, sent, &[401], BAD_TOKEN_CODES);
    }
}
