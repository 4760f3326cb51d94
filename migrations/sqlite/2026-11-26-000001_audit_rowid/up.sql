-- `seq BIGINT PRIMARY KEY` is not SQLite's rowid, so every audit record also went into a
-- separate unique index on seq: one more page written on each signHash commit, and the chain's
-- tail (MAX(seq)) looked up through that index. As INTEGER PRIMARY KEY, seq is the rowid.
-- Same columns, same records, same chain.
CREATE TABLE audit_log_rowid (
    seq INTEGER PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    credential_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_log_rowid (seq, at, actor, action, credential_id, outcome, detail, prev_hash, hash)
    SELECT seq, at, actor, action, credential_id, outcome, detail, prev_hash, hash FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_rowid RENAME TO audit_log;
CREATE INDEX audit_log_at ON audit_log(at);
