DROP TABLE sad_hashes;
DROP TABLE sads;
DROP TABLE access_tokens;
DROP TABLE credentials;
DROP TABLE users;
