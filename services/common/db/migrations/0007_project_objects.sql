-- Objects belong to projects. The store is content-addressed (the same bytes are stored once), so who
-- may reference an object is recorded here: a project's uploads, and what the platform wrote for it
-- (served images, job outputs, references). A project referencing an object it has no row for is
-- answered as if the object did not exist; presigned URLs are issued only for a project's own objects.
CREATE TABLE project_objects (
    project_id  uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    object_key  text NOT NULL CHECK (length(object_key) BETWEEN 1 AND 1024),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, object_key)
);

-- What projects reference already is theirs.
INSERT INTO project_objects (project_id, object_key)
SELECT project_id, object_key FROM assets
UNION SELECT project_id, object_key FROM model_files
UNION SELECT project_id, object_key FROM experiment_artifacts
UNION SELECT project_id, image_object_key FROM predicted_assets
UNION SELECT project_id, object_key FROM training_references
ON CONFLICT DO NOTHING;
