"""Content that moved: a damaged rectangle whose rows the previous picture already holds,
a few rows up or down (a terminal that scrolled, a list, a page).

Found by comparing rows of the new frame with rows of the picture the client already
has, so the client can copy them itself (SPICE COPY_BITS) instead of receiving them.
Pure numpy, no protocol; every move found is checked pixel for pixel before it is
returned, so a hash collision can cost a search, never a wrong picture.
"""

from __future__ import annotations

import numpy as np

from vgpu.display import Rect
from vgpu.encode.codecs import MAX_DIM

MIN_MOVE_ROWS = 16
"""A move shorter than this saves less than its own search and message."""
MIN_MOVE_PIXELS = 16384
"""Rectangles smaller than this (128x128) are sent as they are: their rows hash and
compress in about the same time, and the copy saves little."""
MAX_SHIFT = 512
"""Rows searched above and below the rectangle: a terminal or a page scrolls by less
than a screen per frame."""
MAX_ROW_REPEATS = 4
"""A row found more often than this in the searched part of the old picture (a blank
line, a flat background) votes for no shift: it would match any of them."""

HASH_COLUMNS = 64
"""Rows are hashed on at most this many columns, spread over the rectangle: enough to
tell most lines of text apart (rows that collide only add votes; a band found is
compared in full), and cheap next to encoding (256 columns cost 7 ms a 960x540 frame,
a third of what vgpu bench spice's animation spends per frame)."""

_WEIGHTS = np.random.default_rng(0x5EED).integers(1, 2**63, MAX_DIM, dtype=np.uint64) | 1
"""Odd 64-bit weights, one per pixel of a row as wide as the encoders take: a row's
hash is the wrapping sum of its pixels times these."""


def _row_hashes(pixels: np.ndarray) -> np.ndarray:
    """One uint64 per row of a (h, w, 4) view, on HASH_COLUMNS of its columns; equal
    rows have equal hashes."""
    pixels = pixels[:, ::max(1, pixels.shape[1] // HASH_COLUMNS)]
    values = np.ascontiguousarray(pixels).view(np.uint32)[..., 0].astype(np.uint64)
    with np.errstate(over="ignore"):
        return (values * _WEIGHTS[: values.shape[1]]).sum(axis=1, dtype=np.uint64)


def find_vertical_move(prev: np.ndarray, cur: np.ndarray, rect: Rect
                       ) -> tuple[Rect, int] | None:
    """The largest band of `rect` in `cur` (same columns, consecutive rows) that `prev`
    holds `dy` rows away, as (band, dy): cur[band] == prev[band moved by dy]. None when
    there is no such band of at least MIN_MOVE_ROWS rows. prev and cur are (h, w, 4)
    pictures of the same size."""
    left, top, right, bottom = rect
    if (right - left) * (bottom - top) < MIN_MOVE_PIXELS or bottom - top < MIN_MOVE_ROWS:
        return None
    if right - left > MAX_DIM or prev.shape != cur.shape:
        return None
    height = cur.shape[0]
    low, high = max(0, top - MAX_SHIFT), min(height, bottom + MAX_SHIFT)
    new = _row_hashes(cur[top:bottom, left:right])
    old = _row_hashes(prev[low:high, left:right])
    where: dict[int, list[int]] = {}
    for y, h in enumerate(old.tolist()):
        where.setdefault(h, []).append(low + y)
    votes: dict[int, int] = {}
    for y, h in enumerate(new.tolist(), top):
        found = where.get(h, ())
        if len(found) <= MAX_ROW_REPEATS:
            for y_old in found:
                if y_old != y:
                    votes[y_old - y] = votes.get(y_old - y, 0) + 1
    if not votes:
        return None
    dy = max(votes, key=lambda d: (votes[d], -abs(d)))
    if votes[dy] < MIN_MOVE_ROWS // 2:
        return None
    # Rows that match at dy: the longest run of them is the band.
    first, last = max(top, low - dy), min(bottom, high - dy)
    if last - first < MIN_MOVE_ROWS:
        return None
    same = new[first - top:last - top] == old[first + dy - low:last + dy - low]
    best, start = (0, 0), None
    for i, s in enumerate([*same.tolist(), False]):
        if s and start is None:
            start = i
        elif not s and start is not None:
            best = max(best, (i - start, start))
            start = None
    length, at = best
    if length < MIN_MOVE_ROWS:
        return None
    y0, y1 = first + at, first + at + length
    if not np.array_equal(cur[y0:y1, left:right], prev[y0 + dy:y1 + dy, left:right]):
        return None  # a hash collision: send the pixels
    return (left, y0, right, y1), dy


PROBE_PIXELS = 64
"""A window that moved is found by a row piece of this many pixels from its new place,
looked up in the old picture: long enough that text and pictures rarely repeat it."""
PROBE_ROWS = 5
"""Rows of the rectangle a probe is taken from (spread over its height)."""
MAX_PROBE_HITS = 4
"""A probe found more often than this in the old picture is ambiguous (a pattern)."""
MAX_PROBES = 4
"""Probes looked up in full per rectangle (an ambiguous one stops early): each is a
search through the old picture's damaged area (8 MB for a full-HD screen), so a
picture that changed without moving (video, an animation) costs a few of them."""
MAX_SEARCH_PIXELS = 1 << 21
"""Damaged areas larger than this (about a full-HD screen) are not searched for a
window: such damage is a new picture, and the search would cost more than it saves."""


MIN_HINTED_PIXELS = 32 * 32
"""A move the guest said it made (a hint) is checked, not searched for: a block this
small is worth its COPY_BITS (35 bytes) over its pixels, as spice-server sends every
copy the guest makes."""
MAX_HINTS_CHECKED = 8
"""Hints checked per rectangle, newest first: each costs a comparison of its part of
the rectangle (a full-HD one about 5 ms), and a window dragged between two frames is
found by the newest few (the steps composed); older ones were mostly drawn over."""


def find_hinted_move(prev: np.ndarray, cur: np.ndarray, rect: Rect,
                     hints: tuple[tuple[Rect, int, int], ...]) -> tuple[Rect, int, int] | None:
    """The first of `hints` (a destination and its (dx, dy) to the source, from the
    guest's own copies, newest first) that holds for a block of `rect`: (block, dx, dy)
    with cur[block] == prev[block moved by (dx, dy)], of at least MIN_HINTED_PIXELS.
    Costs a comparison of the hinted part of `rect` per hint, no search."""
    checked = 0
    for (h_left, h_top, h_right, h_bottom), dx, dy in hints:
        left, top = max(rect[0], h_left), max(rect[1], h_top)
        right, bottom = min(rect[2], h_right), min(rect[3], h_bottom)
        if right <= left or bottom <= top or (right - left) * (bottom - top) < MIN_HINTED_PIXELS:
            continue
        if checked == MAX_HINTS_CHECKED:
            break
        checked += 1
        # probes from the middle out: what was drawn over the copy since is at its
        # edges more often than not (a title bar, the area the window uncovered)
        block = _matching_block(prev, cur, (left, top, right, bottom), dx, dy,
                                (((left + right) // 2, (top + bottom) // 2), (left, top),
                                 (right - 1, bottom - 1)), MIN_HINTED_PIXELS, 1)
        if block is not None:
            return block, dx, dy
    return None


REPEAT_PROBES = 4
"""Probes per side of a grid over the rectangle, for a repeat: what the guest drew over
its copies in the same frame (a photo over the root window's tile) leaves the repeat in
pieces around it, and a probe on the picture finds none of them."""


def find_repeat(pixels: np.ndarray, rect: Rect, dx: int, dy: int) -> Rect | None:
    """A block of `rect`, of at least MIN_HINTED_PIXELS, whose pixels equal those (dx, dy)
    away in the same picture (a guest copy within one frame: a tile repeated), or None.
    Costs a comparison of `rect`."""
    left, top, right, bottom = rect
    grid = tuple((left + (right - left) * (2 * i + 1) // (2 * REPEAT_PROBES),
                  top + (bottom - top) * (2 * j + 1) // (2 * REPEAT_PROBES))
                 for j in range(REPEAT_PROBES) for i in range(REPEAT_PROBES))
    return _matching_block(pixels, pixels, rect, dx, dy,
                           ((left, top), (right - 1, bottom - 1), *grid), MIN_HINTED_PIXELS, 1)


def find_move(prev: np.ndarray, cur: np.ndarray, rect: Rect, area: Rect | None
              ) -> tuple[Rect, int, int] | None:
    """A block of `rect` in `cur` that `prev` holds elsewhere inside `area` (a window
    dragged, in any direction), as (block, dx, dy): cur[block] == prev[block moved by
    (dx, dy)]. Tries a vertical move first (find_vertical_move), and only that where
    area is None. None when no block of at least MIN_MOVE_PIXELS and MIN_MOVE_ROWS rows
    is found."""
    vertical = find_vertical_move(prev, cur, rect)
    if vertical is not None:
        return vertical[0], 0, vertical[1]
    if area is None:
        return None
    left, top, right, bottom = rect
    if (right - left) * (bottom - top) < MIN_MOVE_PIXELS or right - left < PROBE_PIXELS:
        return None
    a_left, a_top, a_right, a_bottom = area
    if (a_right - a_left) * (a_bottom - a_top) > MAX_SEARCH_PIXELS:
        return None
    haystack = np.ascontiguousarray(prev[a_top:a_bottom, a_left:a_right]).tobytes()
    row_bytes = (a_right - a_left) * 4
    tried: set[tuple[int, int]] = set()
    probes = 0
    for i in range(PROBE_ROWS):
        y = top + (bottom - top) * (2 * i + 1) // (2 * PROBE_ROWS)
        row = cur[y, left:right]
        for x in range(left, right - PROBE_PIXELS + 1, PROBE_PIXELS):
            probe = row[x - left:x - left + PROBE_PIXELS]
            if (probe == probe[0]).all():
                continue  # a flat piece matches anywhere
            if probes == MAX_PROBES:
                return None
            needle = probe.tobytes()
            hits: list[tuple[int, int]] = []
            at = haystack.find(needle)
            while at >= 0 and len(hits) <= MAX_PROBE_HITS:
                hy, hx = divmod(at, row_bytes)
                if hx % 4 == 0 and hx + len(needle) <= row_bytes:
                    hits.append((a_left + hx // 4 - x, a_top + hy - y))
                at = haystack.find(needle, at + 4)
            if len(hits) > MAX_PROBE_HITS:
                continue  # a pattern: found early, the search stopped there
            probes += 1  # this one went through the whole area
            if not hits:
                continue
            for dx, dy in hits:
                if (dx, dy) in tried or (dx, dy) == (0, 0):
                    continue
                tried.add((dx, dy))
                block = _matching_block(prev, cur, rect, dx, dy, ((x, y),))
                if block is not None:
                    return block, dx, dy
            break  # this row's first telling probe decided; try the next row
    return None


def _matching_block(prev: np.ndarray, cur: np.ndarray, rect: Rect, dx: int, dy: int,
                    probes: tuple[tuple[int, int], ...], min_pixels: int = MIN_MOVE_PIXELS,
                    min_rows: int = MIN_MOVE_ROWS) -> Rect | None:
    """A rectangle around the first of `probes` (points) that allows one, inside `rect`,
    whose pixels all equal prev's moved by (dx, dy): the probe row's run of equal pixels,
    then the rows equal over all of it. None if each is smaller than `min_pixels` or
    `min_rows`. The pixels are compared once for all the probes."""
    height, width = cur.shape[:2]
    left, top = max(rect[0], -dx), max(rect[1], -dy)
    right, bottom = min(rect[2], width - dx), min(rect[3], height - dy)
    probes = tuple((px, py) for px, py in probes if left <= px < right and top <= py < bottom)
    if not probes:
        return None
    now = np.ascontiguousarray(cur[top:bottom, left:right]).view(np.uint32)[..., 0]
    was = np.ascontiguousarray(prev[top + dy:bottom + dy, left + dx:right + dx]
                               ).view(np.uint32)[..., 0]
    eq = now == was
    for px, py in probes:
        x0, x1 = _run_around(eq[py - top], px - left)
        y0, y1 = _run_around(eq[:, x0:x1].all(axis=1), py - top)
        if (x1 - x0) * (y1 - y0) >= min_pixels and y1 - y0 >= min_rows:
            return left + x0, top + y0, left + x1, top + y1
    return None


def _run_around(mask: np.ndarray, at: int) -> tuple[int, int]:
    """The run of True in mask that holds index `at` (the probe's), empty if mask[at]
    is False."""
    if not mask[at]:
        return at, at
    false = np.flatnonzero(~mask)
    before, after = false[false < at], false[false > at]
    return (int(before.max()) + 1 if before.size else 0,
            int(after.min()) if after.size else len(mask))
