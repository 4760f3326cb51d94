//! Several tokens as one QSCD: keys spread over the tokens of a multi-slot HSM (or several
//! HSMs), for more signing throughput and more key storage than one token has.
//!
//! - New key pairs go to the tokens in turn (round robin).
//! - A key is found where it is: the token that generated it in this process is remembered;
//!   otherwise each token is asked once (`has_key`) and the answer is cached. Key IDs are random,
//!   so at most one token has a given ID; the database need not know which token holds a key, and
//!   an operator may move keys between tokens (backup and restore) between restarts.
//! - The first token is the primary: it holds the sealing key (sealed secrets open only with the
//!   key that sealed them) and the certificates Quill stores (development CA, TSA).
//! - The set is ready only when every token is.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use zeroize::Zeroizing;

use super::{KeySpec, Qscd, QscdError, SignMechanism};

/// One token of the set and the name it is reported under.
pub struct Member {
    pub label: String,
    pub qscd: Box<dyn Qscd>,
}

pub struct TokenSet {
    members: Vec<Member>,
    next: AtomicUsize,
    /// Key ID → index of the member holding it.
    located: Mutex<HashMap<Vec<u8>, usize>>,
}

impl TokenSet {
    /// A set of at least one token; the first is the primary.
    pub fn new(members: Vec<Member>) -> Result<TokenSet, QscdError> {
        if members.is_empty() {
            return Err(QscdError::Config("no token configured".into()));
        }
        Ok(TokenSet {
            members,
            next: AtomicUsize::new(0),
            located: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, usize>> {
        self.located.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn member(&self, i: usize) -> Result<&Member, QscdError> {
        self.members
            .get(i)
            .ok_or_else(|| QscdError::Config(format!("no token number {i}")))
    }

    fn primary(&self) -> Result<&dyn Qscd, QscdError> {
        Ok(self.member(0)?.qscd.as_ref())
    }

    /// Which member holds key `id`, if any.
    pub fn locate(&self, id: &[u8]) -> Result<Option<usize>, QscdError> {
        if let Some(&i) = self.lock().get(id) {
            return Ok(Some(i));
        }
        // A token that cannot answer does not hide the key on another one; but the key is
        // only known to be absent when every token said so.
        let mut unanswered = None;
        for (i, m) in self.members.iter().enumerate() {
            match m.qscd.has_key(id) {
                Ok(true) => {
                    self.lock().insert(id.to_vec(), i);
                    return Ok(Some(i));
                }
                Ok(false) => {}
                Err(e) => unanswered = unanswered.or(Some(named(&m.label, e))),
            }
        }
        unanswered.map_or(Ok(None), Err)
    }

    /// Run `op` on the member holding `id`. If that member no longer has the key (moved while
    /// the process ran), forget where it was and look once more.
    fn on_key<T>(
        &self,
        id: &[u8],
        op: impl Fn(&dyn Qscd) -> Result<T, QscdError>,
    ) -> Result<T, QscdError> {
        for _ in 0..2 {
            let i = self.locate(id)?.ok_or(QscdError::KeyNotFound)?;
            let m = self.member(i)?;
            match op(m.qscd.as_ref()) {
                Err(QscdError::KeyNotFound) => {
                    self.lock().remove(id);
                }
                other => return other.map_err(|e| named(&m.label, e)),
            }
        }
        Err(QscdError::KeyNotFound)
    }
}

/// Say which token a device error came from (readiness reports and logs name it).
fn named(label: &str, e: QscdError) -> QscdError {
    match e {
        QscdError::Device(m) => QscdError::Device(format!("token {label:?}: {m}")),
        QscdError::Config(m) => QscdError::Config(format!("token {label:?}: {m}")),
        other => other,
    }
}

impl Qscd for TokenSet {
    fn generate_key_pair(
        &self,
        spec: KeySpec,
        id: &[u8],
        label: &str,
    ) -> Result<Vec<u8>, QscdError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.members.len();
        let m = self.member(i)?;
        let spki = m
            .qscd
            .generate_key_pair(spec, id, label)
            .map_err(|e| named(&m.label, e))?;
        self.lock().insert(id.to_vec(), i);
        Ok(spki)
    }

    fn public_key(&self, id: &[u8]) -> Result<Vec<u8>, QscdError> {
        self.on_key(id, |q| q.public_key(id))
    }

    fn sign(
        &self,
        id: &[u8],
        mechanism: SignMechanism,
        inputs: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, QscdError> {
        self.on_key(id, |q| q.sign(id, mechanism, inputs))
    }

    fn destroy_key_pair(&self, id: &[u8]) -> Result<(), QscdError> {
        match self.locate(id)? {
            Some(i) => {
                self.lock().remove(id);
                let m = self.member(i)?;
                m.qscd.destroy_key_pair(id).map_err(|e| named(&m.label, e))
            }
            None => Ok(()),
        }
    }

    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, QscdError> {
        self.primary()?.seal(aad, plaintext)
    }

    fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, QscdError> {
        self.primary()?.unseal(aad, sealed)
    }

    fn derive_secret(&self, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, QscdError> {
        self.primary()?.derive_secret(context)
    }

    fn put_certificate(&self, id: &[u8], label: &str, der: &[u8]) -> Result<(), QscdError> {
        self.primary()?.put_certificate(id, label, der)
    }

    fn find_certificate(&self, label: &str) -> Result<Option<Vec<u8>>, QscdError> {
        self.primary()?.find_certificate(label)
    }

    fn has_key(&self, id: &[u8]) -> Result<bool, QscdError> {
        Ok(self.locate(id)?.is_some())
    }

    fn key_ids_labelled(&self, label_prefix: &str) -> Result<Vec<Vec<u8>>, QscdError> {
        let mut all = Vec::new();
        for m in &self.members {
            all.extend(
                m.qscd
                    .key_ids_labelled(label_prefix)
                    .map_err(|e| named(&m.label, e))?,
            );
        }
        Ok(all)
    }

    fn check(&self) -> Result<(), QscdError> {
        for m in &self.members {
            m.qscd.check().map_err(|e| named(&m.label, e))?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field(
                "tokens",
                &self.members.iter().map(|m| &m.label).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
