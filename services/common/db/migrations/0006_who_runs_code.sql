-- Who may run code on the platform's machines, and who did: the API key that registered a processing,
-- that created a model version (whose training entrypoint or image a training runs), and that launched
-- each job run. NULL: the platform itself (a pipeline training, a reference job) or a row from before.
ALTER TABLE processings ADD COLUMN created_by_key_id UUID REFERENCES api_keys (id);
ALTER TABLE model_versions ADD COLUMN created_by_key_id UUID REFERENCES api_keys (id);
ALTER TABLE job_runs ADD COLUMN launched_by_key_id UUID REFERENCES api_keys (id);
