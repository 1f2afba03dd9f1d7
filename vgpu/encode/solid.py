"""Solid-colour parts of a region: what can go to the client as a fill, not as pixels.

A guest fills whole windows and desktops with one colour; once rendered, those are
pixels like any other, and a frame's damage joins them with the text beside them.
Found again here, they cost a SPICE DRAW_FILL (about 50 bytes) where an image costs
a few hundred bytes compressed and 4 bytes a pixel uncompressed. Pure numpy, no
protocol: the caller decides how a fill is sent. Never used on surfaces with alpha
(a fill's colour has no alpha byte in SPICE).
"""

from __future__ import annotations

import numpy as np

from vgpu.display import Rect
from vgpu.encode.codecs import solid_tiles

SOLID_TILE = 32
"""Solidity is judged in tiles of this many pixels square: small enough to find a
desktop between windows, large enough that one numpy pass over a band is cheap."""
MIN_FILL_PIXELS = 4096
"""A solid part smaller than this stays inside its image: under a 64x64 square, what
a fill saves (LZ codes a solid run in a few bytes a row) is less than the extra
DRAW_COPY headers that cutting it out of the image costs."""

Part = tuple[Rect, int | None]
"""A rectangle of the region (its own coordinates) and its colour (0x00RRGGBB) where
it is solid, None where it holds content."""


def solid_parts(pixels: np.ndarray) -> list[Part]:
    """The region (h, w, 4 B,G,R,X) as solid rectangles and content rectangles that
    together cover it exactly, each pixel once. One part, None, when nothing solid is
    large enough to be worth a fill."""
    h, w = pixels.shape[:2]
    whole: list[Part] = [((0, 0, w, h), None)]
    if h * w < MIN_FILL_PIXELS:
        return whole
    first, solid = solid_tiles(pixels, SOLID_TILE)
    rows, cols = solid.shape
    if not solid.any():
        return whole
    # Runs along each tile row: (first col, end col, colour or None).
    runs_by_row: list[list[tuple[int, int, int | None]]] = []
    for ty in range(rows):
        runs: list[tuple[int, int, int | None]] = []
        for tx in range(cols):
            colour = int(first[ty, tx]) if solid[ty, tx] else None
            if runs and runs[-1][2] == colour and runs[-1][1] == tx:
                runs[-1] = (runs[-1][0], tx + 1, colour)
            else:
                runs.append((tx, tx + 1, colour))
        runs_by_row.append(runs)
    # Runs equal in span and colour on consecutive tile rows become one rectangle.
    open_parts: dict[tuple[int, int, int | None], list[int]] = {}  # run -> [top, bottom]
    boxes: list[tuple[int, int, int, int, int | None]] = []  # tile units
    for ty, runs in enumerate(runs_by_row):
        current = set(runs)
        for run in list(open_parts):
            if run not in current:
                top, bottom = open_parts.pop(run)
                boxes.append((run[0], top, run[1], bottom, run[2]))
        for run in runs:
            if run in open_parts:
                open_parts[run][1] = ty + 1
            else:
                open_parts[run] = [ty, ty + 1]
    boxes.extend((r[0], t, r[1], b, r[2]) for r, (t, b) in open_parts.items())
    parts: list[Part] = []
    for left, top, right, bottom, colour in boxes:
        rect = (left * SOLID_TILE, top * SOLID_TILE, min(w, right * SOLID_TILE),
                min(h, bottom * SOLID_TILE))
        small = (rect[2] - rect[0]) * (rect[3] - rect[1]) < MIN_FILL_PIXELS
        parts.append((rect, None if small else colour))
    if all(colour is None for _, colour in parts):
        return whole
    return _join_content(parts)


def _join_content(parts: list[Part]) -> list[Part]:
    """Content rectangles side by side on the same rows joined into one (fewer images
    to send), the fills as they are, top to bottom."""
    parts.sort(key=lambda p: (p[0][1], p[0][0]))
    joined: list[Part] = []
    for rect, colour in parts:
        if joined and colour is None and joined[-1][1] is None:
            last = joined[-1][0]
            if last[1] == rect[1] and last[3] == rect[3] and last[2] == rect[0]:
                joined[-1] = ((last[0], last[1], rect[2], last[3]), None)
                continue
        joined.append((rect, colour))
    return joined
