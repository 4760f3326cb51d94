-- Online OTP (SMS / e-mail): the current challenge per credential, stored only as a hash, with
-- an expiry and a number of tries left.
CREATE TABLE otp_challenges (
    credential_id TEXT PRIMARY KEY NOT NULL REFERENCES credentials(id),
    code_hash BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    tries_left INTEGER NOT NULL
);
