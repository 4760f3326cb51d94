//! A deadline on reading a request body (`--body-timeout`). actix-web times out a client that
//! is slow to send its headers (5 s), but not one that sends a body a byte at a time: such a
//! client held its connection, and the task reading it, for as long as it liked. The body of
//! every request is read through [`Deadline`], which fails the read once the deadline has passed
//! since the request arrived; extractors turn that into 408 `invalid_request` (CSC and OAuth
//! alike) and the connection is closed.
//!
//! The timer is only armed when the body is not all there yet: a body that came with its
//! headers (every ordinary call) costs no timer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use futures_core::Stream;
use tokio::time::{Instant, Sleep};

use crate::state::AppState;

/// The message of the I/O error a late body fails with (see [`is_timeout`]).
const TIMED_OUT: &str = "request body not received before the deadline";

/// Put every request's body behind the deadline of the service settings.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(limit) = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.body_timeout)
    {
        let inner = req.take_payload();
        let timed = Deadline {
            inner,
            due: Instant::now() + limit,
            timer: None,
            expired: false,
        };
        req.set_payload(Payload::from(
            Box::pin(timed) as Pin<Box<dyn Stream<Item = _>>>
        ));
    }
    next.call(req).await
}

/// Whether reading a body failed because its deadline passed.
pub fn is_timeout(e: &actix_web::Error) -> bool {
    matches!(
        e.as_error::<PayloadError>(),
        Some(PayloadError::Io(io)) if io.kind() == io::ErrorKind::TimedOut
    )
}

/// A body stream that fails with `TimedOut` once `due` has passed.
struct Deadline {
    inner: Payload,
    due: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        let due = self.due;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.expired = true;
                Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    TIMED_OUT,
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
