"""The fixtures integration-test modules share. Tests marked `real_kafka` need what librdkafka's mock
lacks (CreateTopics, consumer groups of several members): they take `real_kafka_settings`
(tests/conftest.py), the session's broker (tansu, or a real Kafka), else a tansu started beside the mock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.common.db.pool import open_pool
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore
from tests.api_support import Api, Project, Running, new_project, running_app_on_new_database

# A module asking for the fixtures below defines `module_settings`: the settings its tests run with.


@pytest.fixture(scope="module")
async def pool(module_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(module_settings.database_url)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def producer(module_settings: Settings) -> AsyncIterator[EventProducer]:
    async with EventProducer.from_settings(module_settings) as events:
        yield events


@pytest.fixture(scope="module")
def store(module_settings: Settings) -> ObjectStore:
    store = ObjectStore.from_settings(module_settings)
    store.ensure_bucket()
    return store


# The api on a database of the module's own (tests.api_support), and a project on it.


@pytest.fixture(scope="module")
async def running(
    postgres_settings: Settings, kafka_settings: Settings, s3_settings: Settings
) -> AsyncIterator[Running]:
    async for app in running_app_on_new_database(s3_settings, postgres_settings.database_url):
        yield app


@pytest.fixture
async def project(running: Running) -> Project:
    return await new_project(running.pool)


@pytest.fixture
def api(running: Running, project: Project) -> Api:
    return running.as_key(project.write)
