ALTER TABLE oauth_requests DROP COLUMN signer_id;
