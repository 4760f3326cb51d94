//! Loading and judging a live SAD, inside the spend's or the extension's write transaction: its
//! row with its token's revocation and its credential's state in one statement, checked in one
//! place (`judge`), and where the wanted digests are in its list (`Digests`).

use diesel::prelude::*;

use super::{SadRefusal, Spend, TxError, hot};
use crate::store::repo::audit;
use crate::store::schema::{access_tokens, credentials, sad_digests, sads};
use crate::store::{DbConn, on_backend};

/// A SAD's digests as stored: `all` holds them concatenated (each `width` bytes) in the order
/// they were authorized, `used` one byte per digest in the same order, 1 once it was signed.
/// A spend reads both (the SAD's row and its `sad_digests` row; on PostgreSQL one of a single
/// digest finds it in the server instead, `load_live_finding`) and writes `used` back, one row,
/// however many digests it signs.
#[derive(Debug)]
pub(super) struct Digests {
    pub(super) all: Vec<u8>,
    pub(super) used: Vec<u8>,
}

impl Digests {
    fn width(&self) -> usize {
        self.all.len().checked_div(self.used.len()).unwrap_or(0)
    }

    pub(super) fn each(&self) -> impl Iterator<Item = &[u8]> {
        // `max(1)`: a SAD without digests has nothing to iterate (and chunks need a width).
        self.all
            .chunks_exact(self.width().max(1))
            .take(self.used.len())
    }

    /// Where each of `wanted` is, in its order; `None` for a digest the SAD never authorized.
    /// A few are looked for one by one; many through an index of the SAD's digests, hashed
    /// with foldhash (seeded per process; SipHash took a 100-digest spend ~50 µs).
    pub(super) fn positions(&self, wanted: &[Vec<u8>]) -> Vec<Option<usize>> {
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
pub(super) struct LiveSad {
    pub(super) token_hash: Vec<u8>,
    pub(super) hash_algo: String,
    pub(super) remaining: i32,
    pub(super) digests: Digests,
}

/// Who may use a SAD, and when: what `judge` checks a SAD's row against.
pub(super) struct Judged<'a> {
    pub(super) user: &'a str,
    pub(super) credential: &'a str,
    pub(super) now: i64,
    pub(super) max_failures: i32,
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
pub(super) fn load_live(
    c: &mut DbConn,
    sad_hash: &[u8],
    by: &Judged<'_>,
) -> Result<LiveSad, TxError> {
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
pub(super) fn load_live_finding(
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
pub(super) fn load_live_listed(
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
