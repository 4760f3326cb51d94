-- A SAD's digests move from a row each (sad_hashes) to one row per SAD: sad_digests holds them
-- concatenated, and sads.used one byte per digest in the same order (1 once signed). A signHash
-- of n digests then reads two rows and writes one, instead of n index seeks and n row writes.
-- Live SADs come along: the digests in one fixed order, their used flags in the same order.
ALTER TABLE sads ADD COLUMN used BLOB NOT NULL DEFAULT x'';
CREATE TABLE sad_digests (
    sad_hash BLOB PRIMARY KEY NOT NULL REFERENCES sads(sad_hash) ON DELETE CASCADE,
    digests BLOB NOT NULL
);
CREATE TEMP TABLE moved_sad_digests AS
    SELECT sad_hash,
           CAST(group_concat(digest, '') AS BLOB) AS digests,
           CAST(group_concat(CASE WHEN used THEN x'01' ELSE x'00' END, '') AS BLOB) AS used
    FROM (SELECT sad_hash, digest, used FROM sad_hashes ORDER BY sad_hash, digest)
    GROUP BY sad_hash;
INSERT INTO sad_digests (sad_hash, digests) SELECT sad_hash, digests FROM moved_sad_digests;
UPDATE sads SET used = (SELECT m.used FROM moved_sad_digests m WHERE m.sad_hash = sads.sad_hash)
    WHERE sad_hash IN (SELECT sad_hash FROM moved_sad_digests);
DROP TABLE moved_sad_digests;
DROP TABLE sad_hashes;
