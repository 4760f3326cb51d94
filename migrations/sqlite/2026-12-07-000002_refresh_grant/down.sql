DROP INDEX oauth_refresh_tokens_grant;
ALTER TABLE oauth_refresh_tokens DROP COLUMN grant_hash;
