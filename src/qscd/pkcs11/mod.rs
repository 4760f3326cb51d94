//! The `Qscd` over a PKCS#11 token with cryptoki. One `Pkcs11` context per module per process
//! (C_Initialize once; again at start-up only, to look afresh for a token that was not there),
//! the token found by label (SoftHSM2 renumbers slots), one login for the
//! life of the process (the pool never closes its last healthy session), cached key handles (the
//! first miss indexes every private key on the token at once), and one retry after session loss,
//! logout or a stale handle.
//!
//! Its parts: `module` (the process-wide module registry), `errors` (error mapping and which
//! errors are worth another try), `objects` (slot, login, attributes, object lookups), `open`
//! (attaching to the token), `session` (pooled sessions with retry, the key handle cache),
//! `secret_keys` (the sealing and MAC keys) and `ops` (the `Qscd` operations).

mod errors;
mod module;
mod objects;
mod open;
mod ops;
mod secret_keys;
mod session;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cryptoki::object::ObjectHandle;
#[cfg(test)]
use cryptoki::session::Session;
use secrecy::SecretString;

use super::pool::Pool;
use module::ModuleUse;
#[cfg(test)]
pub(super) use objects::ec_point_bytes;
pub(super) use objects::login;

/// Label of the AES key that seals TOTP secrets.
pub const SEAL_KEY_LABEL: &str = "quill-seal-key";
/// Label of the HMAC key behind `derive_secret`.
pub const MAC_KEY_LABEL: &str = "quill-mac-key";
const IV_LEN: usize = 12;

/// How to reach the token.
#[derive(Clone)]
pub struct Pkcs11Config {
    pub module: PathBuf,
    pub token_label: String,
    pub pin: SecretString,
    pub max_sessions: usize,
}

pub struct Pkcs11Qscd {
    pool: Pool,
    pin: SecretString,
    handles: Mutex<HashMap<Vec<u8>, ObjectHandle>>,
    /// Whether the token's private keys were indexed into `handles` (or found too many to).
    indexed: AtomicBool,
    /// Most private keys the index reads the CKA_ID of ([`INDEX_MAX_KEYS`]).
    index_max: usize,
    /// Token objects are created and destroyed one at a time: SoftHSM2's file object store
    /// fails concurrent `C_GenerateKeyPair` / `C_CreateObject` calls now and then with
    /// CKR_GENERAL_ERROR (SoftHSMv2 #573), and the sealing key's find-or-create must not run
    /// twice at once (two sealing keys under one label would leave secrets sealed under the one
    /// later lookups do not find). This does not make whole enrolments safe in parallel: a key
    /// generation that meets a sign or a seal in another thread still fails now and then in
    /// SoftHSM2, so enrolments in one process run one after the other. Creating objects is
    /// enrolment's business, never the signing path's.
    objects: Mutex<()>,
    /// Keeps the module from being rescanned under the pool's sessions; dropped last.
    _module: ModuleUse,
}

/// How long `Pkcs11Qscd::open` waits for a token that is not there or not answering yet.
pub const OPEN_PATIENCE: Duration = Duration::from_secs(10);

/// A token with more private keys than this is not indexed: one CKA_ID read per key would cost
/// a network HSM a round trip each, and such HSMs find one key by CKA_ID quickly anyway.
const INDEX_MAX_KEYS: usize = 4096;

impl std::fmt::Debug for Pkcs11Qscd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Qscd").finish_non_exhaustive()
    }
}

#[cfg(test)]
impl Pkcs11Qscd {
    /// Run raw cryptoki calls on a pooled session (tests only).
    pub(crate) fn with_session_for_tests<T>(&self, f: impl FnOnce(&Session) -> T) -> T {
        let lease = self.pool.acquire().unwrap();
        f(lease.session().unwrap())
    }
}
