"""Rectangle lists: the destination region of an operation (bbox, surface, clip rects)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from vgpu.device.commands import QRect
from vgpu.render.errors import RenderError

Box = tuple[int, int, int, int]
"""(x0, y0, x1, y1), exclusive ends; the renderer's rect and the display's `Rect` order."""

MAX_CLIP_RECTS = 4096
"""Most clip rects one operation may carry: far above what X or Windows send for one draw
(tens), and it bounds the quadratic band split below to a few million steps."""

COORD_LIMIT = 1 << 24
"""Coordinates beyond this magnitude are refused: far outside any surface (MAX_DIM) and
still exact in the float32 vertex math."""


def check_rect(r: QRect, what: str) -> Box:
    """A QRect from a command -> Box, refusing inverted, empty or absurd ones."""
    top, left, bottom, right = r
    if (-COORD_LIMIT <= left < right <= COORD_LIMIT
            and -COORD_LIMIT <= top < bottom <= COORD_LIMIT):
        return left, top, right, bottom
    if min(r) < -COORD_LIMIT or max(r) > COORD_LIMIT:
        raise RenderError(f"{what}: coordinates out of range {tuple(r)}")
    if right <= left or bottom <= top:
        raise RenderError(f"{what}: empty or inverted rect {tuple(r)}")
    return left, top, right, bottom


def intersect(a: Box, b: Box) -> Box | None:
    # comparisons rather than min/max calls: this runs several times per operation
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    x0 = ax0 if ax0 > bx0 else bx0
    y0 = ay0 if ay0 > by0 else by0
    x1 = ax1 if ax1 < bx1 else bx1
    y1 = ay1 if ay1 < by1 else by1
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def disjoint_union(boxes: Iterable[Box]) -> list[Box]:
    """The union of possibly overlapping boxes as disjoint boxes (horizontal bands), so that
    an operation drawn once per box touches every pixel at most once."""
    boxes = [b for b in boxes if b[0] < b[2] and b[1] < b[3]]
    if len(boxes) <= 1:
        return boxes
    ys = sorted({b[1] for b in boxes} | {b[3] for b in boxes})
    out: list[Box] = []
    for y0, y1 in itertools.pairwise(ys):
        spans = sorted((b[0], b[2]) for b in boxes if b[1] <= y0 and b[3] >= y1)
        merged: list[list[int]] = []
        for x0, x1 in spans:
            if merged and x0 <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], x1)
            else:
                merged.append([x0, x1])
        out.extend((x0, y0, x1, y1) for x0, x1 in merged)
    return out


def dest_region(bbox: Box, clip: tuple[QRect, ...] | None, width: int, height: int) -> list[Box]:
    """bbox, limited to the surface and to the clip rects, as disjoint boxes."""
    area = intersect(bbox, (0, 0, width, height))
    if area is None:
        return []
    if clip is None:
        return [area]
    if len(clip) > MAX_CLIP_RECTS:
        raise RenderError(f"{len(clip)} clip rects, limit {MAX_CLIP_RECTS}")
    parts = []
    for r in clip:
        top, left, bottom, right = r
        box = intersect(area, (left, top, right, bottom))
        if box is not None:
            parts.append(box)
    return disjoint_union(parts)


def bounds(boxes: list[Box] | tuple[Box, ...]) -> Box:
    """The bounding box of (at least one) boxes."""
    # columns by zip: no generator per column (damage lists collapse through this every
    # MAX_DAMAGE_RECTS operations)
    x0, y0, x1, y1 = zip(*boxes, strict=True)
    return min(x0), min(y0), max(x1), max(y1)
