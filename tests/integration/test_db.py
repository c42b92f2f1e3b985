"""Migrations and repositories against the real local Postgres, each test in a database of its own."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest

from cvloop.stack.postgres import Postgres
from cvloop.stack.process import StackError, read_pid
from cvloop.stack.scratch import free_port_base
from cvloop.stack.settings import StackSettings
from schemas.events import DeploymentKind, ImageRef, JobKind, PredictionLogged, PredictionSource, RoleResult
from schemas.local_stack import LOCAL_HOST
from schemas.predictions import ClassificationPrediction, DetectionPrediction, DetectionType
from schemas.vocabulary import (
    DeploymentPolicy,
    PredictionOrder,
    ReferenceStatus,
    ReviewStatus,
    RunStatus,
    Scope,
    TargetType,
)
from services.common.db.idempotency import claim_event
from services.common.db.migrations import MIGRATIONS_DIR, MigrationError, discover, migrate
from services.common.db.pool import create_pool, open_pool
from services.common.db.repositories import deployments, jobs, predicted_assets, projects, registry
from services.common.db.repositories.base import Conflict, NotFound
from services.common.domain.deployments import ContinuousTraining
from services.common.domain.predictions import PredictionFilter, Submission
from services.common.domain.registry import ModelFile, NewModelVersion
from services.common.domain.review_state import IllegalTransition

# Unique per session, so two sessions sharing one server (DATABASE_URL) never drop each other's.
TEMPLATE = f"cvloop_test_template_{uuid4().hex[:12]}"


def _dsn(settings: StackSettings, database: str) -> str:
    return f"{settings.database_url.rsplit('/', 1)[0]}/{database}"


@pytest.fixture(scope="session")
async def template(postgres_settings: StackSettings) -> str:
    """A database migrated once, copied for each test (CREATE DATABASE ... TEMPLATE is fast)."""
    admin = await asyncpg.connect(_dsn(postgres_settings, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(_dsn(postgres_settings, TEMPLATE))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return TEMPLATE


async def _fresh_database(settings: StackSettings, template: str) -> AsyncIterator[str]:
    name = f"test_{uuid4().hex}"
    admin = await asyncpg.connect(_dsn(settings, "postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        yield _dsn(settings, name)
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def empty_dsn(postgres_settings: StackSettings) -> AsyncIterator[str]:
    async for dsn in _fresh_database(postgres_settings, "template0"):
        yield dsn


@pytest.fixture
async def pool(postgres_settings: StackSettings, template: str) -> AsyncIterator[asyncpg.Pool]:
    async for dsn in _fresh_database(postgres_settings, template):
        db = await create_pool(dsn, max_size=4)
        try:
            yield db
        finally:
            await db.close()


# --- the local server ----------------------------------------------------------------------------


async def test_local_database(postgres_settings: StackSettings) -> None:
    if postgres_settings.is_external("postgres"):
        pytest.skip("DATABASE_URL points at an external server")
    conn = await asyncpg.connect(postgres_settings.database_url)
    try:
        assert tuple(await conn.fetchrow("SELECT current_user, current_database()")) == ("cvloop", "cvloop")
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
    finally:
        await conn.close()


def test_local_server_is_the_unprivileged_postmaster(postgres_settings: StackSettings) -> None:
    if postgres_settings.is_external("postgres"):
        pytest.skip("DATABASE_URL points at an external server")
    component = Postgres(postgres_settings)
    assert component.health().state == "healthy"
    recorded = read_pid(component.workdir)
    assert recorded is not None
    pid, _ = recorded
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"  # the postmaster itself
    if os.geteuid() == 0:
        assert Path(f"/proc/{pid}").stat().st_uid == pwd.getpwnam("postgres").pw_uid


def test_taken_port_names_the_fix(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind((LOCAL_HOST, free_port_base()))  # a port the port base may be (below 32768)
        squatter.listen()
        settings = StackSettings(state_dir=tmp_path, port_base=squatter.getsockname()[1])
        with pytest.raises(StackError, match=f"port {LOCAL_HOST}:{settings.postgres_port} is already taken"):
            Postgres(settings).start()


# --- migrations ------------------------------------------------------------------------------------


async def test_migrations_from_empty_then_no_op(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await migrate(conn) == [m.version for m in discover()]
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {"predicted_assets", "deployments", "model_versions", "jobs", "processed_events"} <= tables
        assert await migrate(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(discover())
    finally:
        await conn.close()


async def test_open_pool_migrates(postgres_settings: StackSettings, empty_dsn: str) -> None:
    pool = await open_pool(empty_dsn)
    try:
        assert await pool.fetchval("SELECT max(version) FROM schema_migrations") == discover()[-1].version
        assert await pool.fetchval("SELECT '{\"a\": [1]}'::jsonb") == {"a": [1]}  # decoded by the codec
    finally:
        await pool.close()


async def test_concurrent_appliers_apply_once(empty_dsn: str) -> None:
    conns = [await asyncpg.connect(empty_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(results, key=len) == [[], [], [], [m.version for m in discover()]]
    finally:
        for conn in conns:
            await conn.close()


async def test_an_edited_applied_migration_is_refused(empty_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_initial.sql").write_text((MIGRATIONS_DIR / "0001_initial.sql").read_text())
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, tmp_path)
        (tmp_path / "0001_initial.sql").write_text("SELECT 1;")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, tmp_path)
    finally:
        await conn.close()


async def test_a_renumbered_migration_is_not_applied_again(empty_dsn: str, tmp_path: Path) -> None:
    # The numbering before the gap was closed: 0001-0004, then 0006_job_runner.
    old_numbering = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6}
    for migration in discover()[:5]:
        (tmp_path / f"{old_numbering[migration.version]:04d}_{migration.name}.sql").write_text(migration.sql)
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await migrate(conn, tmp_path) == [1, 2, 3, 4, 6]
        records = "SELECT checksum, version, applied_at FROM schema_migrations"
        before = {r["checksum"]: r["applied_at"] for r in await conn.fetch(records)}
        # Only migrations newer than 0005 run: 0005_job_runner again would fail on its existing index.
        assert await migrate(conn) == [m.version for m in discover()[5:]]
        after = {r["checksum"]: (r["version"], r["applied_at"]) for r in await conn.fetch(records)}
        assert {m.checksum: m.version for m in discover()} == {c: v for c, (v, _) in after.items()}
        assert before == {c: at for c, (_, at) in after.items() if c in before}
        assert await migrate(conn) == []
    finally:
        await conn.close()


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_initial.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_lowercase_name\.sql"):
        discover(tmp_path)


# --- a small world to work in ---------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    project_id: UUID
    dataset_version_id: UUID
    feedback_version_id: UUID
    model_version_id: UUID
    deployment_id: UUID


async def _world(db: asyncpg.Pool, name: str = "acme") -> World:
    project = await projects.create_project(db, name)
    labelmap = await registry.create_labelmap(db, project.id, "animals", ["cat", "dog"])
    dataset = await registry.create_dataset(db, project.id, "pets")
    train = await registry.create_dataset_version(
        db, project.id, dataset.id, "v1", DetectionType.DETECTION, labelmap_id=labelmap.id
    )
    feedback = await registry.create_dataset_version(
        db, project.id, dataset.id, "v2", DetectionType.DETECTION
    )
    model = await registry.create_model(db, project.id, "pet-detector")
    version = await registry.create_model_version(
        db,
        project.id,
        model.id,
        NewModelVersion(
            version="1",
            detection_type=DetectionType.DETECTION,
            labelmap_id=labelmap.id,
            training_parameters={"epochs": 10},
            files=[ModelFile(name="model.onnx", object_key="models/a", sha256="a" * 64, size_bytes=3)],
            dataset_versions={"train": train.id},
        ),
    )
    deployment = await deployments.create_deployment(
        db,
        project.id,
        "pets-prod",
        kind=DeploymentKind.SERVED,
        detection_type=DetectionType.DETECTION,
        champion_model_version_id=version.id,
        confidence_threshold=0.3,
    )
    await deployments.set_feedback_loop(db, project.id, deployment.id, [feedback.id])
    return World(project.id, train.id, feedback.id, version.id, deployment.id)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _box(label: str = "cat") -> DetectionPrediction:
    return DetectionPrediction(classes=[label], scores=[0.9], boxes=[(1.0, 2.0, 30.0, 40.0)])


def _event(
    world: World, image: str, *, tags: list[str] | None = None, shadow: bool = False
) -> PredictionLogged:
    return PredictionLogged(
        deployment_id=world.deployment_id,
        prediction_id=uuid4(),
        detection_type=DetectionType.DETECTION,
        image=ImageRef(
            object_key=f"images/{_sha(image)[:2]}/{_sha(image)}.jpg",
            sha256=_sha(image),
            width=64,
            height=48,
            content_type="image/jpeg",
        ),
        champion=RoleResult(model_version_id=world.model_version_id, prediction=_box(), latency_ms=4.2),
        shadow=RoleResult(prediction=_box("dog"), latency_ms=5.0) if shadow else None,
        features={"brightness": 0.5},
        source=PredictionSource.SERVING,
        tags=tags or [],
        metadata={"camera": "north"},
        predicted_at=datetime.now(UTC),
    )


async def _logged(db: asyncpg.Pool, world: World, image: str, **kwargs: object) -> UUID:
    event = _event(world, image, **kwargs)  # type: ignore[arg-type]
    assert await predicted_assets.insert_prediction(db, world.project_id, event)
    return event.prediction_id


# --- projects, registry, deployments -------------------------------------------------------------


async def test_api_keys(pool: asyncpg.Pool) -> None:
    project = await projects.create_project(pool, "acme")
    key, secret = await projects.create_api_key(pool, project.id, "ci", [Scope.WRITE, Scope.READ])
    assert secret.startswith("cvl_") and secret.startswith(key.key_prefix)
    assert key.scopes == [Scope.READ, Scope.WRITE]
    found = await projects.authenticate(pool, secret)
    assert found is not None and found.id == key.id and found.last_used_at is not None
    assert await projects.authenticate(pool, secret + "x") is None
    stored = await pool.fetchval("SELECT key_hash FROM api_keys WHERE id = $1", key.id)
    assert secret not in stored
    assert await projects.get_project(pool, project.id) == project
    assert [k.id for k in await projects.list_api_keys(pool, project.id)] == [key.id]
    other = await projects.create_project(pool, "other")
    assert await projects.list_api_keys(pool, other.id) == []
    assert not await projects.revoke_api_key(pool, other.id, key.id)  # another project's key
    assert await projects.revoke_api_key(pool, project.id, key.id)
    assert await projects.authenticate(pool, secret) is None
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO api_keys (project_id, name, key_hash, key_prefix, scopes) "
            "VALUES ($1, 'x', $2, 'x', $3)",
            project.id,
            "b" * 64,
            ["superuser"],
        )


async def test_registry_round_trip_and_scoping(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    other = await _world(pool, "other")
    version = await registry.get_model_version(pool, world.project_id, world.model_version_id)
    assert version is not None
    assert version.training_parameters == {"epochs": 10}
    assert version.dataset_versions == {"train": world.dataset_version_id}
    assert [f.name for f in version.files] == ["model.onnx"]
    assert await registry.list_model_versions(pool, world.project_id, version.model_id) == [version]

    assert await registry.get_model_version(pool, other.project_id, world.model_version_id) is None
    assert await registry.get_dataset_version(pool, other.project_id, world.dataset_version_id) is None
    assert await registry.list_model_versions(pool, other.project_id, version.model_id) == []
    with pytest.raises(NotFound):  # a reference across projects is refused by the database
        await registry.add_asset(
            pool,
            other.project_id,
            world.dataset_version_id,
            object_key="k",
            sha256="c" * 64,
            width=1,
            height=1,
        )

    first = await registry.add_asset(
        pool, world.project_id, world.dataset_version_id, object_key="k", sha256="c" * 64, width=2, height=3
    )
    again = await registry.add_asset(
        pool, world.project_id, world.dataset_version_id, object_key="k2", sha256="c" * 64, width=2, height=3
    )
    assert again.id == first.id
    assert await registry.list_assets(pool, world.project_id, world.dataset_version_id) == [first]
    assert await registry.list_assets(pool, other.project_id, world.dataset_version_id) == []


async def test_deployment_settings(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    other = await _world(pool, "other")
    pid, did = world.project_id, world.deployment_id

    shadow = await registry.create_model_version(
        pool,
        pid,
        (await registry.get_model_version(pool, pid, world.model_version_id)).model_id,  # type: ignore[union-attr]
        NewModelVersion(version="2", detection_type=DetectionType.DETECTION),
    )
    deployment = await deployments.set_shadow(pool, pid, did, shadow.id)
    assert deployment.shadow_model_version_id == shadow.id
    deployment = await deployments.promote_shadow(pool, pid, did)
    assert (deployment.champion_model_version_id, deployment.shadow_model_version_id) == (shadow.id, None)
    deployment = await deployments.set_champion(pool, pid, did, world.model_version_id)  # a rollback
    assert deployment.champion_model_version_id == world.model_version_id
    with pytest.raises(NotFound):  # another project's model version
        await deployments.set_champion(pool, pid, did, other.model_version_id)
    with pytest.raises(Conflict, match="no shadow"):
        await deployments.promote_shadow(pool, pid, did)
    with pytest.raises(NotFound):  # another project's model version
        await deployments.set_shadow(pool, pid, did, other.model_version_id)

    deployment = await deployments.set_training_data(pool, pid, did, world.dataset_version_id)
    assert deployment.reference_status is ReferenceStatus.COMPUTING
    reference = uuid4()
    deployment = await deployments.set_reference_status(
        pool, pid, did, ReferenceStatus.READY, reference_id=reference
    )
    assert (deployment.reference_status, deployment.reference_id) == (
        ReferenceStatus.READY,
        reference,
    )
    with pytest.raises(Conflict):  # a failure needs its reason
        await deployments.set_reference_status(pool, pid, did, ReferenceStatus.FAILED)

    assert deployment.feedback_dataset_version_ids == [world.feedback_version_id]
    ct = ContinuousTraining(
        dataset_versions={"train": world.feedback_version_id},
        parameters={"epochs": 3},
        trigger_threshold=5,
        active=True,
    )
    deployment = await deployments.configure_continuous_training(pool, pid, did, ct)
    assert deployment.continuous_training == ct
    with pytest.raises(Conflict):
        await deployments.configure_continuous_training(pool, pid, did, ContinuousTraining(active=True))
    assert (await deployments.get_deployment(pool, pid, did)).continuous_training == ct  # type: ignore[union-attr]
    deployment = await deployments.configure_continuous_deployment(
        pool, pid, did, DeploymentPolicy.DEPLOY_SHADOW, active=True
    )
    assert (deployment.cd_policy, deployment.cd_active) == (DeploymentPolicy.DEPLOY_SHADOW, True)

    assert await deployments.get_deployment(pool, other.project_id, did) is None
    assert [d.id for d in await deployments.list_deployments(pool, other.project_id)] == [other.deployment_id]
    with pytest.raises(NotFound):
        await deployments.set_confidence_threshold(pool, other.project_id, did, 0.5)
    assert await deployments.project_of(pool, did) == pid


# --- predicted assets ----------------------------------------------------------------------------


async def test_insert_prediction_is_idempotent(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    event = _event(world, "img-1", shadow=True)
    assert await predicted_assets.insert_prediction(pool, world.project_id, event)
    assert not await predicted_assets.insert_prediction(pool, world.project_id, event)  # redelivered
    same_image = event.model_copy(update={"prediction_id": uuid4()})
    assert not await predicted_assets.insert_prediction(pool, world.project_id, same_image)
    stored = await predicted_assets.get_prediction(pool, world.project_id, event.prediction_id)
    assert stored is not None
    assert stored.status is ReviewStatus.TO_REVIEW
    assert stored.champion_prediction == event.champion.prediction.model_dump(mode="json")
    assert stored.shadow_prediction == event.shadow.prediction.model_dump(mode="json")  # type: ignore[union-attr]
    assert (stored.metadata, stored.features) == ({"camera": "north"}, {"brightness": 0.5})
    assert await pool.fetchval("SELECT count(*) FROM predicted_assets") == 1

    other = await _world(pool, "other")
    assert await predicted_assets.get_prediction(pool, other.project_id, event.prediction_id) is None
    with pytest.raises(NotFound):  # a deployment of another project
        await predicted_assets.insert_prediction(pool, other.project_id, _event(world, "img-2"))


async def test_list_predictions_filters_and_orders(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    pid, did = world.project_id, world.deployment_id
    ids = [await _logged(pool, world, f"img-{i}", tags=["night"] if i % 2 else []) for i in range(4)]
    for prediction_id, score in zip(ids, (0.1, 0.9, 0.5, None), strict=True):
        if score is not None:
            assert await predicted_assets.set_outlier_score(pool, pid, prediction_id, score)
    await predicted_assets.review(pool, pid, ids[0], _box("dog"), reviewed_by="ann")

    async def page(where: PredictionFilter | None = None, **kwargs: object) -> list[UUID]:
        found = await predicted_assets.list_predictions(pool, pid, did, where, **kwargs)  # type: ignore[arg-type]
        return [p.prediction_id for p in found]

    assert await page(order=PredictionOrder.MOST_OUTLYING) == [ids[1], ids[2], ids[0], ids[3]]
    assert await page(order=PredictionOrder.LEAST_OUTLYING) == [ids[0], ids[2], ids[1], ids[3]]
    assert await page(order=PredictionOrder.OLDEST) == ids
    assert await page(order=PredictionOrder.NEWEST, limit=2, offset=1) == [ids[2], ids[1]]
    assert (
        await page(PredictionFilter(status=ReviewStatus.TO_REVIEW), order=PredictionOrder.OLDEST) == ids[1:]
    )
    assert await page(PredictionFilter(status=ReviewStatus.REVIEWED)) == [ids[0]]
    assert await page(PredictionFilter(tags=["night"]), order=PredictionOrder.OLDEST) == [ids[1], ids[3]]
    assert await page(
        PredictionFilter(min_outlier_score=0.2, max_outlier_score=0.6), order=PredictionOrder.OLDEST
    ) == [ids[2]]
    now = datetime.now(UTC)
    assert await page(PredictionFilter(created_until=now - timedelta(hours=1))) == []
    assert len(await page(PredictionFilter(created_from=now - timedelta(hours=1)))) == 4
    other = await _world(pool, "other")
    assert await predicted_assets.list_predictions(pool, other.project_id, did) == []


# --- review and submission -----------------------------------------------------------------------


async def test_review_then_submit(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    pid = world.project_id
    prediction_id = await _logged(pool, world, "img")

    with pytest.raises(IllegalTransition, match="TO_REVIEW -> SUBMITTED") as refused:
        await _submit(pool, world, [prediction_id], world.feedback_version_id)
    assert refused.value.prediction_id == prediction_id
    reviewed = await predicted_assets.review(pool, pid, prediction_id, _box("dog"), reviewed_by="ann")
    assert reviewed.status is ReviewStatus.REVIEWED and reviewed.review["classes"] == ["dog"]  # type: ignore[index]
    corrected = await predicted_assets.review(pool, pid, prediction_id, _box("cat"), reviewed_by="bob")
    assert corrected.review["classes"] == ["cat"] and corrected.reviewed_by == "bob"  # type: ignore[index]

    with pytest.raises(NotFound, match="feedback loop"):  # a version outside the deployment's loop
        await _submit(pool, world, [prediction_id], world.dataset_version_id)
    [submission] = await _submit(pool, world, [prediction_id], world.feedback_version_id)
    assert submission.newly_submitted and submission.prediction_id == prediction_id
    stored = await predicted_assets.get_prediction(pool, pid, prediction_id)
    assert stored is not None and stored.status is ReviewStatus.SUBMITTED
    assert stored.submitted_asset_id == submission.asset_id
    assets = await registry.list_assets(pool, pid, world.feedback_version_id)
    assert [a.id for a in assets] == [submission.asset_id]
    assert assets[0].sha256 == stored.image_sha256
    [annotation] = await registry.list_annotations(pool, pid, submission.asset_id)
    assert annotation.shapes == corrected.review and annotation.prediction_id == prediction_id
    assert annotation.created_by == "ann"

    [again] = await _submit(pool, world, [prediction_id], world.feedback_version_id)
    assert (again.newly_submitted, again.asset_id) == (False, submission.asset_id)
    assert len(await registry.list_annotations(pool, pid, submission.asset_id)) == 1
    with pytest.raises(IllegalTransition, match="SUBMITTED -> REVIEWED"):
        await predicted_assets.review(pool, pid, prediction_id, _box(), reviewed_by="ann")
    assert await predicted_assets.set_outlier_score(pool, pid, prediction_id, 0.7)  # scores may arrive late

    other = await _world(pool, "other")
    with pytest.raises(NotFound):
        await predicted_assets.review(pool, other.project_id, prediction_id, _box(), reviewed_by="eve")


async def _in_state(pool: asyncpg.Pool, world: World, status: ReviewStatus) -> UUID:
    prediction_id = await _logged(pool, world, f"img-{uuid4()}")
    if status is not ReviewStatus.TO_REVIEW:
        await predicted_assets.review(pool, world.project_id, prediction_id, _box(), reviewed_by="ann")
    if status is ReviewStatus.SUBMITTED:
        await _submit(pool, world, [prediction_id], world.feedback_version_id)
    return prediction_id


async def _submit(
    pool: asyncpg.Pool, world: World, prediction_ids: list[UUID], dataset_version_id: UUID
) -> list[Submission]:
    return await predicted_assets.submit_reviewed(
        pool, world.project_id, world.deployment_id, prediction_ids, dataset_version_id, submitted_by="ann"
    )


async def test_a_submission_of_many_is_all_or_nothing(pool: asyncpg.Pool) -> None:
    """Many predictions in a fixed number of statements: the new ones submitted, the ones already there
    answered again; one not REVIEWED, or not of the deployment, and nothing changes."""
    world = await _world(pool, f"many-{uuid4().hex[:6]}")
    reviewed = [await _in_state(pool, world, ReviewStatus.REVIEWED) for _ in range(5)]
    submitted = await _in_state(pool, world, ReviewStatus.SUBMITTED)
    pending = await _in_state(pool, world, ReviewStatus.TO_REVIEW)

    for spoiler, error in ((pending, IllegalTransition), (uuid4(), predicted_assets.UnknownPrediction)):
        with pytest.raises(error) as refused:
            await _submit(pool, world, [*reviewed, spoiler], world.feedback_version_id)
        assert refused.value.prediction_id == spoiler
        # Only the asset of the prediction submitted before: nothing of the refused submission stayed.
        assert len(await registry.list_assets(pool, world.project_id, world.feedback_version_id)) == 1
        for prediction_id in reviewed:
            found = await predicted_assets.get_prediction(pool, world.project_id, prediction_id)
            assert found is not None and found.status is ReviewStatus.REVIEWED

    answers = await _submit(pool, world, [submitted, *reviewed], world.feedback_version_id)
    assert [a.prediction_id for a in answers] == [submitted, *reviewed]
    assert [a.newly_submitted for a in answers] == [False] + [True] * 5
    assets = await registry.list_assets(pool, world.project_id, world.feedback_version_id)
    assert {a.id for a in assets} == {a.asset_id for a in answers}
    for answer in answers:
        found = await predicted_assets.get_prediction(pool, world.project_id, answer.prediction_id)
        assert found is not None and found.status is ReviewStatus.SUBMITTED
        assert found.submitted_asset_id == answer.asset_id
        [annotation] = await registry.list_annotations(pool, world.project_id, answer.asset_id)
        assert annotation.prediction_id == answer.prediction_id and annotation.shapes == found.review


REVIEW = '{"type": "detection", "classes": [], "scores": [], "boxes": []}'
T, R, S = ReviewStatus.TO_REVIEW, ReviewStatus.REVIEWED, ReviewStatus.SUBMITTED
# Raw UPDATEs that try each illegal move; $1 is the prediction id, $2 an asset of the feedback version.
ILLEGAL_UPDATES = {
    "TO_REVIEW->REVIEWED without a review": (T, "status = 'REVIEWED'"),
    "TO_REVIEW->TO_REVIEW with a review": (T, f"review = '{REVIEW}', reviewed_at = now()"),
    "TO_REVIEW->SUBMITTED": (
        T,
        f"status = 'SUBMITTED', review = '{REVIEW}', reviewed_at = now(), submitted_at = now(), "
        "submitted_asset_id = $2, submitted_dataset_version_id = (SELECT dataset_version_id FROM assets "
        "WHERE id = $2)",
    ),
    "REVIEWED->TO_REVIEW": (R, "status = 'TO_REVIEW', review = NULL, reviewed_at = NULL"),
    "REVIEWED->SUBMITTED without a dataset version": (R, "status = 'SUBMITTED'"),
    "SUBMITTED->TO_REVIEW": (
        S,
        "status = 'TO_REVIEW', review = NULL, reviewed_at = NULL, submitted_at = NULL, "
        "submitted_asset_id = NULL, submitted_dataset_version_id = NULL",
    ),
    "SUBMITTED->REVIEWED": (
        S,
        "status = 'REVIEWED', submitted_at = NULL, submitted_asset_id = NULL, "
        "submitted_dataset_version_id = NULL",
    ),
    "SUBMITTED->SUBMITTED with a new review": (S, f"review = '{REVIEW}'"),
}


@pytest.mark.parametrize("case", list(ILLEGAL_UPDATES))
async def test_database_refuses_illegal_transitions(pool: asyncpg.Pool, case: str) -> None:
    world = await _world(pool)
    state, assignments = ILLEGAL_UPDATES[case]
    prediction_id = await _in_state(pool, world, state)
    asset = await registry.add_asset(
        pool, world.project_id, world.feedback_version_id, object_key="k", sha256="d" * 64, width=1, height=1
    )
    with pytest.raises(asyncpg.CheckViolationError, match="illegal review transition"):
        await pool.execute(
            f"UPDATE predicted_assets SET {assignments} WHERE prediction_id = $1 AND $2::uuid IS NOT NULL",
            prediction_id,
            asset.id,
        )
    assert (await predicted_assets.get_prediction(pool, world.project_id, prediction_id)).status is state  # type: ignore[union-attr]


async def test_database_allows_the_legal_moves(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    prediction_id = await _in_state(pool, world, T)
    await pool.execute(
        f"UPDATE predicted_assets SET status = 'REVIEWED', review = '{REVIEW}', reviewed_at = now() "
        "WHERE prediction_id = $1",
        prediction_id,
    )
    await pool.execute(  # a corrected review
        "UPDATE predicted_assets SET review = $2, reviewed_at = now() WHERE prediction_id = $1",
        prediction_id,
        _box().model_dump(mode="json"),
    )
    asset = await registry.add_asset(
        pool, world.project_id, world.feedback_version_id, object_key="k", sha256="d" * 64, width=1, height=1
    )
    await pool.execute(
        "UPDATE predicted_assets SET status = 'SUBMITTED', submitted_dataset_version_id = $2, "
        "submitted_asset_id = $3, submitted_at = now() WHERE prediction_id = $1",
        prediction_id,
        world.feedback_version_id,
        asset.id,
    )
    assert (await predicted_assets.get_prediction(pool, world.project_id, prediction_id)).status is S  # type: ignore[union-attr]


# --- jobs and idempotent effects -----------------------------------------------------------------


async def test_jobs_runs_and_logs(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    pid = world.project_id
    job, run, created = await jobs.create_job(
        pool,
        pid,
        JobKind.REFERENCE,
        target_type=TargetType.DATASET_VERSION,
        target_id=world.dataset_version_id,
        request_id="reference:1",
    )
    assert created and run.status is RunStatus.PENDING and run.attempt == 1
    same, same_run, created = await jobs.create_job(
        pool,
        pid,
        JobKind.REFERENCE,
        target_type=TargetType.DATASET_VERSION,
        target_id=world.dataset_version_id,
        request_id="reference:1",
    )
    assert (same.id, same_run.id, created) == (job.id, run.id, False)

    with pytest.raises(Conflict, match="pending"):
        await jobs.finish_run(pool, pid, run.id, RunStatus.SUCCEEDED)
    running = await jobs.start_run(pool, pid, run.id)
    assert running.status is RunStatus.RUNNING and running.started_at is not None
    with pytest.raises(Conflict):
        await jobs.rerun(pool, pid, job.id)
    await jobs.append_logs(pool, pid, run.id, [(0, "loading"), (1, "computing")])
    await jobs.append_logs(pool, pid, run.id, [(1, "computing"), (2, "done")])  # a re-sent line
    assert [line.line for line in await jobs.read_logs(pool, pid, run.id)] == ["loading", "computing", "done"]
    assert [line.sequence for line in await jobs.read_logs(pool, pid, run.id, after=0)] == [1, 2]
    failed = await jobs.finish_run(pool, pid, run.id, RunStatus.FAILED, reason="out of memory")
    assert (failed.status, failed.reason) == (RunStatus.FAILED, "out of memory")
    second = await jobs.rerun(pool, pid, job.id)
    assert second.attempt == 2
    assert [r.id for r in await jobs.list_runs(pool, pid, job.id)] == [run.id, second.id]

    other = await _world(pool, "other")
    assert await jobs.get_job(pool, other.project_id, job.id) is None
    assert await jobs.read_logs(pool, other.project_id, run.id) == []
    with pytest.raises(NotFound):
        await jobs.start_run(pool, other.project_id, second.id)
    with pytest.raises(NotFound):
        await jobs.append_logs(pool, other.project_id, run.id, [(9, "x")])


async def test_claim_event_once_per_consumer(pool: asyncpg.Pool) -> None:
    event_id = uuid4()
    async with pool.acquire() as conn:
        assert await claim_event(conn, "feedback-counter", event_id)
        assert not await claim_event(conn, "feedback-counter", event_id)
        assert await claim_event(conn, "persistence", event_id)
        with pytest.raises(RuntimeError):  # a failed effect leaves the event unclaimed
            async with conn.transaction():
                assert await claim_event(conn, "rollback", event_id)
                raise RuntimeError("effect failed")
        assert await claim_event(conn, "rollback", event_id)


async def test_a_review_must_fit_the_deployment_and_the_image(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    prediction_id = await _logged(pool, world, "img")
    wrong_type = ClassificationPrediction(classes=["dog"], scores=[1.0])
    with pytest.raises(
        ValueError, match=r"review\.type is classification but the deployment detects detection"
    ):
        await predicted_assets.review(pool, world.project_id, prediction_id, wrong_type, reviewed_by="ann")
    outside = DetectionPrediction(boxes=[(0, 0, 10_000, 10)], classes=["dog"], scores=[1.0])
    with pytest.raises(ValueError, match=r"review\.boxes\[0\] leaves the"):
        await predicted_assets.review(pool, world.project_id, prediction_id, outside, reviewed_by="ann")
    stored = await predicted_assets.get_prediction(pool, world.project_id, prediction_id)
    assert stored is not None and stored.status is ReviewStatus.TO_REVIEW


async def test_stored_scores_are_logits_becomes_the_logits_output_format(pool: asyncpg.Pool) -> None:
    world = await _world(pool)
    stored = {"width": 8, "height": 8, "scores_are_logits": True}  # as versions were stored before 0009
    plain = {"width": 8, "height": 8, "scores_are_logits": False}
    [migration] = [m for m in discover() if m.version == 9]
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE model_versions SET io = $1 WHERE id = $2",
            stored,
            world.model_version_id,
        )
        other = await conn.fetchval(
            "INSERT INTO model_versions (project_id, model_id, version, detection_type, io)"
            " SELECT project_id, model_id, '2', detection_type, $1 FROM model_versions WHERE id = $2"
            " RETURNING id",
            plain,
            world.model_version_id,
        )
        await conn.execute(migration.sql)
    logits = await registry.get_model_version(pool, world.project_id, world.model_version_id)
    softmax = await registry.get_model_version(pool, world.project_id, other)
    assert logits is not None and logits.io is not None and logits.io.output_format == "logits"
    assert softmax is not None and softmax.io is not None and softmax.io.output_format is None
