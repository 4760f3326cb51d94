-- A SAD's digests move from a row each (sad_hashes) to one row per SAD: sad_digests holds them
-- concatenated, and sads.used one byte per digest in the same order (1 once signed). A signHash
-- of n digests then reads two rows and writes one, instead of n index seeks and n row writes.
-- Live SADs come along: the digests in one fixed order, their used flags in the same order.
ALTER TABLE sads ADD COLUMN used BYTEA NOT NULL DEFAULT '\x'::bytea;
CREATE TABLE sad_digests (
    sad_hash BYTEA PRIMARY KEY NOT NULL REFERENCES sads(sad_hash) ON DELETE CASCADE,
    digests BYTEA NOT NULL
);
-- Random bytes do not compress: store long lists out of line without trying.
ALTER TABLE sad_digests ALTER COLUMN digests SET STORAGE EXTERNAL;
CREATE TEMP TABLE moved_sad_digests AS
    SELECT sad_hash,
           string_agg(digest, ''::bytea ORDER BY digest) AS digests,
           string_agg(CASE WHEN used THEN '\x01'::bytea ELSE '\x00'::bytea END, ''::bytea
                      ORDER BY digest) AS used
    FROM sad_hashes
    GROUP BY sad_hash;
INSERT INTO sad_digests (sad_hash, digests) SELECT sad_hash, digests FROM moved_sad_digests;
UPDATE sads SET used = m.used FROM moved_sad_digests m WHERE m.sad_hash = sads.sad_hash;
DROP TABLE moved_sad_digests;
DROP TABLE sad_hashes;
