"""Whose fault a failure is, answered in one place for every consumer, stream, batch and relay: the
message's (it fails the same way on every retry, so it is set aside with its reason and the rest goes on)
or the world's (an outage, or a failure nobody classified: stop, keep the message, try again later).

A batch whose effect fails as a whole because of what one of its messages holds (one INSERT for many
rows) is split until the messages at fault stand alone: `isolate`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg
import orjson
from aiokafka.errors import MessageSizeTooLargeError

T = TypeVar("T")
Outcomes = Sequence[Exception | None]

# Invalid, unknown or contradicting the state (ValueError covers pydantic's ValidationError and
# IllegalTransition; LookupError the repositories' NotFound); refused by Postgres for a value it holds
# (NUL in text, a number out of range, a broken foreign key or check, a row too large); too large for
# Kafka; an integer orjson cannot write.
MESSAGE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    LookupError,
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
    MessageSizeTooLargeError,
    orjson.JSONEncodeError,
)


def is_message_error(error: BaseException) -> bool:
    """True when retrying cannot help: the failure comes from what the message holds."""
    return isinstance(error, MESSAGE_ERRORS)


async def isolate(items: list[T], apply: Callable[[list[T]], Awaitable[Outcomes]]) -> list[Exception | None]:
    """apply(items)'s outcomes (one per item: None when done, or the message error that item gets). When
    apply raises a message error, the items are halved and each half applied again, down to the single
    items at fault, which get that error as their outcome; any other error propagates (nothing of the
    batch may be committed). `apply` must be idempotent: a half is applied again after it partly took
    effect. A batch with k items at fault costs about 2·k·log2(n) calls of `apply`."""
    try:
        return list(await apply(items))
    except Exception as exc:
        if not is_message_error(exc):
            raise
        if len(items) == 1:
            return [exc]
    half = len(items) // 2
    return [*await isolate(items[:half], apply), *await isolate(items[half:], apply)]


def applied_whole(run: Callable[[list[T]], Awaitable[None]]) -> Callable[[list[T]], Awaitable[Outcomes]]:
    """An effect that succeeds or raises for its items together, as `isolate` wants it."""

    async def apply(items: list[T]) -> Outcomes:
        await run(items)
        return [None] * len(items)

    return apply
