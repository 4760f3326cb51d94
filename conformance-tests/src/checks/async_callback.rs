//! The `response_uri` of an asynchronous signHash (CSC v2: the server POSTs
//! `{"responseID": …}` there once the call has its answer), checked with the suite's own
//! listener ([`crate::callback`], `--callback-listen`).
//!
//! It costs nothing: the asynchronous task's well-formed signHash — the call whose polled
//! signature the row `signatures/signHash (async): polled signature verifies` checks —
//! carries the `response_uri`. The suite then waits for the callback before it polls, so the
//! answer must be there at the first poll. A server that refuses the `response_uri` (400
//! `invalid_request`: an origin it does not call back) is a WARN, and the same call is sent
//! again without it (a refused call spends nothing of the SAD).

use super::*;
use crate::callback::Delivery;

/// The longest wait for the callback after the call was accepted.
const CALLBACK_WAIT: Duration = Duration::from_secs(30);

/// What became of the callback row while the call was sent.
pub(super) enum Announced {
    /// The row is recorded already (SKIP, WARN, or FAIL with the call).
    Recorded,
    /// The callback came and named the call's responseID: how.
    Heard(String),
    /// No right callback came: why.
    Missed(String),
}

impl Suite<'_> {
    /// Send the asynchronous task's well-formed signHash `valid` (with `response_uri` when
    /// the suite listens for callbacks, then wait for its callback): the call's responseID,
    /// and the callback row's state.
    pub(super) fn async_sign_call(
        &mut self,
        valid: &Value,
        cid: Option<&str>,
    ) -> (Result<String, String>, Announced) {
        let Some(url) = self.callback.as_ref().map(|l| l.url().to_string()) else {
            self.skip(n::ASYNC_CALLBACK, cid, "no --callback-listen");
            return (self.plain_async_call(valid), Announced::Recorded);
        };
        if let Some(l) = &self.callback {
            l.drain();
        }
        let mut body = valid.clone();
        set(&mut body, "response_uri", json!(url));
        let token = self.bearer();
        let r = match self.call("signatures/signHash", Auth::Bearer(&token), &body) {
            Ok(r) => r,
            Err(e) => {
                self.skip(n::ASYNC_CALLBACK, cid, &format!("the call failed: {e}"));
                return (Err(e), Announced::Recorded);
            }
        };
        if r.status == 400 && r.error_code() == Some("invalid_request") {
            let why = format!(
                "the server refused response_uri {url}: HTTP 400 invalid_request{}; the \
                 operator must allow that origin (Quill: --async-callback-origins), or give \
                 --callback-url an address the server may call. The call was sent again \
                 without response_uri",
                description(&r)
            );
            self.record(n::ASYNC_CALLBACK, cid, Outcome::Warn, why);
            return (self.plain_async_call(valid), Announced::Recorded);
        }
        let sent = Instant::now();
        let id = match self.response_id_of("signatures/signHash", &r) {
            Ok(id) => id,
            Err(e) => {
                let why = format!("the call with response_uri {url}: {e}");
                self.record(n::ASYNC_CALLBACK, cid, Outcome::Fail, why);
                return (Err(e), Announced::Recorded);
            }
        };
        let announced = self.await_callback(&url, &id, sent);
        (Ok(id), announced)
    }

    /// The call `valid` as it is: its responseID.
    fn plain_async_call(&mut self, valid: &Value) -> Result<String, String> {
        let token = self.bearer();
        self.call("signatures/signHash", Auth::Bearer(&token), valid)
            .and_then(|r| self.response_id_of("signatures/signHash", &r))
    }

    /// Wait (at most [`CALLBACK_WAIT`]) for the POST at `url` that announces `id`: the first
    /// POST must be JSON and name `id`.
    pub(super) fn await_callback(&self, url: &str, id: &str, sent: Instant) -> Announced {
        let Some(l) = &self.callback else {
            return Announced::Missed("no listener".into());
        };
        let (post, refused) = l.next_post(CALLBACK_WAIT);
        let refused = if refused.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = refused
                .iter()
                .map(|d| match d {
                    Delivery::Refused { status, why } => format!("{status}: {why}"),
                    Delivery::Post { path, .. } => format!("POST {path}"),
                })
                .collect();
            format!("; the listener refused {}", list.join(", "))
        };
        let after = sent.elapsed().as_secs_f64();
        let Some(Delivery::Post { path, body }) = post else {
            return Announced::Missed(format!(
                "no POST at {url} within {} s of the call{refused}",
                CALLBACK_WAIT.as_secs()
            ));
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => return Announced::Missed(format!("the POST to {path} is {e}{refused}")),
        };
        // The responseID itself is a bearer of the answer: not written into the report.
        match body.get("responseID") {
            Some(Value::String(s)) if s == id => Announced::Heard(format!(
                "POST {path} with the call's responseID {after:.1} s after the call"
            )),
            Some(Value::String(_)) => Announced::Missed(format!(
                "the POST to {path} names another responseID than the call's"
            )),
            _ => Announced::Missed(format!(
                "the POST to {path} has no responseID string: {}",
                body.to_string().chars().take(200).collect::<String>()
            )),
        }
    }

    /// Record the callback row once the announced answer was polled: `polled` is how many
    /// polls it took (the first must have it) and whether its signature verified.
    pub(super) fn callback_verdict(
        &mut self,
        announced: Announced,
        polled: Result<usize, String>,
        cid: Option<&str>,
    ) {
        let res = match (announced, polled) {
            (Announced::Recorded, _) => return,
            (Announced::Missed(e), _) => Err(e),
            (Announced::Heard(d), Ok(1)) => Ok(format!(
                "{d}; the first poll after it had the answer, whose signature verifies"
            )),
            (Announced::Heard(d), Ok(polls)) => Err(format!(
                "{d}, but the answer was not ready: it took {polls} polls after the callback"
            )),
            (Announced::Heard(d), Err(e)) => Err(format!("{d}; the announced answer: {e}")),
        };
        self.result(n::ASYNC_CALLBACK, cid, res);
    }
}
