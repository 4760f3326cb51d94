CREATE TABLE sad_hashes (
    sad_hash BYTEA NOT NULL REFERENCES sads(sad_hash) ON DELETE CASCADE,
    digest BYTEA NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (sad_hash, digest)
);
INSERT INTO sad_hashes (sad_hash, digest, used)
    SELECT d.sad_hash,
           substring(d.digests FROM i * (length(d.digests) / length(s.used)) + 1
                     FOR length(d.digests) / length(s.used)),
           get_byte(s.used, i) = 1
    FROM sad_digests d
    JOIN sads s ON s.sad_hash = d.sad_hash
    CROSS JOIN LATERAL generate_series(0, length(s.used) - 1) AS i
    WHERE length(s.used) > 0;
DROP TABLE sad_digests;
ALTER TABLE sads DROP COLUMN used;
