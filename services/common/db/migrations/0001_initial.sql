-- cvloop's whole data model.
--
-- Every table that belongs to a project carries project_id, and a row that points at another
-- project-owned row does so through a composite key (id, project_id): the database itself refuses
-- a reference across projects. Enumerations are text with CHECK constraints (readable, cheap to
-- extend in a later migration).

-- Projects and API keys --------------------------------------------------------------------------

CREATE TABLE projects (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id    uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    key_hash      text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),  -- sha256 of the secret
    key_prefix    text NOT NULL,                                             -- shown to people
    scopes        text[] NOT NULL
                  CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'write', 'admin']),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_project ON api_keys (project_id);

-- Labelmaps, datasets, assets, annotations -------------------------------------------------------

CREATE TABLE labelmaps (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    labels      text[] NOT NULL CHECK (cardinality(labels) > 0),  -- position = class index
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name),
    UNIQUE (id, project_id)
);

CREATE TABLE datasets (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id   uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name),
    UNIQUE (id, project_id)
);

CREATE TABLE dataset_versions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id      uuid NOT NULL,
    dataset_id      uuid NOT NULL,
    version         text NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    description     text NOT NULL DEFAULT '',
    detection_type  text NOT NULL CHECK (detection_type IN ('classification', 'detection', 'segmentation')),
    labelmap_id     uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset_id, version),
    UNIQUE (id, project_id),
    FOREIGN KEY (dataset_id, project_id) REFERENCES datasets (id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (labelmap_id, project_id) REFERENCES labelmaps (id, project_id)
);

CREATE TABLE assets (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id          uuid NOT NULL,
    dataset_version_id  uuid NOT NULL,
    object_key          text NOT NULL CHECK (length(object_key) BETWEEN 1 AND 1024),
    sha256              text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    width               integer NOT NULL CHECK (width > 0),
    height              integer NOT NULL CHECK (height > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset_version_id, sha256),  -- an image appears once per version
    UNIQUE (id, project_id),
    FOREIGN KEY (dataset_version_id, project_id) REFERENCES dataset_versions (id, project_id)
        ON DELETE CASCADE
);

-- Models, experiments, files ---------------------------------------------------------------------

CREATE TABLE models (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id   uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name),
    UNIQUE (id, project_id)
);

CREATE TABLE model_versions (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id            uuid NOT NULL,
    model_id              uuid NOT NULL,
    version               text NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    description           text NOT NULL DEFAULT '',
    detection_type        text NOT NULL
                          CHECK (detection_type IN ('classification', 'detection', 'segmentation')),
    labelmap_id           uuid,
    training_parameters   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(training_parameters) = 'object'),
    training_entrypoint   text,
    training_image        text,
    source_experiment_id  uuid,  -- foreign key added below: experiments point back at model versions
    created_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_id, version),
    UNIQUE (id, project_id),
    FOREIGN KEY (model_id, project_id) REFERENCES models (id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (labelmap_id, project_id) REFERENCES labelmaps (id, project_id)
);

CREATE TABLE model_files (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id        uuid NOT NULL,
    model_version_id  uuid NOT NULL,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    object_key        text NOT NULL CHECK (length(object_key) BETWEEN 1 AND 1024),
    sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes        bigint NOT NULL CHECK (size_bytes >= 0),
    UNIQUE (model_version_id, name),
    FOREIGN KEY (model_version_id, project_id) REFERENCES model_versions (id, project_id) ON DELETE CASCADE
);

CREATE TABLE model_version_dataset_versions (
    project_id          uuid NOT NULL,
    model_version_id    uuid NOT NULL,
    alias               text NOT NULL CHECK (length(alias) BETWEEN 1 AND 64),  -- train, test, eval...
    dataset_version_id  uuid NOT NULL,
    PRIMARY KEY (model_version_id, alias),
    FOREIGN KEY (model_version_id, project_id) REFERENCES model_versions (id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (dataset_version_id, project_id) REFERENCES dataset_versions (id, project_id)
);

CREATE TABLE experiments (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id             uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    base_model_version_id  uuid,
    parameters             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(parameters) = 'object'),
    status                 text NOT NULL DEFAULT 'created'
                           CHECK (status IN ('created', 'running', 'succeeded', 'failed')),
    training_request_id    text UNIQUE,  -- the pipeline's deterministic request id: one experiment each
    created_at             timestamptz NOT NULL DEFAULT now(),
    finished_at            timestamptz,
    UNIQUE (project_id, name),
    UNIQUE (id, project_id),
    FOREIGN KEY (base_model_version_id, project_id) REFERENCES model_versions (id, project_id)
);

ALTER TABLE model_versions ADD FOREIGN KEY (source_experiment_id, project_id)
    REFERENCES experiments (id, project_id);

CREATE TABLE experiment_dataset_versions (
    project_id          uuid NOT NULL,
    experiment_id       uuid NOT NULL,
    alias               text NOT NULL CHECK (length(alias) BETWEEN 1 AND 64),
    dataset_version_id  uuid NOT NULL,
    PRIMARY KEY (experiment_id, alias),
    FOREIGN KEY (experiment_id, project_id) REFERENCES experiments (id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (dataset_version_id, project_id) REFERENCES dataset_versions (id, project_id)
);

CREATE TABLE experiment_artifacts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id     uuid NOT NULL,
    experiment_id  uuid NOT NULL,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    object_key     text NOT NULL CHECK (length(object_key) BETWEEN 1 AND 1024),
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes     bigint NOT NULL CHECK (size_bytes >= 0),
    UNIQUE (experiment_id, name),
    FOREIGN KEY (experiment_id, project_id) REFERENCES experiments (id, project_id) ON DELETE CASCADE
);

-- Deployments and their pipeline ----------------------------------------------------------------

CREATE TABLE deployments (
    id                           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id                   uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    name                         text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    kind                         text NOT NULL CHECK (kind IN ('served', 'monitoring_only')),
    detection_type               text NOT NULL
                                 CHECK (detection_type IN ('classification', 'detection', 'segmentation')),
    champion_model_version_id    uuid,
    shadow_model_version_id      uuid,
    confidence_threshold         double precision NOT NULL DEFAULT 0.0
                                 CHECK (confidence_threshold BETWEEN 0.0 AND 1.0),
    -- Training data: the dataset version the champion learnt from, and its outlier/drift reference.
    training_dataset_version_id  uuid,
    reference_status             text CHECK (reference_status IN ('computing', 'ready', 'failed')),
    reference_reason             text,
    reference_id                 uuid,
    -- Continuous training: which experiment to run once enough assets were submitted.
    ct_project_id                uuid REFERENCES projects,
    ct_parameters                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(ct_parameters) = 'object'),
    ct_trigger_threshold         integer CHECK (ct_trigger_threshold > 0),
    ct_active                    boolean NOT NULL DEFAULT false,
    -- Continuous deployment: what to do with the model version the experiment becomes.
    cd_policy                    text NOT NULL DEFAULT 'manual'
                                 CHECK (cd_policy IN ('deploy_champion', 'deploy_shadow', 'manual')),
    cd_active                    boolean NOT NULL DEFAULT false,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name),
    UNIQUE (id, project_id),
    FOREIGN KEY (champion_model_version_id, project_id) REFERENCES model_versions (id, project_id),
    FOREIGN KEY (shadow_model_version_id, project_id) REFERENCES model_versions (id, project_id),
    FOREIGN KEY (training_dataset_version_id, project_id) REFERENCES dataset_versions (id, project_id),
    CHECK (shadow_model_version_id IS NULL OR champion_model_version_id IS NOT NULL),
    CHECK (shadow_model_version_id IS DISTINCT FROM champion_model_version_id
           OR shadow_model_version_id IS NULL),
    CHECK (training_dataset_version_id IS NOT NULL OR reference_status IS NULL),
    CHECK ((reference_status IS NOT DISTINCT FROM 'failed') = (reference_reason IS NOT NULL)),
    CHECK (reference_id IS NULL OR reference_status = 'ready'),
    CHECK (NOT ct_active OR ct_trigger_threshold IS NOT NULL)
);

-- The feedback loop: dataset versions that reviewed predictions may be submitted to.
CREATE TABLE deployment_feedback_dataset_versions (
    project_id          uuid NOT NULL,
    deployment_id       uuid NOT NULL,
    dataset_version_id  uuid NOT NULL,
    PRIMARY KEY (deployment_id, dataset_version_id),
    FOREIGN KEY (deployment_id, project_id) REFERENCES deployments (id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (dataset_version_id, project_id) REFERENCES dataset_versions (id, project_id)
);

-- Dataset versions attached, with their aliases, to the experiment continuous training creates.
CREATE TABLE deployment_ct_dataset_versions (
    project_id          uuid NOT NULL,
    deployment_id       uuid NOT NULL,
    alias               text NOT NULL CHECK (length(alias) BETWEEN 1 AND 64),
    dataset_version_id  uuid NOT NULL,
    PRIMARY KEY (deployment_id, alias),
    FOREIGN KEY (deployment_id, project_id) REFERENCES deployments (id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (dataset_version_id, project_id) REFERENCES dataset_versions (id, project_id)
);

-- Predicted assets and their review --------------------------------------------------------------

CREATE TABLE predicted_assets (
    prediction_id                 uuid PRIMARY KEY,
    project_id                    uuid NOT NULL,
    deployment_id                 uuid NOT NULL,
    image_object_key              text NOT NULL CHECK (length(image_object_key) BETWEEN 1 AND 1024),
    image_sha256                  text NOT NULL CHECK (image_sha256 ~ '^[0-9a-f]{64}$'),
    width                         integer NOT NULL CHECK (width > 0),
    height                        integer NOT NULL CHECK (height > 0),
    source                        text NOT NULL CHECK (length(source) BETWEEN 1 AND 128),
    tags                          text[] NOT NULL DEFAULT '{}',
    metadata                      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    champion_prediction           jsonb NOT NULL CHECK (jsonb_typeof(champion_prediction) = 'object'),
    champion_latency_ms           double precision NOT NULL CHECK (champion_latency_ms >= 0),
    champion_model_version_id     uuid,  -- unknown for monitoring-only producers
    shadow_prediction             jsonb CHECK (jsonb_typeof(shadow_prediction) = 'object'),
    shadow_latency_ms             double precision CHECK (shadow_latency_ms >= 0),
    shadow_model_version_id       uuid,
    shadow_error                  text,
    features                      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(features) = 'object'),
    outlier_score                 double precision CHECK (outlier_score BETWEEN 0.0 AND 1.0),
    predicted_at                  timestamptz NOT NULL,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    status                        text NOT NULL DEFAULT 'TO_REVIEW'
                                  CHECK (status IN ('TO_REVIEW', 'REVIEWED', 'SUBMITTED')),
    review                        jsonb CHECK (jsonb_typeof(review) = 'object'),
    reviewed_by                   text,
    reviewed_at                   timestamptz,
    submitted_dataset_version_id  uuid,
    submitted_asset_id            uuid,
    submitted_at                  timestamptz,
    UNIQUE (deployment_id, image_sha256),  -- the same image logged twice is one predicted asset
    FOREIGN KEY (deployment_id, project_id) REFERENCES deployments (id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (champion_model_version_id, project_id) REFERENCES model_versions (id, project_id),
    FOREIGN KEY (shadow_model_version_id, project_id) REFERENCES model_versions (id, project_id),
    FOREIGN KEY (submitted_dataset_version_id, project_id) REFERENCES dataset_versions (id, project_id),
    FOREIGN KEY (submitted_asset_id, project_id) REFERENCES assets (id, project_id),
    CHECK ((shadow_prediction IS NULL) = (shadow_latency_ms IS NULL)),
    -- What each review state holds; the trigger below decides how a row may move between them.
    CHECK ((status = 'TO_REVIEW') = (review IS NULL)),
    CHECK ((review IS NULL) = (reviewed_at IS NULL)),
    CHECK ((status = 'SUBMITTED') = (submitted_dataset_version_id IS NOT NULL)),
    CHECK ((status = 'SUBMITTED') = (submitted_asset_id IS NOT NULL)),
    CHECK ((status = 'SUBMITTED') = (submitted_at IS NOT NULL))
);
-- The review queue: one deployment, one status, newest first or most outlying first.
CREATE INDEX predicted_assets_queue_time
    ON predicted_assets (deployment_id, status, created_at DESC);
CREATE INDEX predicted_assets_queue_outlier
    ON predicted_assets (deployment_id, status, outlier_score DESC NULLS LAST);
CREATE INDEX predicted_assets_predicted_at ON predicted_assets (deployment_id, predicted_at);
CREATE INDEX predicted_assets_tags ON predicted_assets USING gin (tags);

-- Review states move one way: TO_REVIEW -> REVIEWED -> SUBMITTED. A REVIEWED asset may be
-- reviewed again (a correction before submission); a SUBMITTED one is frozen. Columns outside the
-- review (the outlier score arrives asynchronously) may change in any state.
CREATE FUNCTION predicted_assets_review_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status THEN
        IF OLD.status = 'SUBMITTED' AND (
            NEW.review IS DISTINCT FROM OLD.review
            OR NEW.submitted_dataset_version_id IS DISTINCT FROM OLD.submitted_dataset_version_id
            OR NEW.submitted_asset_id IS DISTINCT FROM OLD.submitted_asset_id
        ) THEN
            RAISE EXCEPTION 'illegal review transition SUBMITTED -> SUBMITTED: a submitted prediction is final'
                USING ERRCODE = 'check_violation', DETAIL = 'prediction ' || OLD.prediction_id;
        END IF;
        IF OLD.status = 'TO_REVIEW' AND NEW.review IS NOT NULL THEN
            RAISE EXCEPTION 'illegal review transition TO_REVIEW -> TO_REVIEW: a review moves the status to REVIEWED'
                USING ERRCODE = 'check_violation', DETAIL = 'prediction ' || OLD.prediction_id;
        END IF;
        RETURN NEW;
    END IF;
    IF NOT ((OLD.status = 'TO_REVIEW' AND NEW.status = 'REVIEWED')
            OR (OLD.status = 'REVIEWED' AND NEW.status = 'SUBMITTED')) THEN
        RAISE EXCEPTION 'illegal review transition % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation', DETAIL = 'prediction ' || OLD.prediction_id;
    END IF;
    IF NEW.status = 'REVIEWED' AND NEW.review IS NULL THEN
        RAISE EXCEPTION 'illegal review transition TO_REVIEW -> REVIEWED: REVIEWED requires a review'
            USING ERRCODE = 'check_violation', DETAIL = 'prediction ' || OLD.prediction_id;
    END IF;
    IF NEW.status = 'SUBMITTED' AND NEW.submitted_dataset_version_id IS NULL THEN
        RAISE EXCEPTION 'illegal review transition REVIEWED -> SUBMITTED: SUBMITTED requires a dataset version'
            USING ERRCODE = 'check_violation', DETAIL = 'prediction ' || OLD.prediction_id;
    END IF;
    IF NEW.status = 'SUBMITTED' AND NEW.review IS DISTINCT FROM OLD.review THEN
        RAISE EXCEPTION 'illegal review transition REVIEWED -> SUBMITTED: the review cannot change on submission'
            USING ERRCODE = 'check_violation', DETAIL = 'prediction ' || OLD.prediction_id;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER predicted_assets_review_transition
    BEFORE UPDATE ON predicted_assets
    FOR EACH ROW EXECUTE FUNCTION predicted_assets_review_transition();

-- Annotations: ground truth on a dataset asset, from an import or from a reviewed prediction.
CREATE TABLE annotations (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id          uuid NOT NULL,
    asset_id            uuid NOT NULL,
    shapes              jsonb NOT NULL CHECK (jsonb_typeof(shapes) = 'object'),
    created_by          text NOT NULL DEFAULT '',
    prediction_id       uuid REFERENCES predicted_assets ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (asset_id, project_id) REFERENCES assets (id, project_id) ON DELETE CASCADE
);
CREATE INDEX annotations_asset ON annotations (asset_id);
CREATE UNIQUE INDEX annotations_prediction ON annotations (asset_id, prediction_id);

-- Scores -----------------------------------------------------------------------------------------

CREATE TABLE drift_reports (
    event_id        uuid PRIMARY KEY,  -- the DriftReported event: a replay stores nothing new
    project_id      uuid NOT NULL,
    deployment_id   uuid NOT NULL,
    reference_id    uuid NOT NULL,
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    window_size     integer NOT NULL CHECK (window_size > 0),
    reference_size  integer NOT NULL CHECK (reference_size > 0),
    correction      text NOT NULL CHECK (correction IN ('bonferroni', 'benjamini-hochberg')),
    alpha           double precision NOT NULL CHECK (alpha > 0 AND alpha < 1),
    features        jsonb NOT NULL CHECK (jsonb_typeof(features) = 'array'),
    drift_detected  boolean NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (window_end >= window_start),
    FOREIGN KEY (deployment_id, project_id) REFERENCES deployments (id, project_id) ON DELETE CASCADE
);
CREATE INDEX drift_reports_deployment ON drift_reports (deployment_id, window_end DESC);

-- Processings, jobs, runs, logs ------------------------------------------------------------------

CREATE TABLE processings (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id        uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    description       text NOT NULL DEFAULT '',
    target_type       text NOT NULL CHECK (target_type IN ('dataset_version', 'model_version')),
    command           text[],
    image             text,
    parameter_schema  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(parameter_schema) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name),
    UNIQUE (id, project_id),
    CHECK (command IS NOT NULL OR image IS NOT NULL)
);

CREATE TABLE jobs (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id     uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('training', 'processing', 'reference')),
    target_type    text NOT NULL
                   CHECK (target_type IN ('experiment', 'model_version', 'dataset_version', 'deployment')),
    target_id      uuid NOT NULL,
    processing_id  uuid,
    parameters     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(parameters) = 'object'),
    request_id     text UNIQUE,  -- idempotency key of whoever asked: a replayed request is one job
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, project_id),
    FOREIGN KEY (processing_id, project_id) REFERENCES processings (id, project_id),
    CHECK ((kind = 'processing') = (processing_id IS NOT NULL))
);
CREATE INDEX jobs_project_created ON jobs (project_id, created_at DESC);

CREATE TABLE job_runs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id   uuid NOT NULL,
    job_id       uuid NOT NULL,
    attempt      integer NOT NULL CHECK (attempt > 0),
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    UNIQUE (job_id, attempt),
    UNIQUE (id, project_id),
    FOREIGN KEY (job_id, project_id) REFERENCES jobs (id, project_id) ON DELETE CASCADE,
    CHECK (status NOT IN ('running', 'succeeded') OR started_at IS NOT NULL),  -- a pending run may fail
    CHECK ((status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL)),
    CHECK (status <> 'failed' OR reason IS NOT NULL)
);
CREATE INDEX job_runs_status ON job_runs (status, created_at);

CREATE TABLE job_logs (
    project_id  uuid NOT NULL,
    run_id      uuid NOT NULL,
    sequence    bigint NOT NULL CHECK (sequence >= 0),
    line        text NOT NULL,
    logged_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, sequence),  -- a re-sent line is stored once
    FOREIGN KEY (run_id, project_id) REFERENCES job_runs (id, project_id) ON DELETE CASCADE
);

-- Idempotent effects -----------------------------------------------------------------------------

-- A consumer records the event it handled in the same transaction as the effect: a redelivered
-- event finds its row and changes nothing.
CREATE TABLE processed_events (
    consumer      text NOT NULL CHECK (length(consumer) BETWEEN 1 AND 128),
    event_id      uuid NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
