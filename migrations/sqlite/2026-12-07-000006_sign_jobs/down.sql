DROP TABLE sign_jobs;
