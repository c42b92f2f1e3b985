"""Which consumer groups `cvloop down` waits for, and how it words what was left unread."""

from pathlib import Path

from cvloop.stack.drain import describe
from cvloop.stack.service import PythonService
from cvloop.stack.settings import StackSettings
from cvloop.stack.stack import components
from schemas.topics import CONSUMED, FAUST_APPS, ConsumerGroup
from services.ingest import persistence, raw_consumer
from services.pipeline.runner.service import CONSUMER_GROUP
from services.pipeline.stream import APP_ID as PIPELINE_APP
from services.scoring.stream import APP_ID as SCORING_APP


def test_every_durable_group_runs_in_exactly_one_local_service(tmp_path: Path) -> None:
    run = [
        group
        for component in components(StackSettings(state_dir=tmp_path))
        if isinstance(component, PythonService)
        for group in component.consumer_groups
    ]
    assert sorted(run) == sorted(CONSUMED)


def test_the_services_consume_under_the_registry_names() -> None:
    used = {raw_consumer.CONSUMER, persistence.CONSUMER, CONSUMER_GROUP, PIPELINE_APP, SCORING_APP}
    assert used == set(ConsumerGroup)
    assert set(FAUST_APPS) == {PIPELINE_APP, SCORING_APP}


def test_unread_messages_are_named_by_group_and_topic() -> None:
    unread = {ConsumerGroup.SCORING: {"predictions": 3, "reviews": 1}, ConsumerGroup.JOB_RUNNER: {"jobs": 2}}
    assert describe(unread) == (
        "cvloop-scoring has 3 unread on predictions; cvloop-scoring has 1 unread on reviews; "
        "cvloop-job-runner has 2 unread on jobs"
    )
