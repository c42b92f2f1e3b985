"""Replay before going live, on a local stack of its own (Postgres, the local Kafka-protocol broker,
SeaweedFS S3, tritonserver with the python backend, and `python -m services.serving`):

- baseline: the K reviewed images sent one after the other to `POST /v1/deployments/{id}/predict` of a
  deployment whose champion is the digits MLP (decode, preprocessing, Triton, postprocessing, answer);
- the replay: the MLP set as shadow of a deployment holding the same K images as reviewed predictions,
  from the `shadow_set` event to the replay's row `done` (each image read from S3, run through the same
  call, its answer written to Postgres), polled every 20 ms.

Prints both times, the ratio replay / baseline, and how many replayed answers equal the live answers
(classes and scores) of the same model on the same images.

Usage: .venv/bin/python -m bench.shadow_replay [--reviews 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from uuid import UUID, uuid4

import aiohttp

from bench.local_stack import local_stack
from cvloop.demo import registration
from cvloop.demo import seed as demo
from cvloop.demo.digits import digit_label, digit_png, train_mlp_classifier
from schemas.events import DeploymentChange, DeploymentKind, PredictionLogged, PredictionSource, RoleResult
from schemas.local_stack import LOCAL_HOST
from schemas.predictions import ClassificationPrediction, DetectionType
from schemas.topics import Topic
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments, predicted_assets
from services.common.domain.images import decode_image
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore
from services.common.storage.images import store_image

COMPONENTS = ["postgres", "kafka", "s3", "triton", "serving"]


async def run(settings: Settings, reviews: int) -> None:
    served = await demo.seed(settings)
    db = await open_pool(settings.database_url, max_size=2)
    store = ObjectStore.from_settings(settings)
    pngs = [digit_png(i) for i in range(reviews)]
    try:
        mlp = await registration.register_onnx_model(
            db, store, served.project_id, "digits-mlp", "1", train_mlp_classifier(),
            DetectionType.CLASSIFICATION, None,
        )  # fmt: skip

        async def deploy(name: str, champion: UUID) -> UUID:
            deployment = await deployments.create_deployment(
                db,
                served.project_id,
                f"{name}-{uuid4().hex[:6]}",
                kind=DeploymentKind.SERVED,
                detection_type=DetectionType.CLASSIFICATION,
                champion_model_version_id=champion,
            )
            await producer.publish(Topic.DEPLOYMENTS, deployment.updated_event(DeploymentChange.CREATED))
            return deployment.id

        async with EventProducer.from_settings(settings) as producer:
            live = await deploy("live-mlp", mlp)
            replayed = await deploy("replayed", served.model_version_id)
            ids = []
            for index, png in enumerate(pngs):
                label = digit_label(index)
                event = PredictionLogged(
                    deployment_id=replayed,
                    prediction_id=uuid4(),
                    detection_type=DetectionType.CLASSIFICATION,
                    image=await store_image(store, png, decode_image(png, len(png))),
                    champion=RoleResult(
                        model_version_id=served.model_version_id,
                        prediction=ClassificationPrediction(classes=[label], scores=[1.0]),
                        latency_ms=1.0,
                    ),
                    source=PredictionSource.SERVING,
                    predicted_at=datetime.now(UTC),
                )
                await predicted_assets.insert_prediction(db, served.project_id, event)
                truth = ClassificationPrediction(classes=[label], scores=[1.0])
                await predicted_assets.review(
                    db, served.project_id, event.prediction_id, truth, reviewed_by="b"
                )
                ids.append(event.prediction_id)

            headers = {"Authorization": f"Bearer {served.api_key}", "Content-Type": "image/png"}
            url = f"http://{LOCAL_HOST}:{settings.serving_port}/v1/deployments/{live}/predict"
            async with aiohttp.ClientSession(headers=headers) as http:
                async with asyncio.timeout(120):  # the deployment arrives through the deployments topic
                    while True:
                        async with http.post(url, data=pngs[0]) as response:
                            if response.status == 200:
                                break
                        await asyncio.sleep(0.2)
                answers = []
                started = time.perf_counter()
                for png in pngs:
                    async with http.post(url, data=png) as response:
                        answers.append((await response.json())["prediction"])
                baseline_s = time.perf_counter() - started

            deployment = await deployments.set_shadow(db, served.project_id, replayed, mlp)
            started = time.perf_counter()
            await producer.publish(Topic.DEPLOYMENTS, deployment.updated_event(DeploymentChange.SHADOW_SET))
            async with asyncio.timeout(300):
                while True:
                    status = await db.fetchval(
                        "SELECT status FROM shadow_replays WHERE deployment_id = $1", replayed
                    )
                    if status in ("done", "failed"):
                        break
                    await asyncio.sleep(0.02)
            replay_s = time.perf_counter() - started

        rows = {
            r["prediction_id"]: r["shadow_prediction"]
            for r in await db.fetch(
                "SELECT prediction_id, shadow_prediction FROM predicted_assets WHERE deployment_id = $1",
                replayed,
            )
        }
        same = sum(
            rows[i] is not None
            and rows[i]["classes"] == a["classes"]
            and all(abs(x - y) <= 1e-6 for x, y in zip(rows[i]["scores"], a["scores"], strict=True))
            for i, a in zip(ids, answers, strict=True)
        )
    finally:
        await db.close()
    print(f"baseline: {reviews} live predict requests, one at a time: {baseline_s:.2f} s "
          f"({baseline_s / reviews * 1000:.1f} ms each)")  # fmt: skip
    print(f"replay:   shadow_set to done over {reviews} reviewed images: {replay_s:.2f} s "
          f"({replay_s / reviews * 1000:.1f} ms each)")  # fmt: skip
    print(f"ratio replay / baseline: {replay_s / baseline_s:.2f}")
    print(f"replayed answers equal to the live ones: {same}/{reviews}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reviews", type=int, default=200)
    args = parser.parse_args()
    with local_stack("shadow-replay", COMPONENTS) as settings:
        asyncio.run(run(settings, args.reviews))


if __name__ == "__main__":
    main()
