-- An asynchronous call's answer is kept sealed (AES-256-GCM under a key derived from its
-- responseID, which only the caller holds; service::sign_jobs::seal): a copy of the database
-- reads neither the signed documents nor the signatures. NULL while the call runs. `result`
-- stays for answers an older instance wrote in clear (they expire within the hour).
ALTER TABLE sign_jobs ADD COLUMN sealed_result BLOB;
