-- Online OTP codes are sealed by the token (AES-GCM under its sealing key, bound to the
-- credential) instead of hashed: six digits under an unkeyed hash were recovered from a copy of
-- the database in a third of a second. Pending codes cannot be converted; they are dropped
-- (the signer asks for a new one).
DELETE FROM otp_challenges;
ALTER TABLE otp_challenges RENAME COLUMN code_hash TO code_sealed;
