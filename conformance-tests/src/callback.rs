//! The suite's `response_uri` listener (`--callback-listen`): a small blocking HTTP/1.1 server
//! on a thread of its own, where a server under test announces that an asynchronous call has
//! its answer (CSC v2: a POST of `{"responseID": …}`).
//!
//! It takes one request per connection, read with a bound: headers up to [`MAX_HEAD`] bytes,
//! a body of at most [`MAX_BODY`] bytes, given by `Content-Length` (no chunked bodies), each
//! read within [`READ_TIMEOUT`]. A POST within those bounds is answered 204 and recorded with
//! its body parsed as JSON (or why it is not JSON); anything else is refused (405 for another
//! method, 411 without a length, 413 for a longer body, 400 for what is not HTTP) and the
//! refusal recorded, so a row that waits in vain can say what did come.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest request line and headers, bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest body, bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// How long one read (and one write) on a connection may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The path of the default callback URL.
pub const DEFAULT_PATH: &str = "/csc-callback";

/// What reached the listener.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// A POST within bounds, answered 204: its path and its body as JSON, or why it is not.
    Post {
        path: String,
        body: Result<Value, String>,
    },
    /// A request answered with an error status, and why.
    Refused { status: u16, why: String },
}

/// A running listener; stopped when dropped.
pub struct CallbackListener {
    addr: SocketAddr,
    url: String,
    rx: Receiver<Delivery>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CallbackListener {
    /// Listen on `addr` (port 0: any free port); the server is told `url`, by default
    /// `http://<the address bound>/csc-callback`.
    pub fn start(addr: SocketAddr, url: Option<&str>) -> Result<CallbackListener, String> {
        let listener =
            TcpListener::bind(addr).map_err(|e| format!("--callback-listen {addr}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("--callback-listen {addr}: {e}"))?;
        let url = url.map_or_else(|| format!("http://{addr}{DEFAULT_PATH}"), str::to_string);
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("csc-callback".into())
            .spawn(move || serve(&listener, &tx, &flag))
            .map_err(|e| format!("cannot start the callback listener: {e}"))?;
        Ok(CallbackListener {
            addr,
            url,
            rx,
            stop,
            thread: Some(thread),
        })
    }

    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL the server is given as `response_uri`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Forget what came so far (before a call whose callback is awaited).
    pub fn drain(&self) -> Vec<Delivery> {
        self.rx.try_iter().collect()
    }

    /// The first POST within `wait`, with the refusals seen before it; None for the POST when
    /// none came in time.
    pub fn next_post(&self, wait: Duration) -> (Option<Delivery>, Vec<Delivery>) {
        let deadline = Instant::now() + wait;
        let mut refused = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(d @ Delivery::Post { .. }) => return (Some(d), refused),
                Ok(d) => refused.push(d),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return (None, refused);
                }
            }
        }
    }
}

impl Drop for CallbackListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; if that fails the thread ends with the process.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, tx: &Sender<Delivery>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = conn else { continue };
        if let Some(d) = handle(&mut stream)
            && tx.send(d).is_err()
        {
            return;
        }
    }
}

/// Read one request from `stream`, answer it and say what it was (None: the peer sent nothing).
fn handle(stream: &mut TcpStream) -> Option<Delivery> {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let d = match read_request(stream) {
        Ok(None) => None,
        Ok(Some(d)) => Some(d),
        Err((status, why)) => Some(Delivery::Refused { status, why }),
    };
    let (status, reason, extra) = match &d {
        None => {
            let _ = stream.shutdown(Shutdown::Both);
            return None;
        }
        Some(Delivery::Post { .. }) => (204, "No Content", ""),
        Some(Delivery::Refused { status: 405, .. }) => {
            (405, "Method Not Allowed", "Allow: POST\r\n")
        }
        Some(Delivery::Refused { status, .. }) => (*status, reason_of(*status), ""),
    };
    let len = if status == 204 {
        ""
    } else {
        "Content-Length: 0\r\n"
    };
    let head = format!("HTTP/1.1 {status} {reason}\r\n{extra}{len}Connection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
    d
}

fn reason_of(status: u16) -> &'static str {
    match status {
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    }
}

type Refusal = (u16, String);

/// One request: Ok(None) when the connection closed before a byte came.
fn read_request(stream: &mut TcpStream) -> Result<Option<Delivery>, Refusal> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (head_len, method, path, length) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let method = req.method.unwrap_or("").to_string();
                let path = req.path.unwrap_or("").to_string();
                break (n, method, path, content_length(req.headers)?);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err((400, format!("not an HTTP/1.1 request: {e}"))),
        }
        if buf.len() >= MAX_HEAD {
            return Err((431, format!("request head over {MAX_HEAD} bytes")));
        }
        let want = chunk.len().min(MAX_HEAD - buf.len());
        let got = stream
            .read(chunk.get_mut(..want).unwrap_or_default())
            .map_err(|e| (400, format!("reading the request: {e}")))?;
        if got == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err((400, "the connection closed within the request head".into()));
        }
        buf.extend_from_slice(chunk.get(..got).unwrap_or_default());
    };
    if method != "POST" {
        return Err((405, format!("{method} {path}: only POST is taken")));
    }
    let Some(length) = length else {
        return Err((411, format!("POST {path} without Content-Length")));
    };
    if length > MAX_BODY {
        return Err((
            413,
            format!("POST {path} with a body of {length} bytes (at most {MAX_BODY})"),
        ));
    }
    let mut body = buf.get(head_len..).unwrap_or_default().to_vec();
    body.truncate(length);
    while body.len() < length {
        let want = chunk.len().min(length - body.len());
        let got = stream
            .read(chunk.get_mut(..want).unwrap_or_default())
            .map_err(|e| (400, format!("reading the body of POST {path}: {e}")))?;
        if got == 0 {
            return Err((
                400,
                format!("POST {path}: the body ended after {} bytes", body.len()),
            ));
        }
        body.extend_from_slice(chunk.get(..got).unwrap_or_default());
    }
    let body = serde_json::from_slice(&body).map_err(|e| {
        let text = String::from_utf8_lossy(&body);
        format!(
            "not JSON ({e}): {:?}",
            text.chars().take(200).collect::<String>()
        )
    });
    Ok(Some(Delivery::Post { path, body }))
}

/// The request's `Content-Length` (None: absent); chunked bodies are refused.
fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<usize>, Refusal> {
    let mut length = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err((411, "a Transfer-Encoding body (only Content-Length)".into()));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| (400, "Content-Length is not a number".to_string()))?;
            if length.is_some_and(|l| l != n) {
                return Err((400, "two different Content-Length headers".into()));
            }
            length = Some(n);
        }
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> CallbackListener {
        CallbackListener::start("127.0.0.1:0".parse().unwrap(), None).unwrap()
    }

    /// Send `raw` to `l` and read the whole answer.
    fn send(l: &CallbackListener, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(l.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // A peer may close before all is written (the oversized body): not an error here.
        let _ = s.write_all(raw);
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    }

    fn post(body: &str) -> Vec<u8> {
        format!(
            "POST /csc-callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn a_post_with_a_json_body_is_answered_204_and_recorded() {
        let l = listener();
        assert_eq!(l.url(), format!("http://{}/csc-callback", l.addr()));
        let answer = send(&l, &post(r#"{"responseID":"abc"}"#));
        assert!(answer.starts_with("HTTP/1.1 204 "), "{answer}");
        let (d, refused) = l.next_post(Duration::from_secs(5));
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(
            d,
            Some(Delivery::Post {
                path: "/csc-callback".into(),
                body: Ok(serde_json::json!({"responseID": "abc"})),
            })
        );
        // A body that is not JSON is recorded as such.
        send(&l, &post("responseID=abc"));
        match l.next_post(Duration::from_secs(5)).0 {
            Some(Delivery::Post { body: Err(e), .. }) => assert!(e.contains("not JSON"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_oversized_body_or_head_is_refused() {
        let l = listener();
        // Only the head is sent: the listener answers without reading a body.
        let head = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let answer = send(&l, head.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
        let (d, refused) = l.next_post(Duration::from_millis(300));
        assert_eq!(d, None);
        assert!(
            matches!(refused.as_slice(), [Delivery::Refused { status: 413, .. }]),
            "{refused:?}"
        );
        // An endless head is cut off too.
        let mut head = b"POST / HTTP/1.1\r\nX: ".to_vec();
        head.resize(MAX_HEAD, b'a');
        let answer = send(&l, &head);
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    }

    #[test]
    fn other_methods_and_unsized_posts_are_not_recorded() {
        let l = listener();
        let answer = send(&l, b"GET /csc-callback HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
        assert!(answer.contains("Allow: POST"), "{answer}");
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        assert!(send(&l, chunked).starts_with("HTTP/1.1 411 "));
        let (d, refused) = l.next_post(Duration::from_millis(300));
        assert_eq!(d, None);
        assert_eq!(refused.len(), 2, "{refused:?}");
        // A connection that sends nothing is no delivery; the listener still serves.
        drop(TcpStream::connect(l.addr()).unwrap());
        send(&l, &post("{}"));
        assert!(matches!(
            l.next_post(Duration::from_secs(5)).0,
            Some(Delivery::Post { body: Ok(_), .. })
        ));
        assert!(l.drain().is_empty());
    }
}
