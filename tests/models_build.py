"""Builds real detectors and segmenters with the frameworks' own code, exports each to ONNX as
docs/models.md says, and saves the framework's own postprocessed answer on the given images: what
tests/integration/test_real_models.py serves through tritonserver and compares with.

Runs in the torch environment (scripts/install_torch.sh), never in .venv, and downloads nothing: the
models are built from their definitions with random weights (`weights=None, weights_backbone=None`,
ultralytics' model yaml files), seeded. Random heads score low and alike, so each model's answer is
taken at a low threshold and the threshold the test deploys with is chosen here, in a wide gap between
neighbouring scores: a float difference between runtimes cannot move a detection across it, and
filtering an NMS output by a higher threshold equals suppressing above that threshold.

    python tests/models_build.py OUT_DIR IMAGES_DIR

IMAGES_DIR holds `<width>x<height>-<n>.png` images: 320x320 for torchvision's models (the size they are
exported at), 640x480 for ultralytics' (letterboxed into 640x640: 80 rows of padding above and below,
no scaling, so no resampling differs between ultralytics and cvloop). OUT_DIR receives `<name>.onnx`,
`<name>.npz` (per image i: `boxes_i` x1, y1, x2, y2 in the image's pixels, `scores_i`, `classes_i`
index into the labelmap, for segmenters `masks_i` (N, H, W) booleans over the image) and
`manifest.json` (by name: output format, detection type, input side, image size, labels, threshold,
gap, versions)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.models import detection
from torchvision.transforms.functional import to_tensor

SEED = 0
TORCHVISION_CLASSES = 5  # the background and 4 classes: random heads then score well above 1 / 91
TORCHVISION_SIDE = 320
TORCHVISION_IMAGE = (320, 320)  # width, height
YOLO_SIDE = 640
YOLO_IMAGE = (640, 480)
PER_IMAGE = 12  # detections the chosen threshold keeps per image, about
IOU_THRESHOLD = 0.45  # the io's default
MAX_DETECTIONS = 300  # the io's default, and YOLOv10's fixed count


def _images(folder: Path, size: tuple[int, int]) -> list[np.ndarray]:
    paths = sorted(folder.glob(f"{size[0]}x{size[1]}-*.png"), key=lambda p: int(p.stem.split("-")[1]))
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def _threshold(scores: list[np.ndarray], cap: int) -> tuple[float, float]:
    """A threshold keeping about PER_IMAGE detections an image, in the widest gap between neighbouring
    scores around there; and that gap. Above the lowest score of any answer the model cut at `cap`
    detections: near that cut, equal scores fall either side of it depending on the runtime."""
    floor = max((float(s.min()) for s in scores if len(s) >= cap), default=-np.inf)
    ranked = np.sort(np.concatenate(scores))[::-1].astype(np.float64)
    ranked = ranked[ranked > floor]
    target = PER_IMAGE * len(scores)
    low, high = target // 2, min(2 * target, len(ranked) - 1)
    if high <= low:
        raise SystemExit(f"only {len(ranked)} detections on {len(scores)} images: too few to choose")
    gaps = ranked[low:high] - ranked[low + 1 : high + 1]
    at = low + int(np.argmax(gaps))
    return float((ranked[at] + ranked[at + 1]) / 2), float(gaps.max())


def _calibrated(model: torch.nn.Module, run: Callable[[], object]) -> None:
    """Sets the batch norms' running statistics to those of one `run` over the images, then evaluates.
    Freshly initialised, they hold mean 0 and variance 1, and PyTorch's default convolution init shrinks
    activations layer by layer, so a deep untrained network answers the same for every image; with its
    statistics measured, as training would, its answer depends on the image."""
    model.eval()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: one run sets them
        norm.train()
    with torch.no_grad():
        run()
    model.eval()


def _kept(answers: list[dict[str, np.ndarray]], threshold: float) -> dict[str, np.ndarray]:
    arrays = {}
    for i, answer in enumerate(answers):
        keep = answer["scores"] >= threshold
        for key, value in answer.items():
            arrays[f"{key}_{i}"] = value[keep]
    return arrays


def _torchvision(
    out: Path, images: Path, name: str, build: Callable[..., torch.nn.Module], **options: Any
) -> dict[str, Any]:
    torch.manual_seed(SEED)
    model = build(weights=None, weights_backbone=None, num_classes=TORCHVISION_CLASSES, **options)
    pictures = _images(images, TORCHVISION_IMAGE)
    _calibrated(model, lambda: model([to_tensor(p) for p in pictures]))
    masks = isinstance(model, detection.MaskRCNN)
    example = torch.rand(3, TORCHVISION_SIDE, TORCHVISION_SIDE)
    with torch.no_grad():
        # The exporter names the answer's tensors in its dict's order, which differs by model (SSD's:
        # boxes, scores, labels): named as the model orders them, each tensor gets its own name.
        outputs = list(model([example])[0])
    # The recipe of docs/models.md: one batch-less (3, H, W) image in [0, 1] at the size served.
    torch.onnx.export(
        model,
        ([example],),
        str(out / f"{name}.onnx"),
        opset_version=17,
        input_names=["images"],
        output_names=outputs,
        dynamo=False,
    )
    answers = []
    with torch.no_grad():
        for pixels in pictures:
            found = model([to_tensor(pixels)])[0]
            answer = {
                "boxes": found["boxes"].numpy(),
                "scores": found["scores"].numpy(),
                "classes": found["labels"].numpy(),
            }
            if masks:
                answer["masks"] = found["masks"][:, 0].numpy() > 0.5
            answers.append(answer)
    # The most detections the model answers: SSD's own setting, the R-CNNs' their ROI heads'.
    cap = getattr(model, "detections_per_img", None) or model.roi_heads.detections_per_img
    threshold, gap = _threshold([a["scores"] for a in answers], cap)
    np.savez_compressed(out / f"{name}.npz", **_kept(answers, threshold))
    return {
        "output_format": "torchvision",
        "detection_type": "segmentation" if masks else "detection",
        "side": TORCHVISION_SIDE,
        "image": TORCHVISION_IMAGE,
        "labels": ["__background__", *(f"class-{i}" for i in range(1, TORCHVISION_CLASSES))],
        "threshold": threshold,
        "gap": gap,
    }


def _yolo(out: Path, images: Path, name: str, definition: str, output_format: str) -> dict[str, Any]:
    from ultralytics import YOLO
    from ultralytics.utils.ops import scale_masks

    torch.manual_seed(SEED)
    model = YOLO(definition)  # built from the model's yaml: random weights, nothing downloaded
    pictures = _images(images, YOLO_IMAGE)
    batch = torch.stack([to_tensor(p) for p in pictures])
    _calibrated(model.model, lambda: model.model(batch))
    # The recipe of docs/models.md; the file lands beside the definition's stem, in the working folder.
    exported = model.export(format="onnx", imgsz=YOLO_SIDE, opset=17, dynamic=False, nms=False)
    Path(exported).rename(out / f"{name}.onnx")
    if output_format == "nms_free":
        # Ultralytics' torch model and its export disagree on which (box, class) pairs near its top-k cut
        # an end-to-end head answers; the export's are what is served: ultralytics reads its ONNX file.
        model = YOLO(out / f"{name}.onnx", task="detect")
    answers = []
    for pixels in pictures:
        # Ultralytics reads BGR arrays; conf 0: every candidate, the threshold is chosen below; rect
        # off: letterboxed to the square the export takes, not to the smallest multiple of the stride.
        found = model.predict(
            pixels[..., ::-1].copy(),
            imgsz=YOLO_SIDE,
            rect=False,
            conf=0.0,
            iou=IOU_THRESHOLD,
            max_det=MAX_DETECTIONS,
            verbose=False,
        )[0]
        answer = {
            "boxes": found.boxes.xyxy.numpy(),
            "scores": found.boxes.conf.numpy(),
            "classes": found.boxes.cls.numpy().astype(np.int64),
        }
        if found.masks is not None:  # over the letterboxed input: its own scale_masks cuts the padding
            masks = scale_masks(found.masks.data[None].float(), pixels.shape[:2])[0]
            answer["masks"] = masks.numpy() > 0.5
        answers.append(answer)
    threshold, gap = _threshold([a["scores"] for a in answers], MAX_DETECTIONS)
    np.savez_compressed(out / f"{name}.npz", **_kept(answers, threshold))
    return {
        "output_format": output_format,
        "detection_type": "segmentation" if output_format == "yolo_seg" else "detection",
        "side": YOLO_SIDE,
        "image": YOLO_IMAGE,
        "labels": [model.names[i] for i in range(len(model.names))],
        "threshold": threshold,
        "gap": gap,
    }


def main(out: Path, images: Path) -> None:
    os.chdir(out)  # ultralytics writes its export beside the definition's stem
    built = {
        "fasterrcnn-mobilenet": _torchvision(
            out, images, "fasterrcnn-mobilenet", detection.fasterrcnn_mobilenet_v3_large_320_fpn
        ),
        "ssdlite": _torchvision(out, images, "ssdlite", detection.ssdlite320_mobilenet_v3_large),
        "maskrcnn": _torchvision(
            out,
            images,
            "maskrcnn",
            detection.maskrcnn_resnet50_fpn,
            min_size=TORCHVISION_SIDE,
            max_size=TORCHVISION_SIDE,
        ),
        "yolov8n": _yolo(out, images, "yolov8n", "yolov8n.yaml", "yolo_raw"),
        "yolov8n-seg": _yolo(out, images, "yolov8n-seg", "yolov8n-seg.yaml", "yolo_seg"),
        "yolov10n": _yolo(out, images, "yolov10n", "yolov10n.yaml", "nms_free"),
    }
    import ultralytics

    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    versions["ultralytics"] = ultralytics.__version__
    for entry in built.values():
        entry["versions"] = versions
    (out / "manifest.json").write_text(json.dumps(built, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
