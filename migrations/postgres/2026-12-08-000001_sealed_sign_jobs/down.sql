ALTER TABLE sign_jobs DROP COLUMN sealed_result;
