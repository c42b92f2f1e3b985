"""Binary masks -> polygons (pure): the outer boundary of the mask's largest connected region, traced
pixel by pixel, then simplified (Douglas-Peucker) to at most a given number of points."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

Mask = npt.NDArray[np.bool_]
Points = npt.NDArray[np.float64]

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
