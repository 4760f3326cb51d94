-- Quill's first schema (PostgreSQL). Times are Unix seconds; secrets are stored only as hashes
-- (argon2 for passwords and PINs, SHA-256 for high-entropy random tokens and SADs) or sealed by a
-- token-resident AES key (TOTP secrets).

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE credentials (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    key_id BYTEA NOT NULL UNIQUE,
    key_type TEXT NOT NULL,
    key_bits INTEGER NOT NULL,
    cert_chain BYTEA NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    pin_hash TEXT NOT NULL,
    otp_kind TEXT NOT NULL,
    otp_secret BYTEA,
    status TEXT NOT NULL DEFAULT 'enabled',
    multisign INTEGER NOT NULL,
    description TEXT,
    failed_auths INTEGER NOT NULL DEFAULT 0,
    last_otp_step BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX credentials_user_id ON credentials(user_id);

CREATE TABLE access_tokens (
    token_hash BYTEA PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_user_id ON access_tokens(user_id);

CREATE TABLE sads (
    sad_hash BYTEA PRIMARY KEY NOT NULL,
    token_hash BYTEA NOT NULL REFERENCES access_tokens(token_hash),
    user_id TEXT NOT NULL REFERENCES users(id),
    credential_id TEXT NOT NULL REFERENCES credentials(id),
    hash_algo TEXT NOT NULL,
    remaining INTEGER NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sads_token_hash ON sads(token_hash);

CREATE TABLE sad_hashes (
    sad_hash BYTEA NOT NULL REFERENCES sads(sad_hash) ON DELETE CASCADE,
    digest BYTEA NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (sad_hash, digest)
);
