"""Reference postprocessing for the detection and segmentation output formats, written box by box from
the formats' definitions (no code shared with serving's vectorised version), and the letterbox's
inverse from its definition: what the tests compare serving's answers with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage


@dataclass
class Detection:
    box: np.ndarray  # x1, y1, x2, y2 in input pixels
    score: float
    cls: int
    anchor: int = -1


def iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union > 0 else 0.0


def nms(candidates: list[Detection], iou_threshold: float, limit: int) -> list[Detection]:
    """Greedy NMS one class at a time, box by box; the kept, best score first, at most `limit`."""
    kept: list[Detection] = []
    for cls in {c.cls for c in candidates}:
        chosen: list[Detection] = []
        for candidate in sorted((c for c in candidates if c.cls == cls), key=lambda c: -c.score):
            if all(iou(candidate.box, other.box) <= iou_threshold for other in chosen):
                chosen.append(candidate)
        kept += chosen
    return sorted(kept, key=lambda c: -c.score)[:limit]


def yolo(
    rows: np.ndarray, classes: int, objectness: bool, threshold: float, iou_threshold: float, limit: int
) -> list[Detection]:
    """Features-first rows (cx, cy, w, h, [objectness], class scores...), anchor by anchor."""
    candidates = []
    for anchor in range(rows.shape[1]):
        column = rows[:, anchor].astype(np.float64)
        scores = column[5 : 5 + classes] * column[4] if objectness else column[4 : 4 + classes]
        cls = int(np.argmax(scores))
        if scores[cls] >= threshold:
            cx, cy, w, h = column[:4]
            box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            candidates.append(Detection(box, float(scores[cls]), cls, anchor))
    return nms(candidates, iou_threshold, limit)


@dataclass(frozen=True)
class Letterbox:
    """The letterbox of a width x height image into a size x size input, from its definition."""

    width: int
    height: int
    size: int

    @property
    def resized(self) -> tuple[int, int]:
        scale = min(self.size / self.width, self.size / self.height)
        return round(self.width * scale), round(self.height * scale)

    @property
    def pad(self) -> tuple[int, int]:
        w, h = self.resized
        return (self.size - w) // 2, (self.size - h) // 2

    def box_to_original(self, box: np.ndarray) -> np.ndarray:
        (w, h), (px, py) = self.resized, self.pad
        x1, y1, x2, y2 = box
        sx, sy = w / self.width, h / self.height
        out = np.array([(x1 - px) / sx, (y1 - py) / sy, (x2 - px) / sx, (y2 - py) / sy])
        return np.clip(out, 0, [self.width, self.height, self.width, self.height])

    def mask_to_original(self, mask: np.ndarray) -> np.ndarray:
        """A mask over the input (at the input's size) -> over the original image (nearest)."""
        (w, h), (px, py) = self.resized, self.pad
        region = Image.fromarray(mask[py : py + h, px : px + w].astype(np.uint8) * 255)
        return np.asarray(region.resize((self.width, self.height), Image.NEAREST)) > 127


def largest_region(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return mask
    return labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))


def rasterised(polygon: list[list[float]] | list[tuple[float, float]], width: int, height: int) -> np.ndarray:
    image = Image.new("1", (width, height))
    ImageDraw.Draw(image).polygon([tuple(p) for p in polygon], fill=1)
    return np.asarray(image)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0
