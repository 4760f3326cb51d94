-- credentials/list pages through a user's credentials oldest first: (user_id, created_at, id)
-- serves both the filter and the order, also with a million rows.
CREATE INDEX credentials_user_order ON credentials(user_id, created_at, id);
