//! The UPDATE of every signHash as a statement diesel keeps prepared. Diesel never caches its
//! own `UPDATE` (a changeset's SQL may vary with its values), so the hot path would parse it
//! again on every call; this one has fixed SQL and a static query id, so the statement cache
//! finds it by type. Same SQL on SQLite and PostgreSQL (placeholders are diesel's), and on
//! PostgreSQL together with the audit record in one statement (`SpendRecordPg`), after a SAD
//! check that also read the audit log's tail (`LoadFindingOne`, `LoadListPg`).

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
    DB: Backend + diesel::sql_types::HasSqlType<Binary> + diesel::sql_types::HasSqlType<Integer>,
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
