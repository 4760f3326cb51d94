CREATE TABLE sad_hashes (
    sad_hash BLOB NOT NULL REFERENCES sads(sad_hash) ON DELETE CASCADE,
    digest BLOB NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (sad_hash, digest)
);
WITH RECURSIVE split(sad_hash, digests, used, n, i) AS (
    SELECT d.sad_hash, d.digests, s.used, length(s.used), 0
    FROM sad_digests d JOIN sads s ON s.sad_hash = d.sad_hash
    WHERE length(s.used) > 0
    UNION ALL
    SELECT sad_hash, digests, used, n, i + 1 FROM split WHERE i + 1 < n
)
INSERT INTO sad_hashes (sad_hash, digest, used)
    SELECT sad_hash,
           substr(digests, i * (length(digests) / n) + 1, length(digests) / n),
           substr(used, i + 1, 1) = x'01'
    FROM split;
DROP TABLE sad_digests;
ALTER TABLE sads DROP COLUMN used;
