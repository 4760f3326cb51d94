CREATE INDEX credentials_user_id ON credentials(user_id);
