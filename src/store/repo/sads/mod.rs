//! SADs (signature activation data) from `credentials/authorize`: stored only as a hash, bound
//! to the token that asked for it, its user, its credential, its digest algorithm and the exact
//! digests authorized. Spending is one immediate transaction of conditional updates, so two
//! concurrent `signHash` calls can never both spend the same digest or the last signature.

mod hot;
mod live;
#[cfg(test)]
pub(crate) mod tests;

use diesel::prelude::*;

use super::audit::{self, Event};
use crate::clock::Clock;
use crate::store::models::NewSad;
use crate::store::schema::{sad_digests, sads};
use crate::store::{DbConn, StoreError, on_backend};

use live::{Digests, Judged, LiveSad, load_live, load_live_finding, load_live_listed};

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
