-- A row the relay cannot publish whatever it retries (larger than the topic takes, refused by the
-- broker for what it holds) is parked with the reason instead of holding back every row after it: the
-- relay skips it, an operator reads it (and the cvloop_outbox_parked_total metric), fixes or deletes it,
-- and clears parked_at to send it again.
ALTER TABLE outbox
    ADD COLUMN parked_at timestamptz,
    ADD COLUMN parked_reason text;
-- The relay's claim reads only the rows that are not parked.
DROP INDEX outbox_relay_after;
CREATE INDEX outbox_relay_after ON outbox (relay_after, id) WHERE parked_at IS NULL;
