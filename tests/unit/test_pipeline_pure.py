"""The pipeline's pure decisions: counting toward a trigger, request ids, the experiment a request
becomes, and what the continuous-deployment policy does with an exported version."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from schemas.events import DeploymentChange, TrainingRequested, parse_training_request_id, training_request_id
from schemas.triggers import TriggerFired
from schemas.vocabulary import DeploymentPolicy, TriggerRule
from services.common.domain.deployments import ContinuousTraining
from services.common.domain.experiments import Artifact
from services.pipeline.counting import (
    CycleCount,
    TrainingSettings,
    Trigger,
    count_submission,
    decide,
    needs_reconciling,
    reconciled,
    request_event_id,
)
from services.pipeline.requests import experiment_name, experiment_spec
from services.pipeline.rollout import (
    Outcome,
    exported_version_names,
    labels_problem,
    missing_artifacts,
    rollout,
)
from tests.samples import deployment_record

ON = TrainingSettings(active=True, threshold=3)
OFF = TrainingSettings(active=False, threshold=3)
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _by_count(submitted: int) -> TriggerFired:
    return TriggerFired(rule=TriggerRule.SUBMITTED, figures={"threshold": 3, "submitted": submitted})


def _count(state: CycleCount, settings: TrainingSettings, times: int) -> tuple[CycleCount, list[Trigger]]:
    triggers = []
    for _ in range(times):
        state, trigger = count_submission(state, settings, AT)
        if trigger is not None:
            triggers.append(trigger)
    return state, triggers


def test_the_threshold_triggers_once_and_starts_a_new_cycle() -> None:
    state, triggers = _count(CycleCount(), ON, 2)
    assert (state, triggers) == (CycleCount(cycle=1, submitted=2, total=2), [])
    state, trigger = count_submission(state, ON, AT)
    assert trigger == Trigger(cycle=1, submitted=3, fired=_by_count(3))
    assert state == CycleCount(cycle=2, submitted=0, total=3, last_request_at=AT)
    state, triggers = _count(state, ON, 6)
    assert [(t.cycle, t.submitted) for t in triggers] == [(2, 3), (3, 3)]
    assert state == CycleCount(cycle=4, submitted=0, total=9, last_request_at=AT)


def test_training_off_keeps_counting_and_triggers_on_the_next_submission_once_on() -> None:
    state, triggers = _count(CycleCount(), OFF, 5)
    assert triggers == []
    assert state == CycleCount(cycle=1, submitted=5, total=5)
    state, trigger = count_submission(state, ON, AT)
    assert trigger == Trigger(cycle=1, submitted=6, fired=_by_count(6))
    assert state.cycle == 2 and state.submitted == 0


def test_no_threshold_never_triggers() -> None:
    _, triggers = _count(CycleCount(), TrainingSettings(active=True, threshold=None), 10)
    assert triggers == []


def test_a_table_that_forgot_or_lags_its_experiments_is_reconciled() -> None:
    assert needs_reconciling(None, 0)  # never counted here (or forgotten): ask Postgres
    assert needs_reconciling(CycleCount(cycle=1, submitted=2, total=2), 1)  # cycle 1 has its experiment
    assert not needs_reconciling(CycleCount(cycle=2), 1)  # triggered 1, counting 2
    assert not needs_reconciling(CycleCount(cycle=3), 1)  # request 2 sent, its experiment not made yet


def test_a_reconciled_count_continues_after_the_latest_experiment() -> None:
    # Cycles 1 and 2 have experiments; 2 submissions since, 9 in all: the next request is cycle 3, after
    # one more submission at threshold 3, never a reused "<deployment>:1".
    earlier = AT - timedelta(hours=1)
    state = reconciled(latest_cycle=2, latest_at=earlier, submitted_since=2, submitted_total=9)
    assert state == CycleCount(cycle=3, submitted=2, total=9, last_request_at=earlier)
    assert count_submission(state, ON, AT) == (
        CycleCount(cycle=4, submitted=0, total=10, last_request_at=AT),
        Trigger(3, 3, _by_count(3)),
    )


def test_a_reconciled_count_at_the_threshold_triggers_without_a_new_submission() -> None:
    state = reconciled(latest_cycle=0, latest_at=None, submitted_since=4, submitted_total=4)
    assert decide(state, ON, AT) == (
        CycleCount(cycle=2, submitted=0, total=4, last_request_at=AT),
        Trigger(1, 4, _by_count(4)),
    )
    assert decide(state, OFF, AT) == (state, None)
    below = CycleCount(cycle=1, submitted=2, total=2)
    assert decide(below, ON, AT) == (below, None)


def test_request_ids_name_the_deployment_and_cycle() -> None:
    deployment_id = uuid4()
    rid = training_request_id(deployment_id, 7)
    assert rid == f"{deployment_id}:7"
    assert parse_training_request_id(rid) == (deployment_id, 7)
    next_rid = training_request_id(deployment_id, 8)
    assert request_event_id(rid) == request_event_id(rid) != request_event_id(next_rid)
    for bad in ("x", f"{deployment_id}:0", f"{deployment_id}:", ":3", f"{deployment_id}:-1"):
        with pytest.raises(ValueError):
            parse_training_request_id(bad)


def test_a_request_becomes_the_configured_experiment_on_the_champion() -> None:
    champion, train, test = uuid4(), uuid4(), uuid4()
    deployment = deployment_record().model_copy(
        update={
            "champion_model_version_id": champion,
            "continuous_training": ContinuousTraining(
                dataset_versions={"train": train, "test": test},
                parameters={"epochs": 3},
                trigger_threshold=5,
                active=True,
            ),
        }
    )
    at = datetime(2026, 11, 21, 23, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    request = TrainingRequested(
        deployment_id=deployment.id,
        request_id=training_request_id(deployment.id, 2),
        cycle=2,
        submitted_count=5,
        occurred_at=at,
    )
    spec = experiment_spec(deployment, request)
    assert spec.project_id == deployment.project_id  # no training project configured: the deployment's
    assert spec.name == f"{deployment.name} 2026-11-21T21:30:05Z #2"
    assert spec.base_model_version_id == champion
    assert spec.parameters == {"epochs": 3}
    assert spec.dataset_versions == {"train": train, "test": test}
    assert spec.training_request_id == request.request_id
    with pytest.raises(ValueError, match="no champion"):
        experiment_spec(deployment.model_copy(update={"champion_model_version_id": None}), request)


def test_experiment_names_fit_the_column() -> None:
    name = experiment_name("d" * 128, datetime(2026, 1, 1, tzinfo=UTC), 12)
    assert len(name) == 128 and name.endswith(" 2026-01-01T00:00:00Z #12")


def test_policies() -> None:
    assert rollout(DeploymentPolicy.DEPLOY_CHAMPION, True) == (
        Outcome.CHAMPION,
        DeploymentChange.CHAMPION_SET,
    )
    assert rollout(DeploymentPolicy.DEPLOY_SHADOW, True) == (Outcome.SHADOW, DeploymentChange.SHADOW_SET)
    assert rollout(DeploymentPolicy.MANUAL, True) == (Outcome.MANUAL, None)
    for policy in DeploymentPolicy:  # continuous deployment off: exported, deployed by no one
        assert rollout(policy, False) == (Outcome.MANUAL, None)
        assert rollout(policy, False, unservable=True) == (Outcome.MANUAL, None)
    # A version serving cannot call is deployed by no policy.
    assert rollout(DeploymentPolicy.DEPLOY_CHAMPION, True, unservable=True) == (Outcome.UNSERVABLE, None)
    assert rollout(DeploymentPolicy.DEPLOY_SHADOW, True, unservable=True) == (Outcome.UNSERVABLE, None)
    assert rollout(DeploymentPolicy.MANUAL, True, unservable=True) == (Outcome.MANUAL, None)


def _artifact(name: str) -> Artifact:
    return Artifact(id=uuid4(), name=name, object_key=f"artifacts/{name}", sha256="a" * 64, size_bytes=1)


def test_an_export_needs_the_model_and_its_labels() -> None:
    assert missing_artifacts([_artifact("model.onnx"), _artifact("labels.json"), _artifact("m.json")]) == []
    assert missing_artifacts([_artifact("metrics.json")]) == ["model.onnx", "labels.json"]
    assert missing_artifacts([_artifact("model.onnx")]) == ["labels.json"]


def test_labels_must_match_the_inherited_labelmap() -> None:
    labels = ["0", "1", "2"]
    assert labels_problem(json.dumps(labels).encode(), labels) is None
    assert labels_problem(json.dumps(labels).encode(), None) is None
    assert "differs" in (labels_problem(json.dumps(["1", "0", "2"]).encode(), labels) or "")
    assert "not JSON" in (labels_problem(b"{", labels) or "")
    assert "not a list" in (labels_problem(b'{"a": 1}', labels) or "")


def test_exported_version_names() -> None:
    at = datetime(2026, 11, 21, 23, 30, 5, tzinfo=UTC)
    experiment = UUID("0123456789abcdef0123456789abcdef")
    assert exported_version_names(3, at, experiment) == (
        "ct3-20261121T233005Z",
        "ct3-20261121T233005Z-01234567",
    )
    assert [len(name) for name in exported_version_names(10**60, at, experiment)] == [64, 64]
