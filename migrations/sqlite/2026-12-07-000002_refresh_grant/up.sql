-- The authorization code a refresh token's grant began with (carried over on every rotation),
-- so that a code presented twice revokes every token of its grant (RFC 6749 §4.1.2), rotated
-- ones included. NULL for grants without a code and for tokens issued before this column.
ALTER TABLE oauth_refresh_tokens ADD COLUMN grant_hash BLOB;
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_hash);
