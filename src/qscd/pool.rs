//! PKCS#11 sessions are owned, never shared: the pool hands one `Session` to one caller at a
//! time (a `Lease`), opens sessions lazily up to a bound, and waits when all are busy. Sessions
//! that hit a session-level error are discarded instead of returned; after a session loss the
//! idle ones go too (a lost session usually means all of them are gone: token reset, HSM
//! failover, C_CloseAllSessions). Every newly opened session is logged in (when the last session
//! of a process closes, PKCS#11 logs the process out), so recovery needs no restart.

use std::sync::{Condvar, Mutex, MutexGuard};

use cryptoki::context::Pkcs11;
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::QscdError;

struct State {
    idle: Vec<Session>,
    open: usize,
}

pub struct Pool {
    ctx: Pkcs11,
    slot: Slot,
    pin: SecretString,
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
}

/// An owned session, returned to the pool on drop (unless discarded).
pub struct Lease<'a> {
    pool: &'a Pool,
    session: Option<Session>,
}

impl Pool {
    pub fn new(ctx: Pkcs11, slot: Slot, pin: SecretString, max: usize, first: Session) -> Pool {
        Pool {
            ctx,
            slot,
            pin,
            max: max.max(1),
            state: Mutex::new(State {
                idle: vec![first],
                open: 1,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session for the caller's exclusive use.
    pub fn acquire(&self) -> Result<Lease<'_>, QscdError> {
        let mut st = self.lock();
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    session: Some(s),
                });
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                let opened = self.ctx.open_rw_session(self.slot).and_then(|s| {
                    super::pkcs11::login(&s, &self.pin)?;
                    Ok(s)
                });
                return match opened {
                    Ok(s) => Ok(Lease {
                        pool: self,
                        session: Some(s),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(QscdError::Device(format!("cannot open a session: {e}")))
                    }
                };
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Close every idle session (after a session loss: they are most likely dead too).
    pub fn reset(&self) {
        let idle = std::mem::take(&mut self.lock().idle);
        let n = idle.len();
        drop(idle);
        self.lock().open -= n;
        self.freed.notify_all();
    }

    /// Sessions currently open (idle or leased).
    pub fn open_sessions(&self) -> usize {
        self.lock().open
    }
}

impl Lease<'_> {
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Drop this session instead of returning it (it hit a session-level error).
    pub fn discard(mut self) {
        if let Some(s) = self.session.take() {
            drop(s);
            self.pool.lock().open -= 1;
            self.pool.freed.notify_one();
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool.lock().idle.push(s);
            self.pool.freed.notify_one();
        }
    }
}
