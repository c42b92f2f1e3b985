"""The one policy every consumer follows: which failures belong to the message, how a batch's messages at
fault are isolated, and how a consumer that cannot make progress says so (pure: no servers)."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from prometheus_client import REGISTRY

from services.common.db.repositories.base import NotFound
from services.common.kafka.failures import is_message_error, isolate
from services.common.kafka.supervised import MAX_RESTART_DELAY_S, Progress, until_done


def _orjson_error() -> Exception:
    try:
        orjson.dumps(2**64)
    except orjson.JSONEncodeError as exc:
        return exc
    raise AssertionError("orjson wrote an integer above 2^64")


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.CharacterNotInRepertoireError("invalid byte sequence for encoding UTF8: 0x00"),
        asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence"),
        asyncpg.NumericValueOutOfRangeError("integer out of range"),
        asyncpg.ForeignKeyViolationError("violates foreign key constraint"),
        asyncpg.CheckViolationError("violates check constraint"),
        asyncpg.ProgramLimitExceededError("index row size exceeds maximum"),
        MessageSizeTooLargeError(),
        NotFound("model version outside the project"),
        ValueError("invalid"),
        _orjson_error(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_what_a_message_holds_is_the_message_s_fault(error: Exception) -> None:
    assert is_message_error(error)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("connection refused"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.InterfaceError("connection is closed"),
        KafkaConnectionError("unable to bootstrap"),
        RuntimeError("a failure nobody classified"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_an_outage_or_an_unclassified_failure_is_retried_not_dead_lettered(error: Exception) -> None:
    assert not is_message_error(error)


async def test_isolate_answers_each_item_at_fault_its_error_and_applies_the_rest() -> None:
    applied: list[int] = []
    calls = 0

    async def apply(part: list[int]) -> list[Exception | None]:
        nonlocal calls
        calls += 1
        if 13 in part or 40 in part:
            raise asyncpg.DataError(f"refused a row of {len(part)}")
        applied.extend(part)
        return [ValueError("answered") if i == 7 else None for i in part]

    outcomes = await isolate(list(range(64)), apply)

    assert [i for i, o in enumerate(outcomes) if isinstance(o, asyncpg.DataError)] == [13, 40]
    assert [i for i, o in enumerate(outcomes) if isinstance(o, ValueError)] == [7]
    assert sorted(applied) == [i for i in range(64) if i not in (13, 40)]
    assert calls <= 1 + 2 * 2 * 6  # about 2·k·log2(n): not one call per item


async def test_isolate_lets_an_outage_through_whatever_the_batch_holds() -> None:
    async def apply(part: list[int]) -> list[Exception | None]:
        raise ConnectionRefusedError("postgres is down")

    with pytest.raises(ConnectionRefusedError):
        await isolate([1, 2, 3], apply)


def _stalled(name: str) -> float | None:
    return REGISTRY.get_sample_value("cvloop_consumer_stalled", {"consumer": name})


async def test_a_consumer_retrying_an_outage_is_stalled_until_it_gets_through() -> None:
    progress = Progress("test-until-done")
    seen: list[tuple[str | None, float | None]] = []
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        seen.append((progress.problem(), _stalled("test-until-done")))
        if attempts < 3:
            raise ConnectionRefusedError("postgres is down")

    await asyncio.wait_for(until_done(progress, work, first_delay_s=0), timeout=5)

    assert attempts == 3
    assert seen[0] == (None, 0.0)
    assert seen[2][0] == "test-until-done cannot make progress: ConnectionRefusedError('postgres is down')"
    assert seen[2][1] == 1.0
    assert progress.problem() is None and _stalled("test-until-done") == 0.0


def test_the_pause_doubles_while_failures_last_up_to_the_maximum() -> None:
    progress = Progress("test-backoff")
    delays = []
    for _ in range(10):
        progress.failed(OSError("down"))
        delays.append(progress.delay_s(0.5))
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays[-1] == MAX_RESTART_DELAY_S
    progress.moved()
    progress.failed(OSError("down again"))
    assert progress.delay_s(0.5) == 0.5
