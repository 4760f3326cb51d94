-- A login lock lifts --login-lock-secs after the last failed attempt (a lockout anyone who
-- knows a user name could set, for good, with five wrong passwords): when the last attempt
-- was reserved. NULL (never, or locked before this migration): the lock has lifted.
ALTER TABLE users ADD COLUMN last_login_failure BIGINT;
