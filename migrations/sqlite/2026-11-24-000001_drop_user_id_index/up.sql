-- credentials_user_order (user_id, created_at, id) serves every lookup by user_id, so the
-- single-column index is redundant: one index less to maintain per inserted credential (the
-- scale test inserts a million) and one less candidate for the planner.
DROP INDEX credentials_user_id;
