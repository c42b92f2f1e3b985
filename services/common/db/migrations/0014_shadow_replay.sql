-- Replay before going live: when a version becomes a deployment's shadow, serving runs it over the
-- deployment's last reviewed images and records its answers as shadow predictions. One row per
-- deployment and shadow version: its progress, and the mark that it is done (a restart does not redo it).
CREATE TABLE shadow_replays (
    project_id                 uuid NOT NULL,
    deployment_id              uuid NOT NULL,
    shadow_model_version_id    uuid NOT NULL,
    status                     text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    selected                   integer NOT NULL DEFAULT 0 CHECK (selected >= 0),  -- reviewed images chosen
    replayed                   integer NOT NULL DEFAULT 0 CHECK (replayed >= 0),  -- answers recorded
    failed                     integer NOT NULL DEFAULT 0 CHECK (failed >= 0),    -- images the shadow failed on
    error                      text,
    started_at                 timestamptz NOT NULL DEFAULT now(),
    finished_at                timestamptz,
    PRIMARY KEY (deployment_id, shadow_model_version_id),
    FOREIGN KEY (deployment_id, project_id) REFERENCES deployments (id, project_id) ON DELETE CASCADE,
    FOREIGN KEY (shadow_model_version_id, project_id) REFERENCES model_versions (id, project_id)
        ON DELETE CASCADE
);
CREATE INDEX shadow_replays_latest ON shadow_replays (deployment_id, started_at DESC);
