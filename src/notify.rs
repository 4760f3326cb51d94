//! Delivery of online OTP codes (what providers send by SMS or e-mail for each signature): a
//! pluggable `OtpSender` — an HTTP webhook to an SMS/e-mail gateway (JSON POST, timeout,
//! retries), an SMTP relay for e-mail (lettre), or a development outbox file (JSON lines) that
//! `quill demo` uses. Several senders can be configured (comma-separated); each code goes to the
//! first one that serves its channel. The code is the message itself, so it goes only to the
//! channel, never to the log.

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

    /// Whether this sender delivers on `channel` (`sms` or `email`).
    fn serves(&self, channel: &str) -> bool {
        let _ = channel;
        true
    }
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
        // One write of the whole line: appends of concurrent deliveries stay whole lines
        // (`Display` of a JSON value would write it piece by piece, a syscall per token).
        let line = format!("{}\n", body(msg));
        f.write_all(line.as_bytes()).map_err(|e| e.to_string())
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
        // A blocking agent per delivery on the calling (blocking) thread: codes are rare. Any
        // status is an answer here (not an error), so that 4xx and 5xx can be told apart.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let payload = body(msg);
        let mut last = String::from("no attempt made");
        for attempt in 1..=self.attempts.max(1) {
            match agent.post(&self.url).send_json(&payload) {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_client_error() => {
                    return Err(format!("gateway refused the message: {}", r.status()));
                }
                Ok(r) => last = format!("gateway answered {}", r.status()),
                // ureq's errors name the failure, not the URL (which may carry a credential).
                Err(e) => last = format!("gateway unreachable: {e}"),
            }
            tracing::warn!(attempt, "OTP delivery failed; retrying");
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
        }
        Err(last)
    }
}

/// Sends each e-mail code through an SMTP relay.
pub struct Smtp {
    transport: lettre::SmtpTransport,
    from: lettre::message::Mailbox,
}

impl Smtp {
    /// `smtp[s]://[user:password@]host[:port][?tls=required|opportunistic][&from=ADDRESS]`:
    /// lettre's connection URL plus the sender address (default `quill@<host>`). Plain `smtp://`
    /// without `tls=` sends in clear text and is meant for a relay on the same host.
    pub fn from_url(spec: &str) -> anyhow::Result<Smtp> {
        let mut url = url::Url::parse(spec).map_err(|e| anyhow::anyhow!("SMTP URL: {e}"))?;
        let host = url
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("SMTP URL needs a host"))?
            .to_string();
        let mut from = None;
        let mut rest: Vec<(String, String)> = Vec::new();
        for (k, v) in url.query_pairs() {
            match &*k {
                "from" => from = Some(v.into_owned()),
                // lettre reads `tls` alone and ignores every other key, so a misspelt
                // `TLS=required` would send codes in clear text: refuse what it would not read
                "tls" => rest.push((k.into_owned(), v.into_owned())),
                other => anyhow::bail!(
                    "SMTP URL: unknown parameter {other:?} (only tls=required|opportunistic and from=ADDRESS)"
                ),
            }
        }
        if rest.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(rest);
        }
        let from = from
            .unwrap_or_else(|| format!("quill@{host}"))
            .parse()
            .map_err(|e| anyhow::anyhow!("SMTP sender address: {e}"))?;
        let transport = lettre::SmtpTransport::from_url(url.as_str())
            .map_err(|e| anyhow::anyhow!("SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        Ok(Smtp { transport, from })
    }
}

/// What a failed SMTP delivery is logged as: its kind and reply code, never the relay's text,
/// which may quote the recipient (`550 5.1.1 <alice@…>: Recipient address rejected`), a secret
/// of the signer's.
fn smtp_failure(e: &lettre::transport::smtp::Error) -> String {
    let kind = if e.is_permanent() {
        "permanent error"
    } else if e.is_transient() {
        "transient error"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_tls() {
        "TLS error"
    } else {
        "connection or protocol error"
    };
    match e.status() {
        Some(code) => format!("SMTP relay: {kind} ({code})"),
        None => format!("SMTP relay: {kind}"),
    }
}

impl OtpSender for Smtp {
    fn send(&self, msg: &OtpMessage<'_>) -> Result<(), String> {
        use lettre::Transport;
        let to = msg
            .destination
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("bad e-mail destination: {e}"))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Your signing code")
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(format!(
                "Your Quill signing code is {}\r\n\r\nIt is valid for 5 minutes and for one signature \
                 authorization only. If you did not ask to sign a document, do not use it.\r\n",
                msg.code.expose()
            ))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        self.transport
            .send(&email)
            .map(|_| ())
            .map_err(|e| smtp_failure(&e))
    }

    fn serves(&self, channel: &str) -> bool {
        channel == "email"
    }
}

/// Several senders; a code goes to the first that serves its channel.
pub struct Router {
    senders: Vec<Arc<dyn OtpSender>>,
}

impl OtpSender for Router {
    fn send(&self, msg: &OtpMessage<'_>) -> Result<(), String> {
        self.senders
            .iter()
            .find(|s| s.serves(msg.channel))
            .ok_or_else(|| format!("no OTP sender serves {}", msg.channel))?
            .send(msg)
    }

    fn serves(&self, channel: &str) -> bool {
        self.senders.iter().any(|s| s.serves(channel))
    }
}

/// A comma-separated list of `outbox:PATH`, `webhook:URL`, `smtp://…` / `smtps://…`.
pub fn from_spec(spec: &str) -> anyhow::Result<Arc<dyn OtpSender>> {
    let mut senders = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(one_from_spec)
        .collect::<anyhow::Result<Vec<_>>>()?;
    match senders.len() {
        0 => anyhow::bail!("--otp-sender is empty"),
        1 => Ok(senders.remove(0)),
        _ => Ok(Arc::new(Router { senders })),
    }
}

fn one_from_spec(spec: &str) -> anyhow::Result<Arc<dyn OtpSender>> {
    if spec.starts_with("smtp://") || spec.starts_with("smtps://") {
        return Ok(Arc::new(Smtp::from_url(spec)?));
    }
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
    anyhow::bail!("--otp-sender takes outbox:PATH, webhook:URL or smtp[s]://HOST")
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
        assert!(from_spec("").is_err());
        assert!(from_spec("smtp://relay.example:2525?from=signing@tsp.example").is_ok());
        assert!(from_spec("smtps://u:p@relay.example").is_ok());
        assert!(from_spec("smtp://relay.example?tls=required").is_ok());
        assert!(from_spec("smtp://relay.example?from=not-an-address").is_err());
        assert!(from_spec("smtp://relay.example?tls=bogus").is_err());
        // a key lettre would ignore (here: the case) is refused, not dropped into clear text
        let e = from_spec("smtp://relay.example?TLS=required")
            .err()
            .unwrap();
        assert!(e.to_string().contains("\"TLS\""), "{e}");
        assert!(from_spec("smtp://relay.example?tls=required&sender=a@b.example").is_err());
        let both = from_spec("webhook:https://gw.example/sms, smtp://relay.example").unwrap();
        assert!(both.serves("sms") && both.serves("email"));
        let mail_only = from_spec("smtp://relay.example").unwrap();
        assert!(mail_only.serves("email") && !mail_only.serves("sms"));
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

    /// Codes delivered from several threads at once (concurrent getChallenge calls) come out
    /// as whole lines, none interleaved with another.
    #[test]
    fn concurrent_outbox_lines_stay_whole() {
        let d = tempfile::tempdir().unwrap();
        let o = Outbox {
            path: d.path().join("out.jsonl"),
        };
        std::thread::scope(|s| {
            for t in 0..4 {
                let o = &o;
                s.spawn(move || {
                    let code = Secret::new(format!("{t:06}"));
                    let cred = format!("credential-{t}");
                    for _ in 0..100 {
                        o.send(&OtpMessage {
                            channel: "email",
                            destination: "someone@example.org",
                            code: &code,
                            credential_id: &cred,
                        })
                        .unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(d.path().join("out.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 400);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let t = v["code"].as_str().unwrap().parse::<u32>().unwrap();
            assert_eq!(v["credential_id"], format!("credential-{t}"), "{line}");
        }
    }
}
