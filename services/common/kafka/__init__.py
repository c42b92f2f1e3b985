"""Kafka adapters shared by every service: `producer` (idempotent publishing), `consumer` (at-least-once
processing loop), `deadletter` (what a consumer gives up on), `faust_app` (stream apps), `faust_topics`
(names of faust's internal topics) and `admin` (topic provisioning on a real cluster).

Nothing is re-exported here, so the local broker can import the pure naming without the clients."""
