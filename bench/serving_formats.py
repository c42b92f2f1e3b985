"""Serving per output format, on a local stack of its own: each architecture of cvloop.demo.architectures
(YOLOv8, YOLOv5, NMS-free, YOLOv8-seg, torchvision Mask R-CNN layouts) deployed and called

- (a) directly: a tritonclient gRPC call of its Triton model with the input tensor made beforehand;
- (b) through the gateway: `POST /v1/deployments/{id}/predict` with a 480x360 PNG (decode, letterbox
  or resize, Triton, decoding, NMS, polygons, the answer; the event goes out in the background);

p50 at concurrency 1 and throughput at 16, and the ratios b/a.

Usage: .venv/bin/python -m bench.serving_formats [--requests 100] [--warmup 10]
"""

from __future__ import annotations

import argparse
import asyncio
import io

import aiohttp
import numpy as np
import tritonclient.grpc.aio as grpcaio
from PIL import Image, ImageDraw
from tritonclient.grpc import InferInput, InferRequestedOutput

from bench.local_stack import local_stack
from bench.serving import COMPONENTS, Figures, measure
from cvloop.demo import architectures
from cvloop.demo.architectures import Architecture
from cvloop.demo.registration import find_or_create_labelmap, register_onnx_model
from schemas.events import DeploymentChange, DeploymentKind
from schemas.local_stack import LOCAL_HOST
from schemas.topics import Topic
from schemas.vocabulary import Scope
from services.common.db.pool import open_pool
from services.common.db.repositories import deployments, projects
from services.common.domain.model_signature import read_signature
from services.common.domain.preprocess import preprocess
from services.common.kafka.producer import EventProducer
from services.common.settings import Settings
from services.common.storage import ObjectStore
from services.serving.model_config import triton_model_name

THRESHOLD = 0.25
BUILDERS = (
    architectures.yolov8,
    architectures.yolov5,
    architectures.nms_free,
    architectures.yolov8_seg,
    architectures.torchvision_mask_rcnn,
)


def picture() -> bytes:
    """A 480x360 PNG: a gradient with a few shapes."""
    ys, xs = np.mgrid[:360, :480]
    image = Image.fromarray(
        np.stack([xs * 255 // 480, ys * 255 // 360, (xs + ys) % 256], -1).astype(np.uint8)
    )
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 40, 220, 200), fill=(200, 30, 30))
    draw.rectangle((260, 120, 420, 320), fill=(20, 160, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def deploy(settings: Settings, built: list[Architecture]) -> tuple[str, dict[str, tuple[str, str]]]:
    """Each architecture registered and deployed (served): the key, and each one's deployment id and
    Triton model name."""
    db = await open_pool(settings.database_url, max_size=2)
    store = ObjectStore.from_settings(settings)
    try:
        project = await projects.create_project(db, "bench-formats")
        _, key = await projects.create_api_key(db, project.id, "bench", [Scope.READ, Scope.WRITE])
        found = {}
        async with EventProducer.from_settings(settings) as producer:
            for arch in built:
                labelmap = await find_or_create_labelmap(db, project.id, arch.name, arch.labels)
                version = await register_onnx_model(
                    db, store, project.id, arch.name, "1", arch, arch.detection_type, labelmap
                )
                deployment = await deployments.create_deployment(
                    db,
                    project.id,
                    arch.name,
                    kind=DeploymentKind.SERVED,
                    detection_type=arch.detection_type,
                    champion_model_version_id=version,
                    confidence_threshold=THRESHOLD,
                )
                await producer.publish(Topic.DEPLOYMENTS, deployment.updated_event(DeploymentChange.CREATED))
                found[arch.name] = (str(deployment.id), triton_model_name(version))
    finally:
        await db.close()
    return key, found


async def run(settings: Settings, requests: int, warmup: int) -> None:
    built = [build() for build in BUILDERS]
    key, deployed = await deploy(settings, built)
    png = picture()
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    triton = grpcaio.InferenceServerClient(settings.triton_grpc_url)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "image/png"}
    base = f"http://{LOCAL_HOST}:{settings.serving_port}/v1/deployments"
    rows = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32), headers=headers) as http:
        for arch in built:
            deployment, model = deployed[arch.name]
            signature = read_signature(arch.onnx)
            tensor = preprocess(pixels, arch.io)
            if len(signature.inputs[0].shape) == 3:
                tensor = tensor[0]
            outputs = [InferRequestedOutput(o.name) for o in signature.outputs]

            async def direct(
                _: int, tensor: np.ndarray = tensor, model: str = model, outputs: list = outputs
            ) -> None:
                request = InferInput("images", list(tensor.shape), "FP32")
                request.set_data_from_numpy(tensor)
                await triton.infer(model, [request], outputs=outputs)

            async def gateway(_: int, url: str = f"{base}/{deployment}/predict") -> None:
                async with http.post(url, data=png) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")

            async with asyncio.timeout(300):  # the deployment arrives through the deployments topic
                while True:
                    async with http.post(f"{base}/{deployment}/predict", data=png) as response:
                        if response.status == 200:
                            break
                    await asyncio.sleep(0.5)
            figures: dict[tuple[str, int], Figures] = {}
            for concurrency in (1, 16):
                for name, call in (("direct", direct), ("gateway", gateway)):
                    await measure(call, warmup, concurrency)
                    figures[name, concurrency] = await measure(call, requests, concurrency)
                    print(
                        f"{arch.name:<21} {name:<8} c={concurrency:<3} {figures[name, concurrency]}",
                        flush=True,
                    )
            rows.append((arch.name, figures))
    await triton.close()
    print()
    print(
        f"{'format':<21} {'direct p50':>11} {'gateway p50':>12} {'b/a':>5} "
        f"{'direct/s c16':>13} {'gateway/s c16':>14} {'b/a':>5}"
    )
    for name, f in rows:
        a1, b1, a16, b16 = f["direct", 1], f["gateway", 1], f["direct", 16], f["gateway", 16]
        print(
            f"{name:<21} {a1.p50_ms:>8.1f} ms {b1.p50_ms:>9.1f} ms {b1.p50_ms / a1.p50_ms:>5.2f} "
            f"{a16.per_s:>13.1f} {b16.per_s:>14.1f} {b16.per_s / a16.per_s:>5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=100, help="measured requests per case and concurrency"
    )
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    with local_stack("serving-formats", COMPONENTS) as settings:
        asyncio.run(run(settings, args.requests, args.warmup))


if __name__ == "__main__":
    main()
