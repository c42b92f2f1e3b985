"""Pure parts of the Kafka adapters: dead letters, topic provisioning, faust's internal topic names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from cvloop.stack.kafka_broker import provisioned_topics
from schemas import decode
from schemas.deadletter import DeadLetter
from schemas.topics import FAUST_APPS, TOPICS, Topic
from services.common.kafka.admin import existing_outcomes, new_topics, outcome
from services.common.kafka.consumer import group_timeouts
from services.common.kafka.deadletter import DeadLetters, build_dead_letter, explain
from services.common.kafka.faust_app import create_app
from services.common.kafka.faust_topics import changelog_topic, internal_topic_specs, leader_topic
from services.common.kafka.producer import SINGLE_RECORD_BATCH, create_producer
from services.common.settings import Broker, Settings
from tests import samples


def _record(value: bytes, *, topic: str = Topic.PREDICTIONS, key: bytes | None = b"k") -> ConsumerRecord:
    return ConsumerRecord(
        topic=topic,
        partition=3,
        offset=41,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=(),
    )


def _bad_prediction() -> bytes:
    data = json.loads(samples.prediction_logged().to_bytes())
    data["champion"]["latency_ms"] = -1
    return json.dumps(data).encode()


def test_validation_error_becomes_dead_letter_naming_the_field() -> None:
    value = _bad_prediction()
    with pytest.raises(ValidationError) as caught:
        decode(Topic.PREDICTIONS, value)

    letter = build_dead_letter(_record(value), caught.value, consumer="scoring")

    assert letter.error_type == "validation"
    assert letter.error.startswith("champion.latency_ms: ")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("predictions", 3, 41)
    assert letter.original_value == value
    assert letter.source_key == b"k"
    assert letter.consumer == "scoring"
    assert letter.key == b"predictions"


def test_other_errors_are_named_by_their_class() -> None:
    assert explain(KeyError("deployment")) == ("KeyError", "'deployment'")
    assert explain(TimeoutError()) == ("TimeoutError", "TimeoutError()")


def test_dead_letter_keeps_bytes_through_json() -> None:
    value = b"\x00\xffnot json"
    letter = build_dead_letter(_record(value, key=None), ValueError("bad"), consumer="ingest")
    again = type(letter).from_bytes(letter.to_bytes())
    assert again.original_value == value
    assert again.source_key is None


class _Published:
    """Stands in for the producer: keeps what a stream dead-letters."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def publish(self, topic: Topic, letter: DeadLetter) -> None:
        assert topic == Topic.DEADLETTER
        self.letters.append(letter)


def _dead_letters() -> tuple[DeadLetters, _Published, list[Any]]:
    published, counted = _Published(), []
    return DeadLetters(published, "stream", counted.append), published, counted


async def test_an_unreadable_record_is_dead_lettered_and_decodes_to_none() -> None:
    letters, published, counted = _dead_letters()
    good, bad = _record(samples.prediction_logged().to_bytes()), _record(_bad_prediction())

    assert (await letters.decoded(good)) == decode(Topic.PREDICTIONS, good.value)
    assert await letters.decoded(bad) is None

    (letter,) = published.letters
    assert (letter.consumer, letter.error_type, letter.original_value) == ("stream", "validation", bad.value)
    assert counted == [bad]


async def test_a_message_error_in_the_guard_dead_letters_its_record_and_the_stream_goes_on() -> None:
    letters, published, _ = _dead_letters()

    async with letters.guard(_record(b"1")):
        raise LookupError("deployment gone")

    assert [(letter.original_value, letter.error) for letter in published.letters] == [
        (b"1", "deployment gone")
    ]


async def test_isolating_dead_letters_only_the_records_at_fault_and_applies_the_rest() -> None:
    letters, published, _ = _dead_letters()
    records = [_record(bytes([48 + i])) for i in range(8)]
    applied: list[bytes] = []

    async def apply(part: list[ConsumerRecord]) -> None:
        if any(r.value in (b"2", b"5") for r in part):
            raise asyncpg.CharacterNotInRepertoireError("invalid byte sequence for encoding UTF8: 0x00")
        applied.extend(r.value for r in part)

    await letters.isolating(records, lambda record: record, apply)

    assert sorted(applied) == [b"0", b"1", b"3", b"4", b"6", b"7"]
    assert [letter.original_value for letter in published.letters] == [b"2", b"5"]
    assert {letter.error_type for letter in published.letters} == {"CharacterNotInRepertoireError"}


async def test_an_outage_in_the_guard_propagates_without_dead_letters() -> None:
    letters, published, _ = _dead_letters()

    with pytest.raises(OSError):
        async with letters.guard(_record(b"1")):
            raise OSError("postgres gone")

    assert published.letters == []


def test_new_topics_follow_the_registry_capping_replication() -> None:
    built = {topic.name: topic for topic in new_topics(TOPICS.values(), broker_count=1)}

    assert set(built) == {str(name) for name in TOPICS}
    for name, spec in TOPICS.items():
        topic = built[str(name)]
        assert topic.num_partitions == spec.partitions
        assert topic.replication_factor == 1
        assert topic.topic_configs == spec.kafka_config()
    assert built["deployments"].topic_configs["cleanup.policy"] == "compact"
    assert built["deadletter"].num_partitions == 1


def test_new_topics_keep_replication_on_a_large_cluster() -> None:
    (topic,) = new_topics([TOPICS[Topic.SCORES]], broker_count=5)
    assert topic.replication_factor == TOPICS[Topic.SCORES].replication_factor


def test_create_topics_outcomes() -> None:
    assert outcome(0, None) == "created"
    assert outcome(36, "Topic 'scores' already exists.") == "exists"
    assert outcome(37, "Number of partitions must be larger than 0.") == (
        "failed: InvalidPartitionsError (Number of partitions must be larger than 0.)"
    )


def test_faust_internal_topic_names() -> None:
    assert changelog_topic("cvloop-scoring", "drift-windows") == "cvloop-scoring-drift-windows-changelog"
    assert leader_topic("cvloop-scoring") == "cvloop-scoring-__assignor-__leader"
    specs = internal_topic_specs("app", {"counts": 6, "seen": 3})
    assert {spec.name: spec.partitions for spec in specs} == {
        "app-__assignor-__leader": 1,
        "app-counts-changelog": 6,
        "app-seen-changelog": 3,
    }
    assert {spec.kafka_config()["cleanup.policy"] for spec in specs} == {"compact"}


def test_broker_provisions_registry_and_faust_topics_co_partitioned() -> None:
    topics = provisioned_topics()
    for name, spec in TOPICS.items():
        assert topics[str(name)] == spec.partitions
    for app_id, tables in FAUST_APPS.items():
        assert topics[leader_topic(app_id)] == 1
        for table, source in tables.items():
            assert topics[changelog_topic(app_id, table)] == TOPICS[source].partitions


def test_local_groups_use_a_short_session_and_real_kafka_the_defaults() -> None:
    local = group_timeouts(Settings(kafka_bootstrap_setting=None))
    real = group_timeouts(Settings(kafka_bootstrap_setting="kafka:9092"))
    assert local.heartbeat_ms < local.session_ms < real.session_ms
    assert real == (10_000, 3_000, None)
    assert local.request_ms is not None and local.session_ms < local.request_ms
    # A replica on the local tansu names it by address, and must say what the group's other members say.
    replica = Settings(kafka_bootstrap_setting="127.0.0.1:21539", kafka_broker_setting=Broker.TANSU)
    assert group_timeouts(replica) == local == group_timeouts(Settings(kafka_broker_setting=Broker.TANSU))


def test_a_broker_that_cannot_create_topics_reports_the_missing_ones() -> None:
    specs = [TOPICS[Topic.SCORES], TOPICS[Topic.JOBS]]
    assert existing_outcomes(specs, {"scores", "other"}) == [
        ("scores", "exists"),
        ("jobs", "failed: missing, and this broker cannot create topics"),
    ]


async def test_producers_on_tansu_send_one_record_per_batch_without_idempotence(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "bootstrap").write_text("127.0.0.1:9")
    tansu = Settings(state_dir=tmp_path, kafka_broker_setting=Broker.TANSU, kafka_bootstrap_setting=None)
    real = Settings(kafka_broker_setting=None, kafka_bootstrap_setting="kafka:9092")
    on_tansu, on_kafka = create_producer(tansu), create_producer(real)
    try:
        assert on_tansu._txn_manager is None  # tansu answers an idempotent producer's InitProducerId wrongly
        assert on_tansu._message_accumulator._batch_size == SINGLE_RECORD_BATCH
        assert on_kafka._txn_manager is not None  # idempotence: a retried send is not written twice
    finally:
        await on_tansu.stop()
        await on_kafka.stop()
    app = create_app("unit", tansu)
    assert app.conf.producer_max_batch_size == SINGLE_RECORD_BATCH
    assert create_app("unit", real).conf.producer_max_batch_size > SINGLE_RECORD_BATCH


def test_a_process_sharing_the_servers_talks_to_the_same_broker_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "bootstrap").write_text("127.0.0.1:14339")
    local = Settings(state_dir=tmp_path, kafka_broker_setting=Broker.TANSU, kafka_bootstrap_setting=None)
    other = local.sharing_servers(port_base=20000, state_dir=tmp_path / "other")
    assert other.kafka_bootstrap_servers == "127.0.0.1:14339" and other.runs_tansu
    assert other.database_url == local.database_url and other.s3_endpoint == local.s3_endpoint
    assert other.port_base == 20000
