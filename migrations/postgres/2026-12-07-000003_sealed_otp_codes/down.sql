DELETE FROM otp_challenges;
ALTER TABLE otp_challenges RENAME COLUMN code_sealed TO code_hash;
