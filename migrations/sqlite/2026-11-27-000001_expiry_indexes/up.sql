-- The purge (store::repo::purge) finds expired SADs and access tokens by expiry.
CREATE INDEX sads_expires_at ON sads(expires_at);
CREATE INDEX access_tokens_expires_at ON access_tokens(expires_at);
