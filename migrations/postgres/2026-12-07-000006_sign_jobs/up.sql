-- Asynchronous signHash / signDoc (operationMode "A", CSC v2 §11.9/§11.10): a job per accepted
-- call, its result kept for signatures/signPolling until expires_at (the call's validity_period).
-- The responseID is stored only as its SHA-256, like every other handle.
CREATE TABLE sign_jobs (
    id_hash BYTEA PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    -- SHA-256 of the OAuth credential token the call was made with (it may poll that call
    -- only); NULL for a service token's call (any service token of the user may poll it).
    credential_token_hash BYTEA,
    -- The HTTP status of the finished call; NULL while it runs.
    status INTEGER,
    -- Its JSON answer (signatures, signed documents, or the CSC error); NULL while it runs.
    result TEXT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sign_jobs_user ON sign_jobs (user_id, credential_token_hash);
CREATE INDEX sign_jobs_expiry ON sign_jobs (expires_at);
