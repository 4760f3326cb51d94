-- The authorization page of an online-OTP credential asks for the password first and sends the
-- code only then (opening the page sends nothing): the signer the password proved, once it has.
-- NULL: nobody has logged in on this page yet. Older instances never set it.
ALTER TABLE oauth_requests ADD COLUMN signer_id TEXT;
