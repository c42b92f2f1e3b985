-- The review queue that teaches: an acquisition score per prediction and the queue's sort key, kept in
-- the row so the grid pages through an index. The formulas are those of
-- services/common/domain/acquisition.py, written once more here so a late outlier score or a change of
-- weights re-ranks the queue inside the database (a test holds the two equal).

-- Each deployment's queue settings (schemas.api.deployments.ReviewQueueSettings, all its fields).
ALTER TABLE deployments ADD COLUMN review_queue jsonb NOT NULL DEFAULT
    '{"uncertainty_weight": 1.0, "outlier_weight": 1.0, "disagreement_weight": 1.0,
      "detection_band": 0.1, "audit_fraction": 0.05}'
    CHECK (jsonb_typeof(review_queue) = 'object');

ALTER TABLE predicted_assets
    ADD COLUMN uncertainty double precision CHECK (uncertainty BETWEEN 0.0 AND 1.0),
    ADD COLUMN disagreement double precision CHECK (disagreement BETWEEN 0.0 AND 1.0),
    ADD COLUMN image_dhash text CHECK (image_dhash ~ '^[0-9a-f]{16}$'),
    ADD COLUMN acquisition_score double precision,
    ADD COLUMN queue_key double precision;

-- audit_draw(id): the first 32 bits of md5 of the id's text, in [0, 1).
CREATE FUNCTION cvloop_audit_draw(id uuid) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ('x' || substr(md5(id::text), 1, 8))::bit(32)::bigint / 4294967296.0 $$;

-- The weighted mean of the components present; NULL when none is.
CREATE FUNCTION cvloop_acquisition_score(
    u double precision, o double precision, d double precision, settings jsonb
) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (COALESCE(wu * u, 0) + COALESCE(wo * o, 0) + COALESCE(wd * d, 0))
        / NULLIF(CASE WHEN u IS NULL THEN 0 ELSE wu END + CASE WHEN o IS NULL THEN 0 ELSE wo END
                 + CASE WHEN d IS NULL THEN 0 ELSE wd END, 0)
    FROM (SELECT (settings->>'uncertainty_weight')::float8 AS wu, (settings->>'outlier_weight')::float8 AS wo,
                 (settings->>'disagreement_weight')::float8 AS wd) AS w $$;

-- The audit slice's key is its draw spread over [0, 1); the others' their acquisition score.
CREATE FUNCTION cvloop_queue_key(id uuid, score double precision, settings jsonb)
    RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cvloop_audit_draw(id) < f THEN cvloop_audit_draw(id) / f ELSE score END
    FROM (SELECT (settings->>'audit_fraction')::float8 AS f) AS s $$;

CREATE FUNCTION predicted_assets_rank() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    settings jsonb;
BEGIN
    SELECT review_queue INTO settings FROM deployments WHERE id = NEW.deployment_id;
    NEW.acquisition_score := cvloop_acquisition_score(NEW.uncertainty, NEW.outlier_score, NEW.disagreement,
                                                      settings);
    NEW.queue_key := cvloop_queue_key(NEW.prediction_id, NEW.acquisition_score, settings);
    RETURN NEW;
END
$$;

-- After predicted_assets_take_score (triggers fire by name), so a score that came first counts.
CREATE TRIGGER predicted_assets_zz_rank
    BEFORE INSERT OR UPDATE OF outlier_score, uncertainty, disagreement ON predicted_assets
    FOR EACH ROW EXECUTE FUNCTION predicted_assets_rank();

-- Predictions recorded before: ranked by what they have (their outlier score).
UPDATE predicted_assets SET outlier_score = outlier_score;

CREATE INDEX predicted_assets_queue ON predicted_assets (deployment_id, status, queue_key DESC NULLS LAST,
    prediction_id);
-- Near-duplicates of one image, found per queue row.
CREATE INDEX predicted_assets_dhash ON predicted_assets (deployment_id, image_dhash, status)
    WHERE image_dhash IS NOT NULL;
