CREATE TABLE audit_log_bigint (
    seq BIGINT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    credential_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_log_bigint (seq, at, actor, action, credential_id, outcome, detail, prev_hash, hash)
    SELECT seq, at, actor, action, credential_id, outcome, detail, prev_hash, hash FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_bigint RENAME TO audit_log;
CREATE INDEX audit_log_at ON audit_log(at);
