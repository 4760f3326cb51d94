//! Delivery of online OTP codes (what providers send by SMS or e-mail for each signature): a
//! pluggable `OtpSender` — an HTTP webhook to an SMS/e-mail gateway (JSON POST, timeout,
//! retries) or a development outbox file (JSON lines) that `quill demo` uses. The code is the
//! message itself, so it goes only to the channel, never to the log.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::secret::Secret;

/// One code to deliver.
pub struct OtpMessage<'a> {
    /// `sms` or `email`.
    pub channel: &'a str,
    pub destination: &'a str,
    pub code: &'a Secret,
    pub credential_id: &'a str,
}

pub trait OtpSender: Send + Sync + 'static {
    /// Deliver (blocking; called from a blocking thread).
    fn send(&self, msg: &OtpMessage<'_>) -> Result<(), String>;
}

fn body(msg: &OtpMessage<'_>) -> serde_json::Value {
    serde_json::json!({
        "channel": msg.channel,
        "to": msg.destination,
        "code": msg.code.expose(),
        "credential_id": msg.credential_id,
        "text": format!("Your Quill signing code is {}", msg.code.expose()),
    })
}

/// Appends one JSON line per code to a file (development and demo).
pub struct Outbox {
    pub path: PathBuf,
}

impl OtpSender for Outbox {
    fn send(&self, msg: &OtpMessage<'_>) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| format!("outbox {}: {e}", self.path.display()))?;
        writeln!(f, "{}", body(msg)).map_err(|e| e.to_string())
    }
}

/// POSTs JSON to a gateway; retries on connection errors and 5xx.
pub struct Webhook {
    pub url: String,
    pub timeout: Duration,
    pub attempts: u32,
}

impl OtpSender for Webhook {
    fn send(&self, msg: &OtpMessage<'_>) -> Result<(), String> {
        // A blocking client is built per delivery on the calling (blocking) thread: codes are
        // rare, and a blocking client must not live inside the async runtime.
        let client = reqwest::blocking::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let payload = body(msg);
        let mut last = String::from("no attempt made");
        for attempt in 1..=self.attempts.max(1) {
            match client.post(&self.url).json(&payload).send() {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_client_error() => {
                    return Err(format!("gateway refused the message: {}", r.status()));
                }
                Ok(r) => last = format!("gateway answered {}", r.status()),
                Err(e) => last = format!("gateway unreachable: {}", e.without_url()),
            }
            tracing::warn!(attempt, "OTP delivery failed; retrying");
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
        }
        Err(last)
    }
}

/// `outbox:PATH` or `webhook:URL`.
pub fn from_spec(spec: &str) -> anyhow::Result<Arc<dyn OtpSender>> {
    if let Some(path) = spec.strip_prefix("outbox:") {
        anyhow::ensure!(!path.is_empty(), "outbox: needs a file path");
        return Ok(Arc::new(Outbox { path: path.into() }));
    }
    if let Some(url) = spec.strip_prefix("webhook:") {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "webhook: needs an http(s) URL"
        );
        return Ok(Arc::new(Webhook {
            url: url.to_string(),
            timeout: Duration::from_secs(5),
            attempts: 3,
        }));
    }
    anyhow::bail!("--otp-sender takes outbox:PATH or webhook:URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert!(from_spec("outbox:/tmp/x").is_ok());
        assert!(from_spec("webhook:https://gw.example/sms").is_ok());
        assert!(from_spec("webhook:ftp://x").is_err());
        assert!(from_spec("smoke").is_err());
    }

    #[test]
    fn outbox_appends_json_lines() {
        let d = tempfile::tempdir().unwrap();
        let o = Outbox {
            path: d.path().join("sub/out.jsonl"),
        };
        let code = Secret::new("123456");
        for _ in 0..2 {
            o.send(&OtpMessage {
                channel: "sms",
                destination: "+3591",
                code: &code,
                credential_id: "c",
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(d.path().join("sub/out.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 2);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["code"], "123456");
        assert_eq!(v["to"], "+3591");
    }
}
