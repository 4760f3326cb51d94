DROP INDEX access_tokens_expires_at;
DROP INDEX sads_expires_at;
