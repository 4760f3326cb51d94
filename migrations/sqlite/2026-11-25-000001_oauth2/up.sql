-- OAuth 2.0 authorization server (CSC §8 / issue 9). Secrets are stored only as SHA-256 hashes
-- of high-entropy random values (client secrets, request handles, codes, tokens).

-- 'service' tokens use the API; 'credential' tokens (from scope=credential) only sign, as a SAD.
ALTER TABLE access_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'service';

CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    -- NULL for a public client (PKCE only).
    secret_hash BLOB,
    name TEXT NOT NULL,
    -- JSON array of exact redirect URIs.
    redirect_uris TEXT NOT NULL,
    -- The user a client_credentials grant acts as (NULL: the grant is refused for this client).
    service_user_id TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL
);

-- Authorization requests waiting for the signer: from GET oauth2/authorize or PAR.
CREATE TABLE oauth_requests (
    handle_hash BLOB PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    -- JSON: the validated request (scope, redirect_uri, state, PKCE challenge, credential, digests …).
    params TEXT NOT NULL,
    -- SHA-256 of the page's CSRF token; NULL until the page was shown.
    csrf_hash BLOB,
    pushed BOOLEAN NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE oauth_codes (
    code_hash BLOB PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id),
    params TEXT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    -- The access token the code was exchanged for: revoked if the code is presented again.
    token_hash BLOB,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE oauth_refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id),
    -- The access token issued with it (revoked with it).
    access_token_hash BLOB NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
