"""Binary masks -> polygons (pure): the outer boundary of the mask's largest connected region, traced
pixel by pixel, then simplified (Douglas-Peucker) to at most a given number of points."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

Mask = npt.NDArray[np.bool_]
Points = npt.NDArray[np.float64]
Raster = tuple[int, int, Mask]  # x0, y0 and the pixels inside, mask[x, y] being pixel (x0 + x, y0 + y)

# The 8 neighbours as (dy, dx), clockwise (in image coordinates, y down) starting west.
_AROUND = ((0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1))


def _largest_region(mask: Mask) -> Mask:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def _trace(region: Mask) -> list[tuple[int, int]]:
    """Moore-neighbour tracing of the region's outer boundary, as (y, x) pixels, clockwise (on the
    flattened padded mask: integer steps are what a Python loop does fastest)."""
    padded = np.pad(region, 1)
    row = padded.shape[1]
    cells = padded.ravel().tolist()
    steps = [dy * row + dx for dy, dx in _AROUND]
    direction_of = {step: i for i, step in enumerate(steps)}
    start = cells.index(True)  # the first pixel in raster order: its west is outside
    boundary = [start]
    current, backtrack = start, 0  # backtrack: the direction (from current) of the last outside pixel
    first_step = -1
    for _ in range(4 * int(region.sum()) + 8):  # each boundary pixel is entered at most 4 times
        for turn in range(1, 9):
            direction = (backtrack + turn) % 8
            candidate = current + steps[direction]
            if cells[candidate]:
                break
        else:
            break  # a single pixel
        if current == start and candidate == first_step:
            break
        if first_step < 0:
            first_step = candidate
        # The pixel checked just before `candidate` was outside: seen from `candidate`, the new backtrack.
        backtrack = direction_of[current + steps[(direction - 1) % 8] - candidate]
        current = candidate
        boundary.append(current)
    if len(boundary) > 1 and boundary[-1] == start:
        boundary.pop()
    return [(index // row - 1, index % row - 1) for index in boundary]


def _douglas_peucker(points: Points, tolerance: float) -> Points:
    """The open polyline's points that stay within `tolerance` of it (first and last kept)."""
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        a, b = points[first], points[last]
        segment = b - a
        between = points[first + 1 : last] - a
        length = float(np.hypot(*segment))
        if length == 0.0:
            distances = np.hypot(between[:, 0], between[:, 1])
        else:
            distances = np.abs(segment[0] * between[:, 1] - segment[1] * between[:, 0]) / length
        farthest = int(np.argmax(distances))
        if distances[farthest] > tolerance:
            middle = first + 1 + farthest
            keep[middle] = True
            stack += [(first, middle), (middle, last)]
    return points[keep]


def simplify(ring: Points, max_points: int) -> Points:
    """A closed ring with at most `max_points` points (at least 3), its tolerance doubled from half a
    pixel until it fits."""
    if len(ring) <= max_points:
        return ring
    # Split the ring at the point farthest from its first, so each half is an open polyline.
    far = int(np.argmax(np.hypot(*(ring - ring[0]).T)))
    halves = (ring[: far + 1], np.concatenate([ring[far:], ring[:1]]))
    tolerance = 0.5
    while True:
        first, second = (_douglas_peucker(half, tolerance) for half in halves)
        simplified = np.concatenate([first, second[1:-1]])
        if len(simplified) <= max_points:
            return simplified
        tolerance *= 2


def mask_polygon(mask: Mask, max_points: int) -> Points | None:
    """The polygon (K, 2) of x, y in mask pixels around the mask's largest region, through the boundary
    pixels' centres; None when the mask is empty or too thin to enclose an area."""
    if not mask.any():
        return None
    boundary = _trace(_largest_region(mask))
    if len(boundary) < 3:
        return None
    ring = np.asarray(boundary, dtype=np.float64)[:, ::-1] + 0.5
    x, y = ring.T
    if np.dot(x, np.roll(y, 1)) == np.dot(y, np.roll(x, 1)):  # the shoelace: no area (a line of pixels)
        return None
    return simplify(ring, max_points)


# pycocotools' polygon rasterisation (maskApi.c, rleFrPoly), reproduced so mask IoU equals its `segm`
# figures: the outline is walked on a grid 5 times finer, each pixel column's centre crossing marks the
# first pixel inside (or outside) below it, and a column's pixels are inside between its marks. Every
# polygon of a call is walked in one pass of array operations: one polygon at a time, numpy's per-call
# cost would be most of the time.
_UPSAMPLE = 5


def _cyclic(owner: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each vertex's previous and next vertex in its own polygon (vertices grouped by `owner`)."""
    index = np.arange(len(owner))
    first = np.searchsorted(owner, owner, side="left")
    last = np.searchsorted(owner, owner, side="right") - 1
    previous = np.where(index == first, last, index - 1)
    following = np.where(index == last, first, index + 1)
    return previous, following


def _outline(
    fine: npt.NDArray[np.int64], owner: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The closed outlines' points on the fine grid, edge by edge (each edge's ends included), as
    rleFrPoly steps them: along the longer axis, the other rounded half up; with each point's polygon."""
    previous, _ = _cyclic(owner)
    keep = np.any(fine != fine[previous], axis=1)  # a repeated vertex: an edge of no length
    kept_any = np.bincount(owner, weights=keep) > 0
    keep[np.searchsorted(owner, np.flatnonzero(~kept_any))] = True  # one point repeated: keep it once
    fine, owner = fine[keep], owner[keep]
    _, following = _cyclic(owner)
    start, end = fine, fine[following]
    dx, dy = np.abs(end[:, 0] - start[:, 0]), np.abs(end[:, 1] - start[:, 1])
    along_x = dx >= dy
    flip = (along_x & (start[:, 0] > end[:, 0])) | (~along_x & (start[:, 1] > end[:, 1]))
    start, end = np.where(flip[:, None], end, start), np.where(flip[:, None], start, end)
    steps = np.maximum(dx, dy)
    slope = np.where(along_x, end[:, 1] - start[:, 1], end[:, 0] - start[:, 0]) / np.maximum(steps, 1)
    counts = steps + 1
    # Per point from per edge by np.repeat (contiguous copies, cheaper than gathers by edge index).
    major = np.where(along_x, start[:, 0], start[:, 1])  # the stepped coordinate's start
    minor = np.where(along_x, start[:, 1], start[:, 0]).astype(np.float64)
    d = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    t = np.where(np.repeat(flip, counts), np.repeat(steps, counts) - d, d)
    stepped = t + np.repeat(major, counts)
    rounded = np.floor(np.repeat(minor, counts) + np.repeat(slope, counts) * t + 0.5).astype(np.int64)
    x_major = np.repeat(along_x, counts)
    return np.where(x_major, stepped, rounded), np.where(x_major, rounded, stepped), np.repeat(owner, counts)


_BATCH = 256  # polygons walked together: enough to share numpy's per-call cost, few enough for the cache


def rasterise(polygons: list[Points]) -> list[Raster]:
    """Per polygon, (x0, y0, mask) of the pixels inside it as pycocotools counts them; mask[x, y] is pixel
    (x0 + x, y0 + y), the mask spanning the polygon's box. The polygons' points must not be negative (a
    prediction's polygons lie in its image)."""
    return [
        raster for at in range(0, len(polygons), _BATCH) for raster in _rasterise(polygons[at : at + _BATCH])
    ]


def _rasterise(polygons: list[Points]) -> list[Raster]:
    if not polygons:
        return []
    origins = np.array([np.floor(p.min(axis=0)) for p in polygons], dtype=np.int64)
    sizes = np.array([np.ceil(p.max(axis=0)) for p in polygons], dtype=np.int64) - origins + 1
    widths, heights = sizes[:, 0], sizes[:, 1]
    owner = np.repeat(np.arange(len(polygons)), [len(p) for p in polygons])
    # The outline is stepped in the image's coordinates, as rleFrPoly does (its rounding is not the
    # same at other offsets), then moved to each polygon's own frame.
    u, v, point_owner = _outline(np.floor(_UPSAMPLE * np.concatenate(polygons) + 0.5).astype(np.int64), owner)
    u, v = u - _UPSAMPLE * origins[point_owner, 0], v - _UPSAMPLE * origins[point_owner, 1]
    moved = (u[1:] != u[:-1]) & (point_owner[1:] == point_owner[:-1])
    x = (np.where(u[1:] < u[:-1], u[1:], u[1:] - 1)[moved] + 0.5) / _UPSAMPLE - 0.5
    which = point_owner[1:][moved]
    y = np.ceil(np.clip((np.minimum(v[1:], v[:-1])[moved] + 0.5) / _UPSAMPLE - 0.5, 0, heights[which]))
    centre = (np.floor(x) == x) & (x >= 0) & (x <= widths[which] - 1)  # crossing a column's centre
    frames = widths * heights + 1  # each polygon's pixels, column by column, and one past them
    offsets = np.cumsum(frames) - frames
    which = which[centre]
    at = offsets[which] + (x[centre] * heights[which] + y[centre]).astype(np.int64)
    marks = (np.bincount(at, minlength=int(frames.sum())) & 1).astype(np.uint8)
    flips = np.bitwise_xor.accumulate(marks)  # each mark flips inside and outside
    rasters = []
    for i, (offset, width, height) in enumerate(zip(offsets, widths, heights, strict=True)):
        before = flips[offset - 1] if offset else 0
        inside = (flips[offset : offset + width * height] ^ before).view(bool)
        rasters.append((int(origins[i, 0]), int(origins[i, 1]), inside.reshape(width, height)))
    return rasters
