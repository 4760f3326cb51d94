//! Passwords and PINs: argon2id with parameters from configuration and a secret input derived
//! in the token (the [`Pepper`]), PHC strings in the database, and a dummy verification when
//! the user is unknown so timing does not tell who exists.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::secret::Secret;

/// argon2id cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            memory_kib: 19_456,
            iterations: 2,
        }
    }
}

/// argon2's secret input (its `K`), derived in the token (`Qscd::derive_secret`): the same for
/// every process on the token, and in no copy of the database, so that a stolen database does
/// not let anyone try PINs offline (a 6-digit PIN fell to a plain argon2id hash in hours).
/// Hashes made with it carry `keyid=qp1` in their PHC string; older ones, without, still
/// verify as they were made.
#[derive(Clone)]
pub struct Pepper(std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>);

/// What the token's MAC is taken of to make the pepper.
const PEPPER_CONTEXT: &[u8] = b"quill argon2id secret v1";
/// `keyid` of a peppered hash.
const PEPPER_KEYID: &[u8] = b"qp1";

impl Pepper {
    /// The token's pepper.
    pub fn from_token(qscd: &dyn crate::qscd::Qscd) -> Result<Pepper, crate::qscd::QscdError> {
        Ok(Pepper::from_bytes(qscd.derive_secret(PEPPER_CONTEXT)?))
    }

    /// A pepper of given bytes (benchmarks and tests).
    pub fn from_bytes(bytes: impl Into<zeroize::Zeroizing<Vec<u8>>>) -> Pepper {
        Pepper(std::sync::Arc::new(bytes.into()))
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper(…)")
    }
}

/// Hash a secret into a PHC string (`$argon2id$v=19$m=…,keyid=…`), with the pepper.
pub fn hash(secret: &Secret, params: HashParams, pepper: &Pepper) -> Result<String, String> {
    let bad = |e: argon2::Error| format!("invalid argon2 parameters: {e}");
    let p = argon2::ParamsBuilder::new()
        .m_cost(params.memory_kib)
        .t_cost(params.iterations)
        .p_cost(1)
        .keyid(argon2::KeyId::new(PEPPER_KEYID).map_err(bad)?)
        .build()
        .map_err(bad)?;
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let raw_salt = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| format!("argon2 salt: {e}"))?;
    let argon2 = Argon2::new_with_secret(
        pepper.bytes(),
        Algorithm::Argon2id,
        Version::V0x13,
        p.clone(),
    )
    .map_err(bad)?;
    // In the shared working memory, as verifications: a hash made in the server (a stale one
    // made again) must not leave a buffer of its own resident.
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(p.block_count(), Work::Signer, |memory| {
        argon2.hash_password_into_with_memory(
            secret.expose().as_bytes(),
            raw_salt,
            &mut out,
            memory,
        )
    })
    .map_err(|e| format!("argon2 hashing failed: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(&p)
            .map_err(|e| format!("argon2 parameters: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| format!("argon2 output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// argon2's working memory (`m` KiB per hash, 19 MiB by default), kept for reuse by at most
/// `parallelism()` hashes at once (`--argon2-parallel`, default 1: the server's memory stays
/// bounded under any login or authorize load; more runs PIN checks on more cores at `m` KiB
/// each). Allocating and freeing a fresh buffer per hash made glibc raise its mmap
/// threshold and keep the freed buffers resident, one per thread arena: the server's RSS grew
/// by 19 MiB per blocking thread that had ever checked a PIN.
///
/// Two kinds of work share it: a signer's PIN check (`credentials/authorize`, behind a
/// login) and a login's password check, which anyone can ask for. A login waits while a PIN
/// check is waiting, so that a flood of logins cannot hold up authorizations; and logins are
/// admitted only while at most [`MAX_LOGINS_PER_SLOT`] per hash slot are in flight
/// ([`admit_login`]), so that they cannot pile up on the blocking pool either.
struct Memory {
    idle: Mutex<Pool>,
    freed: Condvar,
}

/// The working buffers, and who waits for one.
#[derive(Default)]
struct Pool {
    idle: Vec<Vec<Block>>,
    /// Buffers made (idle or in use).
    made: usize,
    /// PIN checks waiting for a buffer.
    signers_waiting: usize,
}

/// What an argon2 verification is for (see [`Memory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A PIN, from a logged-in signer: goes first.
    Signer,
    /// A password at login: waits while a PIN check waits.
    Login,
}

/// Logins in flight (admitted, waiting or hashing) per argon2 slot, at most.
pub const MAX_LOGINS_PER_SLOT: usize = 8;

static LOGINS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A login's place among those in flight; given back when dropped.
#[derive(Debug)]
pub struct LoginAdmission(());

impl Drop for LoginAdmission {
    fn drop(&mut self) {
        LOGINS_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Admit one login's password check, or `None` when [`MAX_LOGINS_PER_SLOT`] per argon2 slot
/// are already in flight (the caller answers 503 at once: nothing is counted against the
/// user, and no thread waits).
pub fn admit_login() -> Option<LoginAdmission> {
    let cap = MAX_LOGINS_PER_SLOT * PARALLELISM.load(Ordering::Relaxed);
    LOGINS_IN_FLIGHT
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < cap).then_some(n + 1)
        })
        .ok()
        .map(|_| LoginAdmission(()))
}

static PARALLELISM: AtomicUsize = AtomicUsize::new(1);

/// How many argon2 hashes may run at once in this process (at least 1).
pub fn set_parallelism(n: usize) {
    PARALLELISM.store(n.max(1), Ordering::Relaxed);
}

fn memory() -> &'static Memory {
    static MEMORY: OnceLock<Memory> = OnceLock::new();
    MEMORY.get_or_init(|| Memory {
        idle: Mutex::new(Pool::default()),
        freed: Condvar::new(),
    })
}

/// Run `f` with a working buffer of `blocks` argon2 blocks, waiting while `max` are in use
/// (and, for a login, while a PIN check waits).
fn with_memory<T>(blocks: usize, work: Work, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let pool = memory();
    let mut buf = {
        let mut st = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        let mut counted = false;
        loop {
            let free = !st.idle.is_empty() || st.made < PARALLELISM.load(Ordering::Relaxed);
            let my_turn = work == Work::Signer || st.signers_waiting == 0;
            if free && my_turn {
                if counted {
                    st.signers_waiting -= 1;
                }
                match st.idle.pop() {
                    Some(buf) => break buf,
                    None => {
                        st.made += 1;
                        break Vec::new();
                    }
                }
            }
            if work == Work::Signer && !counted {
                st.signers_waiting += 1;
                counted = true;
            }
            st = pool.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    };
    buf.resize(blocks, Block::default());
    let out = f(&mut buf);
    // No trace of the secret's derivation stays in memory that outlives the call.
    buf.fill(Block::default());
    let mut st = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
    st.idle.push(buf);
    drop(st);
    // Everyone looks: a waiting PIN check must not sleep while a login takes the buffer.
    pool.freed.notify_all();
    out
}

/// Verify a secret against a PHC string; the parameters come from the string itself, and the
/// pepper is used when its `keyid` says it was hashed with it. A malformed stored hash
/// verifies as false.
pub fn verify(secret: &Secret, phc: &str, pepper: &Pepper) -> bool {
    verify_for(Work::Signer, secret, phc, pepper)
}

/// [`verify`] for `work` (a login's password check yields to PIN checks).
pub fn verify_for(work: Work, secret: &Secret, phc: &str, pepper: &Pepper) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = match params.keyid() {
        [] => Argon2::new(algorithm, version, params),
        PEPPER_KEYID => match Argon2::new_with_secret(pepper.bytes(), algorithm, version, params) {
            Ok(a) => a,
            Err(_) => return false,
        },
        _ => return false,
    };
    let mut out = vec![0u8; expected.len()];
    let computed = with_memory(blocks, work, |memory| {
        argon2.hash_password_into_with_memory(secret.expose().as_bytes(), salt, &mut out, memory)
    });
    // `Output` compares in constant time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

/// Whether a stored hash is made as [`hash`] makes one now: argon2id with the pepper and the
/// configured cost. One that is not (made before the pepper, or under another
/// `--argon2-memory-kib` / `--argon2-iterations`) is made again once its secret is known, that
/// is after a successful verification ([`rehash_if_stale`]).
pub fn is_current(phc: &str, params: HashParams) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(made) = Params::try_from(&parsed) else {
        return false;
    };
    Algorithm::try_from(parsed.algorithm) == Ok(Algorithm::Argon2id)
        && made.keyid() == PEPPER_KEYID
        && made.m_cost() == params.memory_kib
        && made.t_cost() == params.iterations
        && made.p_cost() == 1
}

/// After `secret` verified against `phc`: the hash to store in its place, if `phc` is not
/// [`is_current`]. `None` when it is, or when hashing fails (the old hash keeps working).
pub fn rehash_if_stale(
    secret: &Secret,
    phc: &str,
    params: HashParams,
    pepper: &Pepper,
) -> Option<String> {
    if is_current(phc, params) {
        return None;
    }
    hash(secret, params, pepper)
        .inspect_err(|e| tracing::warn!(error = %e, "could not make a stale hash again"))
        .ok()
}

/// Spend the same time as a real login verification, for unknown (or locked) users.
pub fn verify_dummy(secret: &Secret, params: HashParams, pepper: &Pepper) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash(&Secret::new("quill-dummy-password"), params, pepper).ok());
    if let Some(phc) = phc {
        let _ = verify_for(Work::Login, secret, phc, pepper);
    }
}

/// A PIN is 6 to 8 decimal digits.
pub fn is_valid_pin(pin: &str) -> bool {
    (6..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    const FAST: HashParams = HashParams {
        memory_kib: 1024,
        iterations: 1,
    };

    fn pepper() -> Pepper {
        Pepper::from_bytes(vec![7u8; 32])
    }

    #[test]
    fn hash_then_verify() {
        let h = hash(&Secret::new("correct horse"), FAST, &pepper()).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(verify(&Secret::new("correct horse"), &h, &pepper()));
        assert!(!verify(&Secret::new("correct horsf"), &h, &pepper()));
        assert!(!verify(&Secret::new("x"), "not a phc string", &pepper()));
    }

    #[test]
    fn verifies_hashes_made_by_the_argon2_crate_itself() {
        use argon2::password_hash::PasswordVerifier;
        for (alg, m, t) in [
            (Algorithm::Argon2id, 1024, 1),
            (Algorithm::Argon2i, 2048, 2),
            (Algorithm::Argon2d, 1024, 3),
        ] {
            let a = Argon2::new(alg, Version::V0x13, Params::new(m, t, 1, None).unwrap());
            let salt = SaltString::generate(&mut OsRng);
            let phc = a.hash_password(b"123456", &salt).unwrap().to_string();
            assert!(verify(&Secret::new("123456"), &phc, &pepper()), "{phc}");
            assert!(!verify(&Secret::new("123457"), &phc, &pepper()), "{phc}");
            // and the other way round, given the pepper as argon2's secret
            let ours = hash(&Secret::new("654321"), FAST, &pepper()).unwrap();
            let parsed = PasswordHash::new(&ours).unwrap();
            let keyed = Argon2::new_with_secret(
                &[7u8; 32],
                Algorithm::Argon2id,
                Version::V0x13,
                Params::default(),
            )
            .unwrap();
            assert!(keyed.verify_password(b"654321", &parsed).is_ok());
            assert!(
                Argon2::default()
                    .verify_password(b"654321", &parsed)
                    .is_err(),
                "not without the pepper"
            );
        }
        // Truncated or edited strings verify as false.
        let h = hash(&Secret::new("123456"), FAST, &pepper()).unwrap();
        assert!(!verify(
            &Secret::new("123456"),
            &h[..h.len() - 4],
            &pepper()
        ));
        assert!(!verify(
            &Secret::new("123456"),
            &h.replace("argon2id", "argon2x"),
            &pepper()
        ));
        assert!(!verify(
            &Secret::new("123456"),
            &h.replace("keyid=cXAx", "keyid=cXAy"),
            &pepper()
        ));
    }

    /// A peppered hash verifies only with its pepper: a copy of the database (and the hash in
    /// it) is no way to try PINs without the token.
    #[test]
    fn a_hash_needs_its_pepper() {
        let h = hash(&Secret::new("123456"), FAST, &pepper()).unwrap();
        assert!(h.contains("keyid=cXAx"), "{h}");
        let other = Pepper::from_bytes(vec![8u8; 32]);
        assert!(!verify(&Secret::new("123456"), &h, &other));
        assert!(verify(&Secret::new("123456"), &h, &pepper()));
    }

    /// A hash without the pepper, or of another cost, is stale: it is made again, with the
    /// pepper and the configured cost, and the new one verifies.
    #[test]
    fn stale_hashes_are_made_again() {
        let secret = Secret::new("123456");
        let ours = hash(&secret, FAST, &pepper()).unwrap();
        assert!(is_current(&ours, FAST));
        assert_eq!(rehash_if_stale(&secret, &ours, FAST, &pepper()), None);
        let costlier = HashParams {
            memory_kib: 2048,
            iterations: 1,
        };
        assert!(!is_current(&ours, costlier));
        let salt = SaltString::generate(&mut OsRng);
        let plain = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(FAST.memory_kib, FAST.iterations, 1, None).unwrap(),
        )
        .hash_password(b"123456", &salt)
        .unwrap()
        .to_string();
        let argon2i = plain.replace("$argon2id$", "$argon2i$");
        for stale in [plain.as_str(), argon2i.as_str(), "not a phc string"] {
            assert!(!is_current(stale, FAST), "{stale}");
        }
        for (stale, params) in [(&plain, FAST), (&ours, costlier)] {
            let again = rehash_if_stale(&secret, stale, params, &pepper()).unwrap();
            assert!(is_current(&again, params), "{again}");
            assert!(verify(&secret, &again, &pepper()));
            assert!(!verify(&secret, &again, &Pepper::from_bytes(vec![8u8; 32])));
        }
    }

    #[test]
    fn parallel_verifications_share_bounded_memory() {
        let h = hash(&Secret::new("123456"), FAST, &pepper()).unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| assert!(verify(&Secret::new("123456"), &h, &pepper())));
            }
        });
        // (nextest runs each test in its own process: the default of 1 holds here)
        let st = memory().idle.lock().unwrap();
        assert_eq!(st.made, 1, "one working buffer, reused by all eight");
    }

    /// A PIN check waiting for the working buffer gets it before a login that waits too,
    /// whichever came first.
    #[test]
    fn pin_checks_go_before_logins() {
        use std::sync::mpsc::channel;
        let (held_tx, held_rx) = channel();
        let (release_tx, release_rx) = channel::<()>();
        let order = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            s.spawn(move || {
                with_memory(8, Work::Signer, |_| {
                    held_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                })
            });
            held_rx.recv().unwrap();
            s.spawn(|| with_memory(8, Work::Login, |_| order.lock().unwrap().push("login")));
            std::thread::sleep(std::time::Duration::from_millis(50));
            s.spawn(|| with_memory(8, Work::Signer, |_| order.lock().unwrap().push("pin")));
            while memory().idle.lock().unwrap().signers_waiting == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            release_tx.send(()).unwrap();
        });
        assert_eq!(*order.lock().unwrap(), ["pin", "login"]);
        assert_eq!(memory().idle.lock().unwrap().signers_waiting, 0);
    }

    /// Logins are admitted while fewer than MAX_LOGINS_PER_SLOT per slot are in flight; a
    /// finished one makes room.
    #[test]
    fn logins_in_flight_are_bounded() {
        let mut admitted: Vec<_> = (0..MAX_LOGINS_PER_SLOT)
            .map(|_| admit_login().expect("room"))
            .collect();
        assert!(admit_login().is_none());
        drop(admitted.pop());
        let again = admit_login();
        assert!(again.is_some());
        assert!(admit_login().is_none());
    }

    /// A hash is made in the shared working memory (as a verification): a stale hash made
    /// again in the server leaves no buffer of its own resident.
    #[test]
    fn hashing_uses_the_shared_memory() {
        let h = hash(&Secret::new("123456"), FAST, &pepper()).unwrap();
        assert!(verify(&Secret::new("123456"), &h, &pepper()));
        let st = memory().idle.lock().unwrap();
        assert_eq!(
            (st.made, st.idle.len()),
            (1, 1),
            "one buffer, back in the pool"
        );
        assert_eq!(
            st.idle[0].len(),
            usize::try_from(FAST.memory_kib).unwrap(),
            "of the hash's cost"
        );
    }

    #[test]
    fn salts_differ() {
        let a = hash(&Secret::new("123456"), FAST, &pepper()).unwrap();
        let b = hash(&Secret::new("123456"), FAST, &pepper()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn pin_rules() {
        assert!(is_valid_pin("123456"));
        assert!(is_valid_pin("12345678"));
        assert!(!is_valid_pin("12345"));
        assert!(!is_valid_pin("123456789"));
        assert!(!is_valid_pin("12345a"));
        assert!(!is_valid_pin("１２３４５６"));
    }

    #[test]
    fn bad_params_are_an_error() {
        assert!(
            hash(
                &Secret::new("x"),
                HashParams {
                    memory_kib: 1,
                    iterations: 0
                },
                &pepper()
            )
            .is_err()
        );
    }
}
