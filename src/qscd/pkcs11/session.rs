//! Running an operation on a pooled session, tried again after a lost login, a lost session
//! or a stale handle (`with_session`); the cache of key handles and the private key lookup
//! that fills it (the first miss indexes every private key on the token); the lock that
//! serialises creating and destroying token objects.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use cryptoki::error::RvError;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::super::QscdError;
use super::Pkcs11Qscd;
use super::errors::{OpError, is_session_level, map_ck, rv};
use super::objects::{first, login, private_key_ids};

impl Pkcs11Qscd {
    /// Sessions currently open.
    pub fn open_sessions(&self) -> usize {
        self.pool.open_sessions()
    }

    /// Run `op` on a pooled session. After a lost login, a lost session (all idle sessions are
    /// closed with it and new ones logged in) or a stale cached handle, the operation is tried
    /// again, at most `ATTEMPTS` times in all; a token that keeps failing gives the last error.
    pub(super) fn with_session<T>(
        &self,
        op: impl Fn(&Session) -> Result<T, OpError>,
    ) -> Result<T, QscdError> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            let lease = self.pool.acquire()?;
            let session = lease
                .session()
                .ok_or_else(|| QscdError::Device("empty lease".into()))?;
            let err = match op(session) {
                Ok(v) => return Ok(v),
                Err(OpError::Q(e)) => return Err(e),
                Err(OpError::Ck(e)) => e,
            };
            if attempt >= ATTEMPTS || !is_session_level(&err) {
                if is_session_level(&err) {
                    // Do not hand a session in an unknown state to the next caller.
                    lease.discard();
                }
                return Err(map_ck(err));
            }
            attempt += 1;
            match rv(&err) {
                Some(RvError::UserNotLoggedIn) => {
                    tracing::warn!("token session not logged in; logging in again");
                    login(session, &self.pin).map_err(map_ck)?;
                }
                Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid) => {
                    self.forget_handles();
                }
                _ => {
                    tracing::warn!(error = %err, "token session lost; re-opening sessions");
                    lease.discard();
                    self.pool.reset();
                    self.forget_handles();
                }
            }
        }
    }

    pub(super) fn lock_handles(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, ObjectHandle>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hold while creating or destroying token objects (see `objects`).
    pub(super) fn lock_objects(&self) -> std::sync::MutexGuard<'_, ()> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drop every cached handle (stale after a session loss or an invalid-handle error).
    fn forget_handles(&self) {
        let mut handles = self.lock_handles();
        handles.clear();
        self.indexed.store(false, Ordering::Release);
    }

    /// How many key handles are cached (tests).
    #[cfg(test)]
    pub(crate) fn cached_handles(&self) -> usize {
        self.lock_handles().len()
    }

    /// The same with another index limit (tests).
    #[cfg(test)]
    pub(crate) fn with_index_max(mut self, index_max: usize) -> Self {
        self.index_max = index_max;
        self
    }

    /// A private key's handle, cached. The first miss indexes every private key on the token:
    /// a find by CKA_ID costs a pass over all the token's objects in SoftHSM2 (6 ms with 170 key
    /// pairs), so finding each key on its first use would pay that pass once per key, while one
    /// find by class and a CKA_ID read per key (17 ms for those 170) pays it once. Later misses (a key made
    /// since by another process, such as `quill enroll`) fall back to the find by CKA_ID.
    pub(super) fn private_key(
        &self,
        session: &Session,
        id: &[u8],
    ) -> Result<ObjectHandle, OpError> {
        if let Some(h) = self.lock_handles().get(id) {
            return Ok(*h);
        }
        if !self.indexed.swap(true, Ordering::AcqRel) {
            let all = private_key_ids(session, self.index_max).inspect_err(|_| {
                self.indexed.store(false, Ordering::Release);
            })?;
            let mut handles = self.lock_handles();
            for (key_id, h) in all {
                handles.entry(key_id).or_insert(h);
            }
            if let Some(h) = handles.get(id) {
                return Ok(*h);
            }
        }
        let h = first(
            session,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(id.to_vec()),
            ],
        )?
        .ok_or(QscdError::KeyNotFound)?;
        self.lock_handles().insert(id.to_vec(), h);
        Ok(h)
    }
}
