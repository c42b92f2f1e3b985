-- The api's transactional outbox: an event is written in the same transaction as the change it
-- reports, published right after the commit, and deleted once the broker acknowledged it. A publish
-- that fails leaves the row for the relay to send later, so a committed change never loses its event.
CREATE TABLE api_outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL CHECK (length(topic) BETWEEN 1 AND 249),
    key         bytea,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Continuous training creates its experiment in the deployment's own project: a key of one project
-- must not make another project's experiments.
ALTER TABLE deployments ADD CONSTRAINT deployments_ct_same_project
    CHECK (ct_project_id IS NULL OR ct_project_id = project_id);
