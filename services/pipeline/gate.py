"""The promotion gate's I/O: on a review of a `shadow_then_promote` deployment, the champion and shadow
are compared on the reviewed predictions both answered (services.common.domain.promotion decides), and a
promotion, rollback or end of watch is applied with its DeploymentUpdated (carrying the decision and its
figures) in one transaction through the outbox. A decision that changes nothing is published only when
its reason differs from the last one about the same two versions, so reviews do not flood `deployments`."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid5

import asyncpg

from schemas.events import DeploymentChange, GateDecision
from schemas.topics import Topic
from schemas.vocabulary import DeploymentPolicy, GateOutcome
from services.common.db.repositories import deployment_figures, deployments, gate_decisions, outbox
from services.common.db.repositories.base import NotFound, transaction
from services.common.domain.deployments import Deployment
from services.common.domain.promotion import GateSettings, gate, watch
from services.common.domain.quality import latency_percentiles, reviewed_answers

from .settings import PipelineSettings

GATE_NAMESPACE = UUID("5f0e7c1a-2b9d-4e63-a8f4-0c7d91b2e6a5")

_CHANGES = {
    GateOutcome.PROMOTED: DeploymentChange.SHADOW_PROMOTED,
    GateOutcome.ROLLED_BACK: DeploymentChange.ROLLED_BACK,
    GateOutcome.KEPT: DeploymentChange.SHADOW_REMOVED,
    GateOutcome.HELD: DeploymentChange.GATE_DECIDED,
    GateOutcome.WATCHING: DeploymentChange.GATE_DECIDED,
}


def gate_settings(settings: PipelineSettings) -> GateSettings:
    return GateSettings(
        min_pairs=settings.pipeline_gate_min_pairs,
        level=settings.pipeline_gate_level,
        latency_p95_budget_ms=settings.pipeline_gate_latency_p95_ms,
        watch_reviews=settings.pipeline_gate_watch_reviews,
        bootstrap_resamples=settings.pipeline_gate_bootstrap_resamples,
    )


def decision_event_id(deployment: Deployment, decision: GateDecision) -> UUID:
    """Derived from what was decided about which versions on how many pairs: a replay finds it stored."""
    return uuid5(
        GATE_NAMESPACE,
        f"{deployment.id}:{deployment.champion_model_version_id}:{deployment.shadow_model_version_id}:"
        f"{decision.outcome}:{decision.reason}:{decision.pairs}",
    )


async def evaluate(
    pool: asyncpg.Pool, settings: PipelineSettings, deployment_id: UUID
) -> GateDecision | None:
    """The decision the deployment's reviews lead to, once applied and published; None when the gate has
    nothing to say (another policy, no shadow, a deleted deployment, the same reason as last time, or a
    deployment changed by someone meanwhile: the next review decides again)."""
    deployment = await deployments.find_deployment(pool, deployment_id)
    if (
        deployment is None
        or deployment.cd_policy is not DeploymentPolicy.SHADOW_THEN_PROMOTE
        or not deployment.cd_active
        or deployment.champion_model_version_id is None
        or deployment.shadow_model_version_id is None
    ):
        return None
    champion, shadow = deployment.champion_model_version_id, deployment.shadow_model_version_id
    window = settings.pipeline_gate_window
    reviewed = reviewed_answers(
        await deployment_figures.latest_answers(
            pool, deployment.project_id, deployment.id, champion, shadow, window, paired_reviews=True
        )
    )
    rules = gate_settings(settings)
    # The tests run in a thread: a detection bootstrap takes seconds and must not stall the app's loop.
    if deployment.watching:
        decision = await asyncio.to_thread(watch, reviewed, rules)
    else:
        latest = await deployment_figures.latest_answers(
            pool, deployment.project_id, deployment.id, champion, shadow, window
        )
        _, p95 = latency_percentiles([a.shadow_latency_ms for a in latest if a.shadow_latency_ms is not None])
        decision = await asyncio.to_thread(gate, reviewed, p95, rules)
    if decision.outcome in (GateOutcome.HELD, GateOutcome.WATCHING) and decision.reason == (
        await gate_decisions.latest_reason(pool, deployment.id, champion, shadow)
    ):
        return None
    event_id = decision_event_id(deployment, decision)
    async with transaction(pool) as conn:
        try:
            locked = await deployments.lock_deployment(conn, deployment.project_id, deployment.id)
        except NotFound:  # deleted meanwhile: nothing left to decide
            return None
        if (locked.champion_model_version_id, locked.shadow_model_version_id, locked.watching) != (
            champion,
            shadow,
            deployment.watching,
        ) or not await gate_decisions.record(
            conn, locked.project_id, locked.id, champion, shadow, event_id, decision
        ):
            return None
        if decision.outcome is GateOutcome.PROMOTED:
            locked = await deployments.promote_watching(conn, locked.project_id, locked.id)
        elif decision.outcome is GateOutcome.ROLLED_BACK:
            locked = await deployments.roll_back(conn, locked.project_id, locked.id)
        elif decision.outcome is GateOutcome.KEPT:
            locked = await deployments.end_watch(conn, locked.project_id, locked.id)
        event = locked.updated_event(_CHANGES[decision.outcome], gate=decision, event_id=event_id)
        await outbox.enqueue(conn, [(Topic.DEPLOYMENTS, event)])
    return decision
