-- The scoring stream: training-data references, and outlier scores that may arrive before the
-- predicted asset they belong to.

-- A reference computed by a reference job run: the object holding the feature sample and the fitted
-- outlier model. The deployment points at the one in use (deployments.reference_id).
CREATE TABLE training_references (
    id                  uuid PRIMARY KEY,  -- derived from the job run: a replayed run stores nothing new
    project_id          uuid NOT NULL,
    deployment_id       uuid NOT NULL,
    dataset_version_id  uuid NOT NULL,
    job_run_id          uuid NOT NULL UNIQUE,
    object_key          text NOT NULL CHECK (length(object_key) BETWEEN 1 AND 1024),
    detector            text NOT NULL CHECK (length(detector) BETWEEN 1 AND 64),
    feature_names       text[] NOT NULL CHECK (cardinality(feature_names) > 0),
    training_size       integer NOT NULL CHECK (training_size > 1),
    sample_size         integer NOT NULL CHECK (sample_size > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),  -- when it became ready: scores start here
    FOREIGN KEY (deployment_id, project_id) REFERENCES deployments (id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (dataset_version_id, project_id) REFERENCES dataset_versions (id, project_id)
);
CREATE INDEX training_references_deployment ON training_references (deployment_id);

-- Scores by prediction id. Scoring and ingest's persistence read `predictions` in different consumer
-- groups, so a score can come before or after its predicted asset row. Both sides meet on this row:
-- the asset's insert upserts it (asset_recorded) and takes the score if there is one; scoring upserts
-- the score and, where the asset is recorded, writes it onto the asset. Two writers of one prediction id
-- conflict on the primary key, so the second waits for the first to commit and then sees its row: the
-- asset gets its score whichever comes first. The first score stored wins (a replay changes nothing).
CREATE TABLE prediction_scores (
    prediction_id   uuid PRIMARY KEY,
    project_id      uuid NOT NULL,
    deployment_id   uuid NOT NULL,
    reference_id    uuid,
    outlier_score   double precision CHECK (outlier_score BETWEEN 0.0 AND 1.0),
    asset_recorded  boolean NOT NULL DEFAULT false,
    scored_at       timestamptz,
    CHECK ((reference_id IS NULL) = (outlier_score IS NULL)),
    CHECK ((outlier_score IS NULL) = (scored_at IS NULL)),
    FOREIGN KEY (deployment_id, project_id) REFERENCES deployments (id, project_id) ON DELETE CASCADE
);

CREATE FUNCTION predicted_assets_take_score() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    score double precision;
BEGIN
    INSERT INTO prediction_scores (prediction_id, project_id, deployment_id, asset_recorded)
    VALUES (NEW.prediction_id, NEW.project_id, NEW.deployment_id, true)
    ON CONFLICT (prediction_id) DO UPDATE SET asset_recorded = true
    RETURNING outlier_score INTO score;
    NEW.outlier_score := COALESCE(NEW.outlier_score, score);
    RETURN NEW;
END
$$;

CREATE TRIGGER predicted_assets_take_score
    BEFORE INSERT ON predicted_assets
    FOR EACH ROW EXECUTE FUNCTION predicted_assets_take_score();
