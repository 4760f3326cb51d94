//! SADs (signature activation data) from `credentials/authorize`: stored only as a hash, bound
//! to the token that asked for it, its user, its credential, its digest algorithm and the exact
//! digests authorized. Spending is one immediate transaction of conditional updates, so two
//! concurrent `signHash` calls can never both spend the same digest or the last signature.

use diesel::prelude::*;

use super::audit::{self, Event};
use crate::clock::Clock;
use crate::store::models::NewSad;
use crate::store::schema::{access_tokens, credentials, sad_digests, sads};
use crate::store::{DbConn, StoreError, on_backend};

/// Why a SAD may not sign what was asked. Each maps to a CSC error in the service layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SadRefusal {
    /// Unknown, another user's, another credential's, or its token was revoked.
    Unknown,
    Expired,
    WrongHashAlgo,
    /// A digest that the SAD never authorized.
    NotAuthorized,
    /// A digest already signed with this SAD.
    AlreadySigned,
    /// No signatures left.
    Exhausted,
    /// The credential was disabled by an operator (judged under the write lock, so a
    /// `credential disable` that committed stops every later spend).
    CredentialDisabled,
    /// The credential is locked by failed PIN/OTP attempts (likewise).
    CredentialLocked,
}

/// The request to spend a SAD.
pub struct Spend<'a> {
    pub sad_hash: &'a [u8],
    pub user_id: &'a str,
    pub credential_id: &'a str,
    pub hash_algo: &'a str,
    pub digests: &'a [Vec<u8>],
    /// Read when the SAD is judged, under the write lock: a call that waited for the lock
    /// past the SAD's expiry finds it expired.
    pub clock: &'a dyn Clock,
    /// `--max-auth-failures`: a credential with as many failed attempts is locked.
    pub max_failures: i32,
}

impl Spend<'_> {
    fn judged(&self) -> Judged<'_> {
        Judged {
            user: self.user_id,
            credential: self.credential_id,
            now: self.clock.now(),
            max_failures: self.max_failures,
        }
    }
}

enum TxError {
    Refused(SadRefusal),
    Db(diesel::result::Error),
}

/// Carry a store error through a diesel transaction (it rolls the transaction back).
fn store_to_diesel(e: StoreError) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(e.to_string().into())
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}

/// A SAD's digests as stored: `all` holds them concatenated (each `width` bytes) in the order
/// they were authorized, `used` one byte per digest in the same order, 1 once it was signed.
/// A spend reads both (the SAD's row and its `sad_digests` row; on PostgreSQL one of a single
/// digest finds it in the server instead, `load_live_finding`) and writes `used` back, one row,
/// however many digests it signs.
#[derive(Debug)]
struct Digests {
    all: Vec<u8>,
    used: Vec<u8>,
}

impl Digests {
    fn width(&self) -> usize {
        self.all.len().checked_div(self.used.len()).unwrap_or(0)
    }

    fn each(&self) -> impl Iterator<Item = &[u8]> {
        // `max(1)`: a SAD without digests has nothing to iterate (and chunks need a width).
        self.all
            .chunks_exact(self.width().max(1))
            .take(self.used.len())
    }

    /// Where each of `wanted` is, in its order; `None` for a digest the SAD never authorized.
    /// A few are looked for one by one; many through an index of the SAD's digests, hashed
    /// with foldhash (seeded per process; SipHash took a 100-digest spend ~50 µs).
    fn positions(&self, wanted: &[Vec<u8>]) -> Vec<Option<usize>> {
        if wanted.len() <= 4 {
            return wanted
                .iter()
                .map(|d| self.each().position(|c| c == d.as_slice()))
                .collect();
        }
        let mut index: std::collections::HashMap<&[u8], usize, foldhash::fast::RandomState> =
            std::collections::HashMap::with_capacity_and_hasher(
                self.used.len(),
                foldhash::fast::RandomState::default(),
            );
        index.extend(self.each().enumerate().map(|(i, c)| (c, i)));
        wanted
            .iter()
            .map(|d| index.get(d.as_slice()).copied())
            .collect()
    }
}

/// Store a new SAD and its audit record in one transaction.
pub fn insert(conn: &mut DbConn, sad: &NewSad, event: &Event) -> Result<(), StoreError> {
    conn.write_tx(|c| {
        insert_in_tx(c, sad)?;
        audit::append(c, event)
    })
}

/// The rows of a new SAD, inside the caller's write transaction: the SAD with every digest
/// unused, and its digests.
pub(crate) fn insert_in_tx(c: &mut DbConn, sad: &NewSad) -> Result<(), diesel::result::Error> {
    insert_marked_in_tx(c, sad, &vec![0u8; sad.digests.len()])
}

/// `insert_in_tx` with the digests' `used` flags given (one byte per digest, 1: signed).
fn insert_marked_in_tx(
    c: &mut DbConn,
    sad: &NewSad,
    used: &[u8],
) -> Result<(), diesel::result::Error> {
    diesel::insert_into(sads::table)
        .values((
            sads::sad_hash.eq(&sad.sad_hash),
            sads::token_hash.eq(&sad.token_hash),
            sads::user_id.eq(&sad.user_id),
            sads::credential_id.eq(&sad.credential_id),
            sads::hash_algo.eq(&sad.hash_algo),
            sads::remaining.eq(sad.num_signatures),
            sads::expires_at.eq(sad.expires_at),
            sads::created_at.eq(sad.created_at),
            sads::used.eq(used),
        ))
        .execute(c)?;
    diesel::insert_into(sad_digests::table)
        .values((
            sad_digests::sad_hash.eq(&sad.sad_hash),
            sad_digests::digests.eq(sad.digests.concat()),
        ))
        .execute(c)?;
    Ok(())
}

/// Check and spend, atomically, with its audit record. `Ok(Err(refusal))` means nothing was
/// spent (and nothing recorded: the caller records refusals).
pub fn spend(
    conn: &mut DbConn,
    req: &Spend<'_>,
    event: &Event,
) -> Result<Result<(), SadRefusal>, StoreError> {
    audited(conn, event, |c| spend_in_tx(c, req, event))
}

/// What a SAD decision leaves of its audit record.
enum Record {
    /// To append (the tail read first).
    Append,
    /// Written by the decision's own statement.
    Written,
}

/// Run a SAD decision and its audit record in one immediate transaction; a refusal rolls
/// everything back and comes out as `Ok(Err(refusal))`.
fn audited(
    conn: &mut DbConn,
    event: &Event,
    decide: impl FnOnce(&mut DbConn) -> Result<Record, TxError>,
) -> Result<Result<(), SadRefusal>, StoreError> {
    let outcome = conn.write_tx(|c| {
        match decide(c)? {
            Record::Append => audit::append(c, event),
            Record::Written => Ok(()),
        }
        .map_err(|e| TxError::Db(store_to_diesel(e)))
    });
    match outcome {
        Ok(()) => Ok(Ok(())),
        Err(TxError::Refused(r)) => Ok(Err(r)),
        Err(TxError::Db(e)) => Err(StoreError::from(e)),
    }
}

/// A SAD's row as every use reads it, with its token's `revoked` (`None`: no such token) and
/// its credential's `status` and `failed_auths`.
#[derive(Queryable)]
struct SadRow {
    token_hash: Vec<u8>,
    user_id: String,
    credential_id: String,
    hash_algo: String,
    remaining: i32,
    expires_at: i64,
    used: Vec<u8>,
    revoked: Option<bool>,
    credential_status: String,
    failed_auths: i32,
}

/// A SAD that passed the checks every use shares.
struct LiveSad {
    token_hash: Vec<u8>,
    hash_algo: String,
    remaining: i32,
    digests: Digests,
}

/// Who may use a SAD, and when: what `judge` checks a SAD's row against.
struct Judged<'a> {
    user: &'a str,
    credential: &'a str,
    now: i64,
    max_failures: i32,
}

/// The one place a SAD is judged usable: it exists, belongs to this user and credential, its
/// token is not revoked, its credential is neither disabled nor locked (read in the same
/// statement, under the write lock: an operator's disable or a lock that committed first stops
/// the spend), and it has not expired. Another user's SAD looks unknown.
fn judge(row: Option<SadRow>, by: &Judged<'_>, all: Vec<u8>) -> Result<LiveSad, TxError> {
    let refuse = |r| Err(TxError::Refused(r));
    let Some(row) = row else {
        return refuse(SadRefusal::Unknown);
    };
    let now = by.now;
    if row.user_id != by.user || row.credential_id != by.credential || row.revoked.unwrap_or(true) {
        return refuse(SadRefusal::Unknown);
    }
    if row.credential_status != crate::store::models::STATUS_ENABLED {
        return refuse(SadRefusal::CredentialDisabled);
    }
    if row.failed_auths >= by.max_failures {
        return refuse(SadRefusal::CredentialLocked);
    }
    if row.expires_at <= now {
        return refuse(SadRefusal::Expired);
    }
    Ok(LiveSad {
        token_hash: row.token_hash,
        hash_algo: row.hash_algo,
        remaining: row.remaining,
        digests: Digests {
            all,
            used: row.used,
        },
    })
}

/// The SAD (judged by `judge`) with its token's revocation flag and all its digests, in one
/// statement (no token row: revoked).
fn load_live(c: &mut DbConn, sad_hash: &[u8], by: &Judged<'_>) -> Result<LiveSad, TxError> {
    let row: Option<(SadRow, Option<Vec<u8>>)> = on_backend!(c, |c| sads::table
        .inner_join(credentials::table)
        .left_join(access_tokens::table.on(access_tokens::token_hash.eq(sads::token_hash)))
        .left_join(sad_digests::table.on(sad_digests::sad_hash.eq(sads::sad_hash)))
        .filter(sads::sad_hash.eq(sad_hash))
        .select((
            (
                sads::token_hash,
                sads::user_id,
                sads::credential_id,
                sads::hash_algo,
                sads::remaining,
                sads::expires_at,
                sads::used,
                access_tokens::revoked.nullable(),
                credentials::status,
                credentials::failed_auths,
            ),
            sad_digests::digests.nullable(),
        ))
        .get_result(c)
        .optional())?;
    let (row, all) = match row {
        Some((row, all)) => (Some(row), all.unwrap_or_default()),
        None => (None, Vec::new()),
    };
    judge(row, by, all)
}

/// `load_live` for one digest, and the digest's index in the SAD's list (`None`: not one of
/// the SAD's). On PostgreSQL the digest is found in the server (`hot::LoadFindingOne`), so that
/// the list (32 KB for a 1000-digest SAD) is not shipped for one digest, and the audit log's
/// tail comes with it (`Some`); a match found only across two of the list's (at an offset that
/// is not a multiple of the digest length, which takes chosen digests) is looked for in the
/// whole list. On SQLite, in process, the list is read and searched here: its `instr()`
/// compares at every byte offset, which took 42 µs at the end of a 1000-digest list against
/// 5 µs to read the list whole.
fn load_live_finding(
    c: &mut DbConn,
    req: &Spend<'_>,
    digest: &[u8],
) -> Result<(LiveSad, Option<usize>, Option<audit::Tail>), TxError> {
    let DbConn::Pg(pg) = c else {
        return load_live_finding_in_list(c, req, digest);
    };
    let find = hot::LoadFindingOne {
        sad_hash: req.sad_hash,
        digest,
    };
    type Found = (
        SadRow,
        Option<i32>,
        Option<i32>,
        Option<i64>,
        Option<Vec<u8>>,
    );
    let row: Option<Found> = find.get_result(pg).optional()?;
    let (row, offset, length, tail) = match row {
        Some((row, offset, length, seq, hash)) => (
            Some(row),
            offset.unwrap_or(0),
            length.unwrap_or(0),
            seq.zip(hash),
        ),
        None => (None, 0, 0, None),
    };
    let live = judge(row, &req.judged(), Vec::new())?;
    let (offset, length) = (
        usize::try_from(offset).unwrap_or(0),
        usize::try_from(length).unwrap_or(0),
    );
    let width = length.checked_div(live.digests.used.len()).unwrap_or(0);
    if offset == 0 || width != digest.len() {
        return Ok((live, None, Some(tail)));
    }
    let start = offset - 1;
    if start % width == 0 {
        return Ok((live, Some(start / width), Some(tail)));
    }
    load_live_finding_in_list(c, req, digest)
}

/// `load_live`, and where `digest` is in the whole list.
fn load_live_finding_in_list(
    c: &mut DbConn,
    req: &Spend<'_>,
    digest: &[u8],
) -> Result<(LiveSad, Option<usize>, Option<audit::Tail>), TxError> {
    let (live, tail) = load_live_listed(c, req)?;
    let at = live.digests.each().position(|d| d == digest);
    Ok((live, at, tail))
}

/// `load_live` for a spend that searches the whole list. On PostgreSQL the audit log's tail
/// comes in the same statement (`hot::LoadListPg`: `Some`), so that the spend can write its
/// record with its update.
fn load_live_listed(
    c: &mut DbConn,
    req: &Spend<'_>,
) -> Result<(LiveSad, Option<audit::Tail>), TxError> {
    let DbConn::Pg(pg) = c else {
        let live = load_live(c, req.sad_hash, &req.judged())?;
        return Ok((live, None));
    };
    type Listed = (SadRow, Option<Vec<u8>>, Option<i64>, Option<Vec<u8>>);
    let row: Option<Listed> = hot::LoadListPg {
        sad_hash: req.sad_hash,
    }
    .get_result(pg)
    .optional()?;
    let (row, all, tail) = match row {
        Some((row, all, seq, hash)) => (Some(row), all.unwrap_or_default(), seq.zip(hash)),
        None => (None, Vec::new(), None),
    };
    let live = judge(row, &req.judged(), all)?;
    Ok((live, Some(tail)))
}

/// Spend, with `event` as its record. The SAD's row (and where the digests are in its list) is
/// read under the write lock, the request's digests judged in its order (the first one never
/// authorized or already signed decides the refusal), and the new `used` flags and count
/// written in one conditional update of the SAD's row (`hot::TakeDigests`). On PostgreSQL,
/// where each statement is a round trip, the SAD check also reads the audit log's tail, and
/// the update goes with the audit record in one statement (`hot::SpendRecordPg`).
fn spend_in_tx(c: &mut DbConn, req: &Spend<'_>, event: &Event) -> Result<Record, TxError> {
    let refuse = |r| Err(TxError::Refused(r));
    // One digest (the usual signHash) is looked for alone (`load_live_finding`); more in the whole
    // list.
    let (live, positions, tail) = match req.digests {
        [digest] => {
            let (live, at, tail) = load_live_finding(c, req, digest)?;
            (live, vec![at], tail)
        }
        _ => {
            let (live, tail) = load_live_listed(c, req)?;
            let at = live.digests.positions(req.digests);
            (live, at, tail)
        }
    };
    if live.hash_algo != req.hash_algo {
        return refuse(SadRefusal::WrongHashAlgo);
    }
    let mut used = live.digests.used.clone();
    for at in positions {
        match at.and_then(|i| used.get_mut(i)) {
            None => return refuse(SadRefusal::NotAuthorized),
            Some(flag) if *flag != 0 => return refuse(SadRefusal::AlreadySigned),
            Some(flag) => *flag = 1,
        }
    }
    let n = i32::try_from(req.digests.len()).unwrap_or(i32::MAX);
    if live.remaining < n {
        return refuse(SadRefusal::Exhausted);
    }
    let take = hot::TakeDigests {
        sad_hash: req.sad_hash,
        was: &live.digests.used,
        now: &used,
        n,
    };
    // The update matches unless the row changed since it was read, which the write lock rules
    // out; should it ever happen, nothing is spent.
    if let (DbConn::Pg(pg), Some(tail)) = (&mut *c, tail) {
        let record = audit::Chained::after(event, tail);
        if (hot::SpendRecordPg { take, record }).execute(pg)? != 1 {
            return refuse(SadRefusal::Exhausted);
        }
        return Ok(Record::Written);
    }
    // SQLite (in process, no round trips): the update, then the record after a tail read.
    if on_backend!(&mut *c, |c| take.execute(c))? != 1 {
        return refuse(SadRefusal::Exhausted);
    }
    Ok(Record::Append)
}

/// Swap a live SAD for a new one (`credentials/extendTransaction`): same token, user and
/// credential, never more signatures than the old one had left; the old SAD dies in the same
/// transaction. Without new digests the unused ones carry over.
pub struct Extend<'a> {
    pub old_sad_hash: &'a [u8],
    pub new_sad_hash: &'a [u8],
    pub user_id: &'a str,
    pub credential_id: &'a str,
    /// Read under the write lock, as in [`Spend`]; the new SAD is made then.
    pub clock: &'a dyn Clock,
    /// `--max-auth-failures`, as in [`Spend`].
    pub max_failures: i32,
    /// The new SAD's lifetime in seconds.
    pub ttl: i64,
    /// New digest algorithm name and digests, if the client binds new hashes.
    pub rebind: Option<(&'a str, &'a [Vec<u8>])>,
}

pub fn extend(
    conn: &mut DbConn,
    req: &Extend<'_>,
    event: &Event,
) -> Result<Result<(), SadRefusal>, StoreError> {
    audited(conn, event, |c| {
        extend_in_tx(c, req).map(|()| Record::Append)
    })
}

fn extend_in_tx(c: &mut DbConn, req: &Extend<'_>) -> Result<(), TxError> {
    let refuse = |r| Err(TxError::Refused(r));
    let now = req.clock.now();
    let LiveSad {
        token_hash,
        hash_algo,
        remaining,
        digests,
    } = load_live(
        c,
        req.old_sad_hash,
        &Judged {
            user: req.user_id,
            credential: req.credential_id,
            now,
            max_failures: req.max_failures,
        },
    )?;
    if remaining <= 0 {
        return refuse(SadRefusal::Exhausted);
    }
    // The new SAD inherits the digests signed so far, marked signed, so that no extension
    // (however many follow) makes a digest sign twice; it authorizes the old SAD's unsigned
    // digests, or the new ones bound in their place, within the budget left.
    let (signed, unsigned): (Vec<_>, Vec<_>) = digests
        .each()
        .zip(&digests.used)
        .partition(|(_, u)| **u != 0);
    let signed: Vec<Vec<u8>> = signed.into_iter().map(|(d, _)| d.to_vec()).collect();
    let fresh: Vec<Vec<u8>> = match req.rebind {
        Some((algo, new)) => {
            if algo != hash_algo {
                return refuse(SadRefusal::WrongHashAlgo);
            }
            if new.iter().any(|d| signed.contains(d)) {
                return refuse(SadRefusal::AlreadySigned);
            }
            new.to_vec()
        }
        None => unsigned.into_iter().map(|(d, _)| d.to_vec()).collect(),
    };
    let count = i32::try_from(fresh.len()).unwrap_or(i32::MAX);
    if count > remaining || fresh.is_empty() {
        return refuse(SadRefusal::Exhausted);
    }
    diesel::update(sads::table.find(req.old_sad_hash))
        .set(sads::remaining.eq(RETIRED))
        .execute(c)?;
    let used: Vec<u8> = signed
        .iter()
        .map(|_| 1)
        .chain(fresh.iter().map(|_| 0))
        .collect();
    insert_marked_in_tx(
        c,
        &NewSad {
            sad_hash: req.new_sad_hash.to_vec(),
            token_hash,
            user_id: req.user_id.to_string(),
            credential_id: req.credential_id.to_string(),
            hash_algo,
            num_signatures: count,
            expires_at: now + req.ttl,
            created_at: now,
            digests: [signed, fresh].concat(),
        },
        &used,
    )?;
    Ok(())
}

/// `remaining` of a SAD that can never sign again whatever is refunded: traded in by
/// extendTransaction (its budget went to the new SAD) or killed with its token. A SAD spent down
/// to 0 is not retired: a refund gives it back what the failed call took.
pub(crate) const RETIRED: i32 = -1;

/// Give back what `spend` took when the token produced no signature (a device error after the
/// SAD was spent): the digests become unused again and the count goes back up, in one write
/// transaction with its audit record. Spending first and refunding on failure keeps the
/// double-spend guarantee (a concurrent caller never sees more than was authorized) without
/// making the signer authorize again because the HSM hiccupped. A SAD that is gone or retired
/// meanwhile (expired and purged, swapped by extendTransaction, its token revoked) is left
/// alone. The audit record's detail gets `"refunded": true|false`. Returns whether it refunded.
pub fn refund(conn: &mut DbConn, req: &Spend<'_>, event: &Event) -> Result<bool, StoreError> {
    let outcome = conn.write_tx(|c| {
        let n = i32::try_from(req.digests.len()).unwrap_or(i32::MAX);
        let row: Option<(Vec<u8>, Option<Vec<u8>>)> = sads::table
            .left_join(sad_digests::table.on(sad_digests::sad_hash.eq(sads::sad_hash)))
            .filter(sads::sad_hash.eq(req.sad_hash))
            .filter(sads::user_id.eq(req.user_id))
            .filter(sads::credential_id.eq(req.credential_id))
            .filter(sads::remaining.ge(0))
            .select((sads::used, sad_digests::digests.nullable()))
            .get_result(c)
            .optional()?;
        let restored = match row {
            None => false,
            Some((used, all)) => {
                let digests = Digests {
                    all: all.unwrap_or_default(),
                    used,
                };
                let mut used = digests.used.clone();
                for i in digests.positions(req.digests).into_iter().flatten() {
                    if let Some(flag) = used.get_mut(i) {
                        *flag = 0;
                    }
                }
                diesel::update(sads::table.find(req.sad_hash))
                    .set((sads::used.eq(used), sads::remaining.eq(sads::remaining + n)))
                    .execute(c)?
                    == 1
            }
        };
        let mut event = event.clone();
        if let Some(detail) = event.detail.as_object_mut() {
            detail.insert("refunded".into(), serde_json::Value::Bool(restored));
        }
        audit::append(c, &event).map_err(store_to_diesel)?;
        Ok::<_, diesel::result::Error>(restored)
    });
    Ok(outcome?)
}

/// The credential a SAD (or an OAuth credential token, stored as its own SAD) is bound to.
pub fn credential_of(conn: &mut DbConn, sad_hash: &[u8]) -> Result<Option<String>, StoreError> {
    Ok(sads::table
        .find(sad_hash)
        .select(sads::credential_id)
        .get_result(conn)
        .optional()?)
}

/// Signatures left on a SAD (diagnostics and tests).
pub fn remaining(conn: &mut DbConn, sad_hash: &[u8]) -> Result<Option<i32>, StoreError> {
    Ok(sads::table
        .find(sad_hash)
        .select(sads::remaining)
        .get_result(conn)
        .optional()?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::store::Store;
    use crate::store::models::AccessTokenRow;
    use crate::store::repo::credentials::tests::{sample, user};
    use crate::store::repo::{credentials, tokens, users};
    use crate::store::tests::temp_store;

    fn setup() -> (crate::store::tests::TempDb, Store) {
        let (d, store) = temp_store();
        fill(&store, vec![vec![1; 32], vec![2; 32]]);
        (d, store)
    }

    /// Users u1 and u2, u1's credentials c1 and c2, u1's token [7; 32], and SAD [5; 32] for c1
    /// with `digests` and as many signatures, until 500.
    fn fill(store: &Store, digests: Vec<Vec<u8>>) {
        store
            .with(|c| {
                users::insert(c, &user("u1"))?;
                users::insert(c, &user("u2"))?;
                credentials::insert(c, &sample("c1", "u1"))?;
                credentials::insert(c, &sample("c2", "u1"))?;
                tokens::insert(
                    c,
                    &AccessTokenRow {
                        token_hash: vec![7; 32],
                        user_id: "u1".into(),
                        expires_at: 1_000,
                        revoked: false,
                        created_at: 0,
                        scope: crate::store::models::SCOPE_SERVICE.into(),
                    },
                )?;
                insert(c, &new_sad(5, digests), &ev())
            })
            .unwrap();
    }

    /// SAD `[hash; 32]` of user u1 for c1 with token [7; 32], `digests` and as many
    /// signatures, until 500.
    fn new_sad(hash: u8, digests: Vec<Vec<u8>>) -> NewSad {
        NewSad {
            sad_hash: vec![hash; 32],
            token_hash: vec![7; 32],
            user_id: "u1".into(),
            credential_id: "c1".into(),
            hash_algo: "sha256".into(),
            num_signatures: i32::try_from(digests.len()).unwrap(),
            expires_at: 500,
            created_at: 0,
            digests,
        }
    }

    fn try_spend(
        store: &Store,
        user: &str,
        cred: &str,
        alg: &str,
        digests: &[Vec<u8>],
        now: i64,
    ) -> Result<(), SadRefusal> {
        store
            .with(|c| {
                spend(
                    c,
                    &Spend {
                        sad_hash: &[5; 32],
                        user_id: user,
                        credential_id: cred,
                        hash_algo: alg,
                        digests,
                        clock: &FixedClock(now),
                        max_failures: 5,
                    },
                    &ev(),
                )
            })
            .unwrap()
    }

    /// The setup SAD's `used` flags.
    fn used_flags(store: &Store) -> Vec<u8> {
        store
            .with(|c| {
                Ok(sads::table
                    .find(&[5u8; 32][..])
                    .select(sads::used)
                    .get_result(c)?)
            })
            .unwrap()
    }

    /// Spend `digests` of SAD `[sad; 32]` as user u1 with credential c1 (SHA-256) at `now`.
    fn spend_of(store: &Store, sad: u8, digests: &[Vec<u8>], now: i64) -> Result<(), SadRefusal> {
        store
            .with(|c| {
                spend(
                    c,
                    &Spend {
                        sad_hash: &[sad; 32],
                        user_id: "u1",
                        credential_id: "c1",
                        hash_algo: "sha256",
                        digests,
                        clock: &FixedClock(now),
                        max_failures: 5,
                    },
                    &ev(),
                )
            })
            .unwrap()
    }

    /// Spend one of the setup SAD's digests on `conn` (user u1, credential c1): it must work.
    fn spend_digest(conn: &mut DbConn, digest: Vec<u8>) {
        let spent = spend(
            conn,
            &Spend {
                sad_hash: &[5; 32],
                user_id: "u1",
                credential_id: "c1",
                hash_algo: "sha256",
                digests: &[digest],
                clock: &FixedClock(1),
                max_failures: 5,
            },
            &ev(),
        );
        assert_eq!(spent.unwrap(), Ok(()));
    }

    /// A disable or a lock that committed before the spend stops it, whatever was read of the
    /// credential before (the row is read with the SAD, under the write lock); nothing is spent,
    /// and the SAD signs again once the credential is usable.
    #[test]
    fn a_disabled_or_locked_credential_spends_nothing() {
        let (_d, store) = setup();
        let set = |sql: &str| {
            store
                .with(|c| {
                    use diesel::connection::SimpleConnection as _;
                    Ok(crate::store::on_backend!(c, |c| c.batch_execute(sql))?)
                })
                .unwrap()
        };
        set("UPDATE credentials SET status = 'disabled' WHERE id = 'c1'");
        assert_eq!(
            spend_of(&store, 5, &[vec![1; 32]], 1),
            Err(SadRefusal::CredentialDisabled)
        );
        set("UPDATE credentials SET status = 'enabled', failed_auths = 5 WHERE id = 'c1'");
        assert_eq!(
            spend_of(&store, 5, &[vec![1; 32]], 1),
            Err(SadRefusal::CredentialLocked)
        );
        set("UPDATE credentials SET failed_auths = 4 WHERE id = 'c1'");
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(2));
        assert_eq!(spend_of(&store, 5, &[vec![1; 32]], 1), Ok(()));
    }

    /// A test's audit event.
    pub(crate) fn ev() -> Event {
        Event {
            at: 0,
            actor: "u1".into(),
            action: "test",
            credential_id: None,
            outcome: "ok",
            detail: serde_json::json!({}),
        }
    }

    #[test]
    fn the_hot_updates_are_prepared_once_per_connection() {
        use diesel::connection::{Connection, InstrumentationEvent};
        use std::sync::{Arc, Mutex};
        let (_d, store) = setup();
        let mut conn = store.conn().unwrap();
        let seen = Arc::new(Mutex::new(Vec::<(bool, String)>::new()));
        let log = Arc::clone(&seen);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            let entry = match event {
                InstrumentationEvent::CacheQuery { sql, .. } => (true, sql.to_string()),
                InstrumentationEvent::StartQuery { query, .. } => (false, query.to_string()),
                _ => return,
            };
            log.lock().unwrap().push(entry);
        });
        for digest in [vec![1; 32], vec![2; 32]] {
            spend_digest(&mut conn, digest);
        }
        let seen = seen.lock().unwrap();
        // PostgreSQL runs it with the audit record as one statement (`SpendRecordPg`).
        let statements: &[&str] = match &**conn {
            DbConn::Sqlite(_) => &["UPDATE sads SET used"],
            DbConn::Pg(_) => &["WITH taken AS (UPDATE sads SET used"],
        };
        for table in statements {
            let ran = seen
                .iter()
                .filter(|(cached, sql)| !cached && sql.starts_with(table));
            let prepared = seen
                .iter()
                .filter(|(cached, sql)| *cached && sql.starts_with(table));
            assert_eq!(ran.count(), 2, "{table} runs once per spend: {seen:?}");
            assert_eq!(
                prepared.count(),
                1,
                "{table} is prepared for the cache once"
            );
        }
    }

    fn try_refund(store: &Store, user: &str, cred: &str, digests: &[Vec<u8>]) -> bool {
        store
            .with(|c| {
                refund(
                    c,
                    &Spend {
                        sad_hash: &[5; 32],
                        user_id: user,
                        credential_id: cred,
                        hash_algo: "sha256",
                        digests,
                        clock: &FixedClock(1),
                        max_failures: 5,
                    },
                    &ev(),
                )
            })
            .unwrap()
    }

    #[test]
    fn refund_gives_back_exactly_what_was_spent() {
        let (_d, store) = setup();
        let one = vec![vec![1; 32]];
        assert_eq!(try_spend(&store, "u1", "c1", "sha256", &one, 1), Ok(()));
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &one, 1),
            Err(SadRefusal::AlreadySigned)
        );
        // someone else's refund request touches nothing
        assert!(!try_refund(&store, "u2", "c1", &one));
        assert!(!try_refund(&store, "u1", "c2", &one));
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(1));
        assert!(try_refund(&store, "u1", "c1", &one));
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(2));
        // the digest can be signed again, and the count still caps the total
        let both = vec![vec![1; 32], vec![2; 32]];
        assert_eq!(try_spend(&store, "u1", "c1", "sha256", &both, 1), Ok(()));
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(0));
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &one, 1),
            Err(SadRefusal::AlreadySigned)
        );
        let audited: i64 = store
            .with(|c| {
                Ok(crate::store::schema::audit_log::table
                    .count()
                    .get_result(c)?)
            })
            .unwrap();
        // the SAD's issue, 2 spends and 3 refund attempts (refused spends roll back theirs)
        assert_eq!(audited, 6);
    }

    #[test]
    fn refusals_spend_nothing() {
        let (_d, store) = setup();
        let one = vec![vec![1; 32]];
        assert_eq!(
            try_spend(&store, "u2", "c1", "sha256", &one, 1),
            Err(SadRefusal::Unknown)
        );
        assert_eq!(
            try_spend(&store, "u1", "c2", "sha256", &one, 1),
            Err(SadRefusal::Unknown)
        );
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &one, 500),
            Err(SadRefusal::Expired)
        );
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha384", &one, 1),
            Err(SadRefusal::WrongHashAlgo)
        );
        // an unauthorized digest after an authorized one rolls back the first mark
        let mixed = vec![vec![1; 32], vec![3; 32]];
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &mixed, 1),
            Err(SadRefusal::NotAuthorized)
        );
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(2));
        assert_eq!(try_spend(&store, "u1", "c1", "sha256", &one, 1), Ok(()));
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(1));
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &one, 1),
            Err(SadRefusal::AlreadySigned)
        );
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &[vec![2; 32]], 1),
            Ok(())
        );
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(0));
    }

    /// A digest of a SAD whose count is gone (a SAD swapped by extendTransaction keeps its
    /// unused digests, with nothing left to spend) is refused, and stays unsigned.
    #[test]
    fn a_mark_without_a_count_is_refused() {
        let (_d, store) = setup();
        store
            .with(|c| {
                Ok(diesel::update(sads::table.find(&[5u8; 32][..]))
                    .set(sads::remaining.eq(0))
                    .execute(c)?)
            })
            .unwrap();
        let one = vec![vec![1; 32]];
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &one, 1),
            Err(SadRefusal::Exhausted)
        );
        let used = used_flags(&store);
        assert_eq!(used, [0, 0]);
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(0));
    }

    /// What a spend sends to the database, statement by statement: on PostgreSQL each is a
    /// round trip, so the write transaction is begun and locked in one, the SAD read with the
    /// audit log's tail in one (for one digest the digest is found in the server, for several
    /// the list is read), its flags and count written with the audit record in one, then the
    /// commit. The chain it writes verifies.
    #[test]
    fn what_a_spend_sends_and_the_chain_it_writes() {
        use diesel::connection::{Connection, InstrumentationEvent};
        use std::sync::{Arc, Mutex};
        let (_d, store) = temp_store();
        fill(&store, (1..=6).map(|i| vec![i; 32]).collect());
        let mut conn = store.conn().unwrap();
        let started = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = Arc::clone(&started);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                log.lock().unwrap().push(query.to_string());
            }
        });
        let calls: [&[Vec<u8>]; 3] = [
            &[vec![1; 32]],
            &[vec![2; 32]],
            &[vec![5; 32], vec![3; 32], vec![4; 32]],
        ];
        for digests in calls {
            started.lock().unwrap().clear();
            let spent = spend(
                &mut conn,
                &Spend {
                    sad_hash: &[5; 32],
                    user_id: "u1",
                    credential_id: "c1",
                    hash_algo: "sha256",
                    digests,
                    clock: &FixedClock(1),
                    max_failures: 5,
                },
                &ev(),
            );
            assert_eq!(spent.unwrap(), Ok(()));
            let sent = started.lock().unwrap().clone();
            // One digest on PostgreSQL: found in the server rather than by reading the list;
            // SQLite reads the list (its instr() is slower than the read), and so does every
            // spend of several.
            let (find, not) = match (&**conn, digests.len()) {
                (DbConn::Pg(_), 1) => ("position(", "d.digests, tail"),
                (DbConn::Pg(_), _) => ("d.digests, tail.seq", "position("),
                (DbConn::Sqlite(_), _) => ("`sad_digests`.`digests`", "instr("),
            };
            let check = sent.get(1).map(String::as_str).unwrap_or_default();
            assert!(check.contains(find) && !check.contains(not), "{sent:#?}");
            let expected = match &**conn {
                DbConn::Pg(_) => vec![
                    "BEGIN; SELECT pg_advisory_xact_lock",
                    "SELECT",
                    "WITH taken",
                    "COMMIT",
                ],
                DbConn::Sqlite(_) => vec![
                    "BEGIN IMMEDIATE",
                    "SELECT",
                    "UPDATE sads",
                    "SELECT",
                    "INSERT INTO `audit_log`",
                    "COMMIT",
                ],
            };
            assert_eq!(sent.len(), expected.len(), "{sent:#?}");
            for (s, e) in sent.iter().zip(&expected) {
                assert!(s.starts_with(e), "{s} is not {e}: {sent:#?}");
            }
            if let DbConn::Pg(_) = &**conn {
                let spend = sent.get(2).map(String::as_str).unwrap_or_default();
                assert!(spend.contains("INSERT INTO audit_log"), "{sent:#?}");
            }
        }
        let chain = audit::verify(&mut conn).unwrap();
        assert_eq!(chain.first_broken, None);
        assert_eq!(chain.records, 4, "the SAD's record and three spends");
        assert_eq!(remaining(&mut conn, &[5; 32]).unwrap(), Some(1));
        assert_eq!(
            used_flags(&store),
            [1, 1, 1, 1, 1, 0],
            "exactly the spent digests are marked"
        );
    }

    #[test]
    fn revoked_token_kills_its_sads() {
        let (_d, store) = setup();
        assert!(store.with(|c| tokens::revoke(c, "u1", &[7; 32])).unwrap());
        assert_eq!(
            try_spend(&store, "u1", "c1", "sha256", &[vec![1; 32]], 1),
            Err(SadRefusal::Unknown)
        );
    }

    /// A SAD of 100 digests, spent many at a time: each call is judged digest by digest in its
    /// own order (the first one never authorized or already signed decides), a refusal spends
    /// nothing, a refund gives back exactly its digests, and extendTransaction carries the
    /// unsigned ones over.
    #[test]
    fn many_digests_at_once_are_judged_in_request_order() {
        let (_d, store) = setup();
        let digest = |i: u8| vec![i; 32];
        let all: Vec<Vec<u8>> = (100..200).map(digest).collect();
        store
            .with(|c| insert(c, &new_sad(6, all.clone()), &ev()))
            .unwrap();
        let left = || store.with(|c| remaining(c, &[6; 32])).unwrap();
        // Every other digest, from the end: 50 at once.
        let odd: Vec<Vec<u8>> = all.iter().rev().step_by(2).cloned().collect();
        assert_eq!(spend_of(&store, 6, &odd, 1), Ok(()));
        assert_eq!(left(), Some(50));
        // An unknown digest before a signed one: not authorized; the other way round: signed.
        let mut unknown_first = vec![all[0].clone(), digest(7), odd[3].clone()];
        unknown_first.extend(all[10..20].iter().step_by(2).cloned());
        assert_eq!(
            spend_of(&store, 6, &unknown_first, 1),
            Err(SadRefusal::NotAuthorized)
        );
        let signed_first: Vec<Vec<u8>> = vec![all[0].clone(), odd[3].clone(), digest(7)];
        assert_eq!(
            spend_of(&store, 6, &signed_first, 1),
            Err(SadRefusal::AlreadySigned)
        );
        // The same digest twice in one call: the second is already signed.
        let twice = vec![all[2].clone(), all[4].clone(), all[2].clone()];
        assert_eq!(
            spend_of(&store, 6, &twice, 1),
            Err(SadRefusal::AlreadySigned)
        );
        // A digest of another length is not one the SAD holds.
        assert_eq!(
            spend_of(&store, 6, &[vec![100; 48]], 1),
            Err(SadRefusal::NotAuthorized)
        );
        assert_eq!(left(), Some(50), "refusals spend nothing");
        let even: Vec<Vec<u8>> = all.iter().step_by(2).cloned().collect();
        // A refund of ten of the signed ones makes exactly those signable again.
        let some_odd = &odd[..10];
        assert!(
            store
                .with(|c| refund(
                    c,
                    &Spend {
                        sad_hash: &[6; 32],
                        user_id: "u1",
                        credential_id: "c1",
                        hash_algo: "sha256",
                        digests: some_odd,
                        clock: &FixedClock(1),
                        max_failures: 5,
                    },
                    &ev(),
                ))
                .unwrap()
        );
        assert_eq!(left(), Some(60));
        assert_eq!(
            spend_of(&store, 6, &odd[9..11], 1),
            Err(SadRefusal::AlreadySigned)
        );
        assert_eq!(spend_of(&store, 6, &odd[..5], 1), Ok(()));
        // extendTransaction: the 55 unsigned digests (the even ones and five odd) carry over.
        let extended = store
            .with(|c| {
                extend(
                    c,
                    &Extend {
                        old_sad_hash: &[6; 32],
                        new_sad_hash: &[8; 32],
                        user_id: "u1",
                        credential_id: "c1",
                        clock: &FixedClock(2),
                        max_failures: 5,
                        ttl: 598,
                        rebind: None,
                    },
                    &ev(),
                )
            })
            .unwrap();
        assert_eq!(extended, Ok(()));
        assert_eq!(left(), Some(RETIRED));
        // A call that spent from the old SAD before the trade and failed in the token gets no
        // refund: the budget went to the new SAD, and the old one stays dead.
        let late = Spend {
            sad_hash: &[6; 32],
            user_id: "u1",
            credential_id: "c1",
            hash_algo: "sha256",
            digests: &odd[..5],
            clock: &FixedClock(2),
            max_failures: 5,
        };
        assert!(!store.with(|c| refund(c, &late, &ev())).unwrap());
        assert_eq!(left(), Some(RETIRED));
        assert_eq!(
            spend_of(&store, 6, &odd[..1], 2),
            Err(SadRefusal::AlreadySigned)
        );
        assert_eq!(
            spend_of(&store, 6, &even[..1], 2),
            Err(SadRefusal::Exhausted)
        );
        assert_eq!(store.with(|c| remaining(c, &[8; 32])).unwrap(), Some(55));
        // the new SAD carries the digests signed before the trade, as signed
        assert_eq!(
            spend_of(&store, 8, &odd[..1], 3),
            Err(SadRefusal::AlreadySigned)
        );
        assert_eq!(spend_of(&store, 8, &odd[5..10], 3), Ok(()));
        assert_eq!(spend_of(&store, 8, &even, 3), Ok(()));
        assert_eq!(store.with(|c| remaining(c, &[8; 32])).unwrap(), Some(0));
    }

    /// The move from a row per digest to a row of digests per SAD (migration 2026-12-06), both
    /// ways, with live SADs: after going back, each digest is a row again, signed or not; a SAD
    /// written in the old layout and one that went back and forth spend as they should after
    /// the move.
    #[test]
    fn live_sads_survive_the_move_to_a_row_of_digests_and_back() {
        use diesel::sql_types::{Bool, Integer};
        use diesel_migrations::MigrationHarness;
        let dir = tempfile::tempdir().unwrap();
        let (url, _pg) = match crate::store::tests::test_pg_url() {
            Some(admin) => {
                let db =
                    crate::store::scratch::ScratchDatabase::create(&admin, "quill_unit").unwrap();
                (db.url(), Some(db))
            }
            None => (format!("sqlite://{}/m.db", dir.path().display()), None),
        };
        /// Run `$body` on a raw connection to the test database (`$c`: a diesel connection).
        macro_rules! raw {
            (|$c:ident| $body:expr) => {
                if _pg.is_some() {
                    let mut $c = diesel::PgConnection::establish(&url).unwrap();
                    $body
                } else {
                    let mut $c =
                        diesel::SqliteConnection::establish(url.trim_start_matches("sqlite://"))
                            .unwrap();
                    // The dropped store's checkpointer may still be finishing.
                    diesel::connection::SimpleConnection::batch_execute(
                        &mut $c,
                        "PRAGMA busy_timeout = 10000",
                    )
                    .unwrap();
                    $body
                }
            };
        }
        #[derive(QueryableByName, Debug, PartialEq)]
        struct Row {
            #[diesel(sql_type = Binary)]
            digest: Vec<u8>,
            #[diesel(sql_type = Bool)]
            used: bool,
        }
        use diesel::sql_types::Binary;
        let store = Store::open(&url, 2).unwrap();
        fill(&store, vec![vec![3; 32], vec![1; 32], vec![2; 32]]);
        let mut conn = store.conn().unwrap();
        spend_digest(&mut conn, vec![1; 32]);
        drop(conn);
        drop(store);

        // Back to the layout before the move (and before any migration after it).
        raw!(|c| loop {
            let reverted = if _pg.is_some() {
                c.revert_last_migration(crate::store::POSTGRES_MIGRATIONS)
            } else {
                c.revert_last_migration(crate::store::SQLITE_MIGRATIONS)
            }
            .unwrap()
            .to_string();
            if reverted.replace('-', "").starts_with("20261206000001") {
                break;
            }
        });
        let rows: Vec<Row> = raw!(|c| diesel::sql_query(
            "SELECT digest, used FROM sad_hashes ORDER BY digest"
        )
        .load(&mut c)
        .unwrap());
        assert_eq!(
            rows,
            [
                Row {
                    digest: vec![1; 32],
                    used: true
                },
                Row {
                    digest: vec![2; 32],
                    used: false
                },
                Row {
                    digest: vec![3; 32],
                    used: false
                },
            ]
        );
        // A SAD as the old code wrote it: two digests, the first signed.
        raw!(|c| {
            diesel::sql_query(
                "INSERT INTO sads (sad_hash, token_hash, user_id, credential_id, hash_algo, \
                 remaining, expires_at, created_at) VALUES ($1, $2, 'u1', 'c1', 'sha256', $3, 500, 0)",
            )
            .bind::<Binary, _>(vec![6u8; 32])
            .bind::<Binary, _>(vec![7u8; 32])
            .bind::<Integer, _>(1)
            .execute(&mut c)
            .unwrap();
            for (d, used) in [(9u8, true), (8u8, false)] {
                diesel::sql_query(
                    "INSERT INTO sad_hashes (sad_hash, digest, used) VALUES ($1, $2, $3)",
                )
                .bind::<Binary, _>(vec![6u8; 32])
                .bind::<Binary, _>(vec![d; 32])
                .bind::<Bool, _>(used)
                .execute(&mut c)
                .unwrap();
            }
        });

        // Forward again (Store::open migrates).
        let store = Store::open(&url, 2).unwrap();
        let spend_on = |sad: u8, d: u8| spend_of(&store, sad, &[vec![d; 32]], 1);
        assert_eq!(spend_on(5, 1), Err(SadRefusal::AlreadySigned));
        assert_eq!(spend_on(5, 4), Err(SadRefusal::NotAuthorized));
        assert_eq!(spend_on(5, 2), Ok(()));
        assert_eq!(spend_on(5, 3), Ok(()));
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(0));
        assert_eq!(spend_on(6, 9), Err(SadRefusal::AlreadySigned));
        assert_eq!(spend_on(6, 8), Ok(()));
        assert_eq!(store.with(|c| remaining(c, &[6; 32])).unwrap(), Some(0));
        assert_eq!(store.with(audit::verify).unwrap().first_broken, None);
    }

    /// A digest found in the database across two of the SAD's (the end of one and the start of
    /// the next: digests a client chose so) is looked for in the whole list: a digest that is
    /// one of the SAD's further on is still found, one that is only such a straddle is not.
    #[test]
    fn a_digest_straddling_two_of_the_list_is_not_taken_for_one() {
        let (_d, store) = temp_store();
        let a: Vec<u8> = (0..32).collect();
        let b: Vec<u8> = (100..132).collect();
        let straddle = |x: &[u8], y: &[u8]| [&x[16..], &y[..16]].concat();
        let t = straddle(&a, &b);
        fill(&store, vec![a.clone(), b.clone(), t.clone()]);
        assert_eq!(
            spend_of(&store, 5, &[straddle(&b, &t)], 1),
            Err(SadRefusal::NotAuthorized)
        );
        assert_eq!(spend_of(&store, 5, std::slice::from_ref(&t), 1), Ok(()));
        let used = used_flags(&store);
        assert_eq!(used, [0, 0, 1]);
        assert_eq!(
            spend_of(&store, 5, std::slice::from_ref(&t), 1),
            Err(SadRefusal::AlreadySigned)
        );
        assert_eq!(spend_of(&store, 5, std::slice::from_ref(&b), 1), Ok(()));
        assert_eq!(
            spend_of(&store, 5, &[a[..31].to_vec()], 1),
            Err(SadRefusal::NotAuthorized)
        );
    }

    #[test]
    fn concurrent_spends_of_one_digest_succeed_once() {
        let (_d, store) = setup();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = store.clone();
                std::thread::spawn(move || try_spend(&s, "u1", "c1", "sha256", &[vec![1; 32]], 1))
            })
            .collect();
        let ok = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(Result::is_ok)
            .count();
        assert_eq!(ok, 1);
        assert_eq!(store.with(|c| remaining(c, &[5; 32])).unwrap(), Some(1));
        // One record for the one spend (refusals write none here), chained.
        let chain = store.with(audit::verify).unwrap();
        assert_eq!((chain.records, chain.first_broken), (2, None));
    }
}

/// The UPDATE of every signHash as a statement diesel keeps prepared. Diesel never caches its
/// own `UPDATE` (a changeset's SQL may vary with its values), so the hot path would parse it
/// again on every call; this one has fixed SQL and a static query id, so the statement cache
/// finds it by type. Same SQL on SQLite and PostgreSQL (placeholders are diesel's), and on
/// PostgreSQL together with the audit record in one statement (`SpendRecordPg`), after a SAD
/// check that also read the audit log's tail (`LoadFindingOne`, `LoadListPg`).
mod hot {
    use diesel::backend::Backend;
    use diesel::pg::Pg;
    use diesel::prelude::*;
    use diesel::query_builder::{AstPass, QueryFragment, QueryId};
    use diesel::serialize::ToSql;
    use diesel::sql_types::{BigInt, Binary, Bool, Integer, Nullable, Text};

    /// `UPDATE sads SET used = now, remaining = remaining - n WHERE sad_hash = ? AND used = was
    /// AND remaining >= n`: the digests' new flags and the count, only over the row as read.
    #[derive(Clone, Copy)]
    pub struct TakeDigests<'a> {
        pub sad_hash: &'a [u8],
        pub was: &'a [u8],
        pub now: &'a [u8],
        pub n: i32,
    }

    impl QueryId for TakeDigests<'_> {
        type QueryId = TakeDigests<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl<DB> QueryFragment<DB> for TakeDigests<'_>
    where
        DB: Backend
            + diesel::sql_types::HasSqlType<Binary>
            + diesel::sql_types::HasSqlType<Integer>,
        [u8]: ToSql<Binary, DB>,
        i32: ToSql<Integer, DB>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
            out.push_sql("UPDATE sads SET used = ");
            out.push_bind_param::<Binary, _>(self.now)?;
            out.push_sql(", remaining = remaining - ");
            out.push_bind_param::<Integer, _>(&self.n)?;
            out.push_sql(" WHERE sad_hash = ");
            out.push_bind_param::<Binary, _>(self.sad_hash)?;
            out.push_sql(" AND used = ");
            out.push_bind_param::<Binary, _>(self.was)?;
            out.push_sql(" AND remaining >= ");
            out.push_bind_param::<Integer, _>(&self.n)?;
            Ok(())
        }
    }

    impl<C> RunQueryDsl<C> for TakeDigests<'_> {}

    /// The SQL types of a `SadRow`, as the PostgreSQL SAD checks select it.
    type SadRowSql = (
        Binary,
        Text,
        Text,
        Text,
        Integer,
        BigInt,
        Binary,
        Nullable<Bool>,
        Text,
        Integer,
    );

    /// `SELECT` and a `SadRow`'s columns, for the PostgreSQL SAD checks.
    const SAD_ROW_COLUMNS: &str = "SELECT s.token_hash, s.user_id, s.credential_id, \
        s.hash_algo, s.remaining, s.expires_at, s.used, t.revoked, c.status, c.failed_auths";

    /// What the PostgreSQL SAD checks read from: the SAD, its token (for `revoked`), its list
    /// and the audit log's tail; the SAD's hash is bound after it.
    const FROM_SAD_WITH_TAIL: &str = " FROM sads AS s \
        JOIN credentials AS c ON c.id = s.credential_id \
        LEFT JOIN access_tokens AS t ON t.token_hash = s.token_hash \
        LEFT JOIN sad_digests AS d ON d.sad_hash = s.sad_hash \
        LEFT JOIN audit_log AS tail ON tail.seq = (SELECT max(seq) FROM audit_log) \
        WHERE s.sad_hash = ";

    /// PostgreSQL only: `load_live`'s statement for a request of one digest: the SAD with its
    /// token's revocation flag, where the digest starts in the SAD's list (1-based byte offset,
    /// 0: nowhere, NULL: no list) and the list's length — found in the database, so that the
    /// list (32 KB for a 1000-digest SAD) is not shipped for one digest — and the audit log's
    /// tail (the caller holds the write lock, so it stays the tail until the commit). Returns
    /// token_hash, user_id, credential_id, hash_algo, remaining, expires_at, used, revoked,
    /// offset, length, tail seq, tail hash.
    pub struct LoadFindingOne<'a> {
        pub sad_hash: &'a [u8],
        pub digest: &'a [u8],
    }

    impl QueryId for LoadFindingOne<'_> {
        type QueryId = LoadFindingOne<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl diesel::query_builder::Query for LoadFindingOne<'_> {
        type SqlType = (
            SadRowSql,
            Nullable<Integer>,
            Nullable<Integer>,
            Nullable<BigInt>,
            Nullable<Binary>,
        );
    }

    impl QueryFragment<Pg> for LoadFindingOne<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(SAD_ROW_COLUMNS);
            out.push_sql(", position(");
            out.push_bind_param::<Binary, _>(self.digest)?;
            out.push_sql(" IN d.digests), length(d.digests), tail.seq, tail.hash");
            out.push_sql(FROM_SAD_WITH_TAIL);
            out.push_bind_param::<Binary, _>(self.sad_hash)?;
            Ok(())
        }
    }

    impl<C> RunQueryDsl<C> for LoadFindingOne<'_> {}

    /// PostgreSQL only: `load_live`'s statement for a request of several digests (or a digest
    /// `LoadFindingOne` found only across two of the list's): the SAD with its token's
    /// revocation flag, its whole list, and the audit log's tail (the caller holds the write
    /// lock, so it stays the tail until the commit). Returns token_hash, user_id,
    /// credential_id, hash_algo, remaining, expires_at, used, revoked, digests, tail seq, tail
    /// hash.
    pub struct LoadListPg<'a> {
        pub sad_hash: &'a [u8],
    }

    impl QueryId for LoadListPg<'_> {
        type QueryId = LoadListPg<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl diesel::query_builder::Query for LoadListPg<'_> {
        type SqlType = (
            SadRowSql,
            Nullable<Binary>,
            Nullable<BigInt>,
            Nullable<Binary>,
        );
    }

    impl QueryFragment<Pg> for LoadListPg<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(SAD_ROW_COLUMNS);
            out.push_sql(", d.digests, tail.seq, tail.hash");
            out.push_sql(FROM_SAD_WITH_TAIL);
            out.push_bind_param::<Binary, _>(self.sad_hash)?;
            Ok(())
        }
    }

    impl<C> RunQueryDsl<C> for LoadListPg<'_> {}

    /// PostgreSQL only: `TakeDigests` and the audit record that goes with it, in one statement
    /// (a data-modifying CTE): the record is inserted only if the update took the row, so the
    /// rows affected are 1 for a spend and 0 for none. The record was chained to the tail the
    /// SAD check read under the same write lock.
    pub struct SpendRecordPg<'a> {
        pub take: TakeDigests<'a>,
        pub record: crate::store::repo::audit::Chained<'a>,
    }

    impl QueryId for SpendRecordPg<'_> {
        type QueryId = SpendRecordPg<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryFragment<Pg> for SpendRecordPg<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            let r = &self.record;
            out.push_sql("WITH taken AS (");
            self.take.walk_ast(out.reborrow())?;
            out.push_sql(
                " RETURNING 1) INSERT INTO audit_log (seq, at, actor, action, credential_id, \
                 outcome, detail, prev_hash, hash) SELECT ",
            );
            out.push_bind_param::<BigInt, _>(&r.seq)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&r.at)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(r.actor)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(r.action)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&r.credential_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(r.outcome)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&r.detail)?;
            out.push_sql(", ");
            out.push_bind_param::<Binary, _>(&r.prev_hash)?;
            out.push_sql(", ");
            out.push_bind_param::<Binary, _>(&r.hash)?;
            out.push_sql(" FROM taken");
            Ok(())
        }
    }

    impl<C> RunQueryDsl<C> for SpendRecordPg<'_> {}
}
