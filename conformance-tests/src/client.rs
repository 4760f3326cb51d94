//! A small blocking HTTP client for CSC methods: `POST <base>/csc/v2/<method>` with a JSON body.

use std::time::Duration;

use serde_json::Value;

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    /// A literal `Authorization` header value (for malformed-header checks).
    Header(&'a str),
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// The parsed body; `Null` when empty or not JSON (see `json_error`).
    pub body: Value,
    /// The body as text (shortened in details).
    pub text: String,
    /// Why a non-empty body is not JSON.
    pub json_error: Option<String>,
    pub content_type: Option<String>,
}

impl Resp {
    /// A short description for report details: status and (shortened) body.
    pub fn summary(&self) -> String {
        let body: String = self.text.chars().take(300).collect();
        let more = if self.text.chars().count() > 300 {
            "…"
        } else {
            ""
        };
        if body.is_empty() {
            format!("HTTP {} (empty body)", self.status)
        } else {
            format!("HTTP {} {body}{more}", self.status)
        }
    }

    /// The `error` code of an error body.
    pub fn error_code(&self) -> Option<&str> {
        self.body.get("error").and_then(Value::as_str)
    }
}

/// The server under test.
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

impl Client {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Client, String> {
        let trimmed = base_url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(trimmed)
            .map_err(|e| format!("invalid --base-url {base_url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "--base-url must be http or https, not {base_url:?}"
            ));
        }
        let base = if trimmed.ends_with("/csc/v2") {
            trimmed.to_string()
        } else {
            format!("{trimmed}/csc/v2")
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("csc-conformance/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client { http, base })
    }

    /// The service base (`…/csc/v2`, no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of a CSC method.
    pub fn url(&self, method: &str) -> String {
        format!("{}/{method}", self.base)
    }

    /// POST a JSON value.
    pub fn post(&self, method: &str, auth: Auth<'_>, body: &Value) -> Result<Resp, String> {
        self.post_raw(method, auth, &body.to_string())
    }

    /// POST a body as is (`Content-Type: application/json`).
    pub fn post_raw(&self, method: &str, auth: Auth<'_>, body: &str) -> Result<Resp, String> {
        let mut req = self
            .http
            .post(self.url(method))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body.to_string());
        req = match auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Header(h) => req.header(reqwest::header::AUTHORIZATION, h),
        };
        let resp = req
            .send()
            .map_err(|e| format!("POST {method}: {}", error_chain(&e)))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp
            .text()
            .map_err(|e| format!("POST {method}: reading the body: {}", error_chain(&e)))?;
        let (body, json_error) = if text.trim().is_empty() {
            (Value::Null, None)
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => (v, None),
                Err(e) => (Value::Null, Some(e.to_string())),
            }
        };
        Ok(Resp {
            status,
            body,
            text,
            json_error,
            content_type,
        })
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let t = Duration::from_secs(1);
        let c = Client::new("http://127.0.0.1:1/", t).unwrap();
        assert_eq!(c.url("info"), "http://127.0.0.1:1/csc/v2/info");
        let c = Client::new("http://h/prefix/csc/v2", t).unwrap();
        assert_eq!(
            c.url("credentials/info"),
            "http://h/prefix/csc/v2/credentials/info"
        );
        assert!(Client::new("ftp://h", t).is_err());
        assert!(Client::new("not a url", t).is_err());
    }
}
