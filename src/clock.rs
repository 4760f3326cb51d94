//! Time is injected: nothing else in Quill reads the wall clock, so expiry, OTP windows and
//! lockouts can be tested by moving a clock instead of sleeping.

use std::sync::Arc;

/// A source of the current time in Unix seconds.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// A clock that stands still: for tests, and for callers that judge at a time already read.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}
