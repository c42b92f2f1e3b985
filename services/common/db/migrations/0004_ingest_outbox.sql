-- Ingest's transactional outbox. The monitor endpoint and the predictions.raw consumer record a
-- predicted asset and its `predictions` event in one transaction, publish the event, then delete
-- the row; a row still here after a crash between those steps is published by ingest's relay, so
-- a recorded prediction always reaches the topic (at least once: readers dedupe by event id).
CREATE TABLE ingest_outbox (
    event_id       uuid PRIMARY KEY,
    prediction_id  uuid NOT NULL REFERENCES predicted_assets ON DELETE CASCADE,
    key            bytea NOT NULL,
    value          bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_outbox_created ON ingest_outbox (created_at);
