-- How serving calls a model version (schemas.model_io.ModelIO); NULL for versions that are not served.
ALTER TABLE model_versions ADD COLUMN io jsonb CHECK (io IS NULL OR jsonb_typeof(io) = 'object');
