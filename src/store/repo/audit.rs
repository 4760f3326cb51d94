//! The audit trail: append-only records chained by hash. `append` runs inside the caller's
//! transaction, so a record exists exactly when its state change does. `verify` recomputes the
//! chain and names the first record that does not fit.

use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::schema::audit_log;
use crate::store::{DbConn, StoreError, on_backend};

/// What happened (secrets never go in here: digests, algorithms, ids and outcomes only).
#[derive(Debug, Clone)]
pub struct Event {
    pub at: i64,
    /// The user id, or `operator` for CLI actions.
    pub actor: String,
    pub action: &'static str,
    pub credential_id: Option<String>,
    pub outcome: &'static str,
    pub detail: serde_json::Value,
}

/// One stored record.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_log)]
pub struct Record {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub credential_id: Option<String>,
    pub outcome: String,
    pub detail: String,
    #[serde(serialize_with = "hex_bytes")]
    pub prev_hash: Vec<u8>,
    #[serde(serialize_with = "hex_bytes")]
    pub hash: Vec<u8>,
}

fn hex_bytes<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(b))
}

/// SHA-256 over the previous hash and every field, each length-prefixed.
/// `fields`: actor, action, credential id ("\0" when none), outcome, detail.
fn chain_hash(prev: &[u8], seq: i64, at: i64, fields: [&str; 5]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    for field in fields {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().to_vec()
}

/// The newest record's `seq` and `hash` (`None`: the log is empty).
pub type Tail = Option<(i64, Vec<u8>)>;

/// Append an event (call inside the transaction that makes the state change).
pub fn append(conn: &mut DbConn, e: &Event) -> Result<(), StoreError> {
    // `seq = (SELECT MAX(seq) …)`, not `ORDER BY seq DESC LIMIT ?`: SQLite re-prepares a
    // statement whose LIMIT is a bound parameter every time it is bound again, and this runs
    // in every audited transaction.
    let newest = diesel::alias!(audit_log as newest);
    let last: Tail = on_backend!(&mut *conn, |c| audit_log::table
        .filter(
            audit_log::seq.nullable().eq(newest
                .select(diesel::dsl::max(newest.field(audit_log::seq)))
                .single_value()),
        )
        .select((audit_log::seq, audit_log::hash))
        .get_result(c)
        .optional())?;
    let r = Chained::after(e, last);
    let record = (
        audit_log::seq.eq(r.seq),
        audit_log::at.eq(r.at),
        audit_log::actor.eq(r.actor),
        audit_log::action.eq(r.action),
        audit_log::credential_id.eq(r.credential_id),
        audit_log::outcome.eq(r.outcome),
        audit_log::detail.eq(&r.detail),
        audit_log::prev_hash.eq(&r.prev_hash),
        audit_log::hash.eq(&r.hash),
    );
    on_backend!(conn, |c| diesel::insert_into(audit_log::table)
        .values(record)
        .execute(c))?;
    Ok(())
}

/// A record ready to go after a given tail: its place in the chain and its hash.
pub struct Chained<'a> {
    pub seq: i64,
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub credential_id: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl<'a> Chained<'a> {
    /// `e` as the record after `last`.
    pub fn after(e: &'a Event, last: Tail) -> Self {
        let (seq, prev_hash) = match last {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, vec![0u8; 32]),
        };
        let detail = e.detail.to_string();
        let hash = chain_hash(
            &prev_hash,
            seq,
            e.at,
            [
                &e.actor,
                e.action,
                e.credential_id.as_deref().unwrap_or("\u{0}"),
                e.outcome,
                &detail,
            ],
        );
        Chained {
            seq,
            at: e.at,
            actor: &e.actor,
            action: e.action,
            credential_id: e.credential_id.as_deref(),
            outcome: e.outcome,
            detail,
            prev_hash,
            hash,
        }
    }
}

/// Append in a transaction of its own (events with no other state change).
pub fn append_alone(conn: &mut DbConn, e: &Event) -> Result<(), StoreError> {
    conn.write_tx(|c| append(c, e))
}

/// The outcome of checking the chain.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub records: u64,
    /// The first record whose hash, link or sequence number is wrong.
    pub first_broken: Option<i64>,
    /// The newest record of an unbroken chain: kept outside the database, it is an anchor that
    /// a later check holds the chain to (`anchored`), which catches what the chain alone
    /// cannot: records deleted from its end, or the whole chain written anew.
    pub head: Option<Anchor>,
}

/// A record's place and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anchor {
    pub seq: i64,
    #[serde(serialize_with = "hex_bytes")]
    pub hash: Vec<u8>,
}

impl std::str::FromStr for Anchor {
    type Err = String;

    /// `SEQ:HASH` (hex), as `quill audit verify` prints its head.
    fn from_str(s: &str) -> Result<Anchor, String> {
        let bad =
            || format!("an anchor is SEQ:HASH (a record number and its 64-hex hash), not {s:?}");
        let (seq, hash) = s.split_once(':').ok_or_else(bad)?;
        let seq = seq.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(bad)?;
        let hash = hex::decode(hash)
            .ok()
            .filter(|h| h.len() == 32)
            .ok_or_else(bad)?;
        Ok(Anchor { seq, hash })
    }
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, hex::encode(&self.hash))
    }
}

/// Whether the chain still holds `anchor`'s record as it was. With the chain verified, that
/// record and every one before it are as they were when the anchor was taken.
pub fn anchored(conn: &mut DbConn, anchor: &Anchor) -> Result<bool, StoreError> {
    let hash: Option<Vec<u8>> = audit_log::table
        .find(anchor.seq)
        .select(audit_log::hash)
        .get_result(conn)
        .optional()?;
    Ok(hash.as_deref() == Some(anchor.hash.as_slice()))
}

pub fn verify(conn: &mut DbConn) -> Result<Verification, StoreError> {
    let rows: Vec<Record> = audit_log::table
        .order(audit_log::seq.asc())
        .select(Record::as_select())
        .load(conn)?;
    let mut prev = vec![0u8; 32];
    for (expected_seq, (n, r)) in (1..).zip(rows.iter().enumerate()) {
        let recomputed = chain_hash(
            &prev,
            r.seq,
            r.at,
            [
                &r.actor,
                &r.action,
                r.credential_id.as_deref().unwrap_or("\u{0}"),
                &r.outcome,
                &r.detail,
            ],
        );
        // No credential hashes as "\0", so a record whose id *is* "\0" (Quill writes only
        // 32-hex ids) can only be a NULL edited in place: the hash alone would not tell.
        let ambiguous = r.credential_id.as_deref() == Some("\u{0}");
        if r.seq != expected_seq || r.prev_hash != prev || r.hash != recomputed || ambiguous {
            return Ok(Verification {
                records: n as u64,
                first_broken: Some(r.seq),
                head: None,
            });
        }
        prev = r.hash.clone();
    }
    Ok(Verification {
        records: rows.len() as u64,
        first_broken: None,
        head: rows.last().map(|r| Anchor {
            seq: r.seq,
            hash: r.hash.clone(),
        }),
    })
}

/// Records at or after `since` (Unix seconds), oldest first.
pub fn since(conn: &mut DbConn, since: i64) -> Result<Vec<Record>, StoreError> {
    Ok(audit_log::table
        .filter(audit_log::at.ge(since))
        .order(audit_log::seq.asc())
        .select(Record::as_select())
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;

    fn ev(n: i64) -> Event {
        Event {
            at: n,
            actor: "u1".into(),
            action: "login",
            credential_id: None,
            outcome: "ok",
            detail: serde_json::json!({"n": n}),
        }
    }

    /// A record with a long list of hashes (a signHash of 100) reads back whole and chains. On
    /// PostgreSQL such details are stored out of line without a compression attempt
    /// (`EXTERNAL`, as SADs' digest lists): they never compress, and the attempt cost 0.07–0.1
    /// ms per 7 kB record.
    #[test]
    fn hash_lists_are_stored_whole_without_compression_attempts() {
        let (_d, store) = temp_store();
        let hashes: Vec<String> = (0..100u32)
            .map(|i| hex::encode(Sha256::digest(i.to_be_bytes())))
            .collect();
        let mut big = ev(2);
        big.detail = serde_json::json!({ "hashes": hashes });
        store.with(|c| append(c, &ev(1))).unwrap();
        store.with(|c| append(c, &big)).unwrap();
        let records = store.with(|c| since(c, 0)).unwrap();
        let detail: serde_json::Value = serde_json::from_str(&records[1].detail).unwrap();
        assert_eq!(detail, big.detail);
        assert!(records[1].detail.len() > 6400);
        let chain = store.with(verify).unwrap();
        assert_eq!((chain.records, chain.first_broken), (2, None));
        let storage = store
            .with(|c| {
                let DbConn::Pg(pg) = c else {
                    return Ok(None);
                };
                #[derive(QueryableByName)]
                struct Storage {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    s: String,
                }
                let rows = diesel::sql_query(
                    "SELECT c.relname || '.' || a.attname || '=' || a.attstorage::text AS s \
                     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                     WHERE (c.relname, a.attname) IN (('audit_log', 'detail'), \
                     ('sad_digests', 'digests'), ('audit_log', 'actor')) ORDER BY 1",
                )
                .load::<Storage>(pg)?;
                Ok(Some(rows.into_iter().map(|r| r.s).collect::<Vec<_>>()))
            })
            .unwrap();
        if let Some(storage) = storage {
            assert_eq!(
                storage,
                [
                    "audit_log.actor=x",
                    "audit_log.detail=e",
                    "sad_digests.digests=e"
                ]
            );
        }
    }

    /// SQLite: records written while `seq` was `BIGINT PRIMARY KEY` (its own unique index)
    /// come through the migration that makes it the rowid, and the chain still verifies.
    #[test]
    fn the_rowid_migration_keeps_the_chain() {
        use crate::store::{SQLITE_MIGRATIONS, Store};
        use diesel::connection::SimpleConnection;
        use diesel_migrations::MigrationHarness;
        if crate::store::tests::test_pg_url().is_some() {
            return; // SQLite only
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let path = path.to_str().unwrap();
        let indexes = |c: &mut diesel::SqliteConnection| -> Vec<String> {
            #[derive(QueryableByName)]
            struct Index {
                #[diesel(sql_type = diesel::sql_types::Text)]
                name: String,
            }
            diesel::sql_query("SELECT name FROM pragma_index_list('audit_log') ORDER BY name")
                .load::<Index>(c)
                .unwrap()
                .into_iter()
                .map(|i| i.name)
                .collect()
        };
        {
            let mut c = diesel::SqliteConnection::establish(path).unwrap();
            c.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
            // Back to before the rowid migration (and any that came after it).
            loop {
                let reverted = c.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
                if reverted
                    .to_string()
                    .replace('-', "")
                    .starts_with("20261126")
                {
                    break;
                }
            }
            assert_eq!(
                indexes(&mut c),
                ["audit_log_at", "sqlite_autoindex_audit_log_1"],
                "the old schema"
            );
            let mut conn = DbConn::Sqlite(c);
            for n in 1..=4 {
                append_alone(&mut conn, &ev(n)).unwrap();
            }
        }
        let store = Store::open(path, 2).unwrap();
        store.with(|c| append_alone(c, &ev(5))).unwrap();
        let checked = store.with(verify).unwrap();
        assert_eq!(checked.records, 5);
        assert_eq!(checked.first_broken, None);
        let mut c = diesel::SqliteConnection::establish(path).unwrap();
        assert_eq!(indexes(&mut c), ["audit_log_at"], "seq is the rowid now");
        c.batch_execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
            .unwrap();
        assert_eq!(store.with(verify).unwrap().first_broken, Some(2));
    }

    #[test]
    fn chain_verifies_and_detects_edits_and_deletions() {
        let (_d, store) = temp_store();
        for n in 1..=5 {
            store.with(|c| append_alone(c, &ev(n))).unwrap();
        }
        let ok = store.with(verify).unwrap();
        let head = ok.head.clone().unwrap();
        assert_eq!((ok.records, ok.first_broken, head.seq), (5, None, 5));
        // The head, as printed, is an anchor that holds while the chain grows...
        let anchor: Anchor = head.to_string().parse().unwrap();
        assert_eq!(anchor, head);
        store.with(|c| append_alone(c, &ev(6))).unwrap();
        assert!(store.with(|c| anchored(c, &anchor)).unwrap());
        // ... and catches what the chain alone cannot: its end cut off (the rest verifies).
        store
            .with(|c| {
                diesel::delete(audit_log::table.filter(audit_log::seq.ge(5_i64))).execute(c)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.with(verify).unwrap().first_broken, None);
        assert!(!store.with(|c| anchored(c, &anchor)).unwrap());
        for bad in ["5", "0:00", "x:ab", &format!("5:{}", "ab".repeat(31))] {
            assert!(bad.parse::<Anchor>().is_err(), "{bad}");
        }
        let (_d, store) = temp_store();
        for n in 1..=5 {
            store.with(|c| append_alone(c, &ev(n))).unwrap();
        }
        assert_eq!(store.with(|c| since(c, 3)).unwrap().len(), 3);
        store
            .with(|c| {
                diesel::update(audit_log::table.find(3_i64))
                    .set(audit_log::outcome.eq("error"))
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.with(verify).unwrap().first_broken, Some(3));
        // A missing credential id turned into "\0" (what the hash writes for none) is caught
        // (SQLite; PostgreSQL text cannot hold a NUL at all).
        let (_d, store) = temp_store();
        for n in 1..=3 {
            store.with(|c| append_alone(c, &ev(n))).unwrap();
        }
        let edited = store.with(|c| {
            diesel::update(audit_log::table.find(2_i64))
                .set(audit_log::credential_id.eq(Some("\u{0}")))
                .execute(c)?;
            Ok(())
        });
        if edited.is_ok() {
            assert_eq!(store.with(verify).unwrap().first_broken, Some(2));
        }
        let (_d, store) = temp_store();
        for n in 1..=3 {
            store.with(|c| append_alone(c, &ev(n))).unwrap();
        }
        store
            .with(|c| {
                diesel::delete(audit_log::table.find(2_i64)).execute(c)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.with(verify).unwrap().first_broken, Some(3));
    }
}
