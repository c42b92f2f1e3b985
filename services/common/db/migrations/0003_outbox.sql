-- The transactional outbox every service writes (services/common/outbox.py): an event is written in
-- the same transaction as the change it reports, published after the commit, and deleted once the
-- broker acknowledged it. A row the publisher left behind (a failed publish, a crash between commit and
-- publish) is sent by the relay of any process once `relay_after` has passed: the api's rows at once,
-- ingest's after a delay that covers its own publish still in flight. Readers dedupe by event id.
CREATE TABLE outbox (
    event_id     uuid PRIMARY KEY,
    id           bigserial NOT NULL,  -- the order the relay sends them in
    topic        text NOT NULL CHECK (length(topic) BETWEEN 1 AND 249),
    key          bytea,
    value        bytea NOT NULL,
    relay_after  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_relay_after ON outbox (relay_after, id);

-- Continuous training creates its experiment in the deployment's own project: a key of one project
-- must not make another project's experiments.
ALTER TABLE deployments ADD CONSTRAINT deployments_ct_same_project
    CHECK (ct_project_id IS NULL OR ct_project_id = project_id);
