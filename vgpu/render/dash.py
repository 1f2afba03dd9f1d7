"""Dashed STROKEs as the SPICE canvas draws them. spice-common's lines.c (the X server's mi
line code) has no zero-width dash rasteriser: it draws a dashed zero-width line as a dashed
*wide* line of width 1, so each "on" dash is a 1-pixel-wide rectangle along the true line,
its length measured in floating point, filled by mi's polygon edge walker; segments meet in
mitred joins and CapNotLast leaves the ends bare. This module follows that algorithm (its
float steps in the same order, so pixel centres on an edge fall the same way)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np

from vgpu.render.errors import RenderError
from vgpu.render.region import Box

MAX_DASHES_PER_SEGMENT = 1 << 22
"""Dash pieces one segment may be cut into: a screen-long line with 1-pixel dashes is a few
thousand; the bound keeps the per-dash arrays of a hostile path to a few tens of MiB."""

_SQSECANT = 108.856472512142
"""mi's miter limit: 1 / sin^2(11/2 degrees); longer mitres become bevels."""

_TOP, _RIGHT, _BOTTOM, _LEFT = 0, 1, 2, 3


def _wrap32(v: int) -> int:
    """C int arithmetic that overflowed: mi multiplies slopes as 32-bit ints."""
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


@dataclass
class _Face:
    """mi's LineFace: where a segment ends, its direction and its half-width offset."""
    xa: float
    ya: float
    dx: int
    dy: int
    x: int
    y: int
    k: float


Slope = tuple[int, int, float]  # dx, dy and k (x0 * dy - y0 * dx)
Span = tuple[int, int, int]  # y, first x, last x (inclusive)


def _edge(x0: float, y0: float, k: float, dx: int, dy: int, xi: int, yi: int, left: int
          ) -> tuple[int, list[int]]:
    """mi's miPolyBuildEdge: the first scanline of one polygon edge and its walker state
    [x, stepx, signdx, e, dy, dx]."""
    if dy < 0:
        dy, dx, k = -dy, -dx, -k
    y = math.ceil(y0)
    xady = math.ceil(k) + y * dx
    x = -(-xady // dy) - 1 if xady <= 0 else (xady - 1) // dy
    e = xady - x * dy
    if dx >= 0:
        signdx, stepx, edx = 1, dx // dy, dx % dy
    else:
        signdx, stepx, edx = -1, -(-dx // dy), -dx % dy
        e = dy - e + 1
    return y + yi, [x + left + xi, stepx, signdx, e - dy, dy, edx]


def _poly(vertices: list[tuple[float, float]], slopes: list[Slope], xi: int, yi: int
          ) -> list[Span]:
    """mi's miPolyBuildPoly and miFillPolyHelper: the spans of a convex polygon whose
    vertices are relative to (xi, yi), each edge's line given by its slope."""
    count = len(vertices)
    top = bottom = 0
    miny = maxy = vertices[0][1]
    for i in range(1, count):
        if vertices[i][1] < miny:
            top, miny = i, vertices[i][1]
        if vertices[i][1] >= maxy:
            bottom, maxy = i, vertices[i][1]
    j = (top - 1) % count
    clockwise, slopeoff = 1, 0
    if _wrap32(slopes[j][1] * slopes[top][0]) > _wrap32(slopes[top][1] * slopes[j][0]):
        clockwise, slopeoff = -1, -1
    bottomy = math.ceil(maxy) + yi
    chains: list[list[list[int]]] = [[], []]  # right edges, then left edges
    topy = lasty = 0
    for side, off, turn in ((0, slopeoff, clockwise), (1, -1 if slopeoff == 0 else 0,
                                                       -clockwise)):
        edges = chains[side]
        s, i = (top + off) % count, top
        while i != bottom:
            dx, dy, k = slopes[s]
            if dy != 0:
                y, edge = _edge(vertices[i][0], vertices[i][1], k, dx, dy, xi, yi, side)
                if edges:
                    edges[-1].append(y - lasty)
                elif side == 0:
                    topy = y
                edges.append(edge)
                lasty = y
            i, s = (i + turn) % count, (s + turn) % count
        if edges:
            edges[-1].append(bottomy - lasty)
    return _fill(chains[1], chains[0], topy)


def _fill(left: list[list[int]], right: list[list[int]], y: int) -> list[Span]:
    """mi's miFillPolyHelper: walk both edge chains down, one span per scanline where the
    right edge is not left of the left one."""
    spans: list[Span] = []
    lh = rh = 0
    li = ri = 0
    lx = lstep = lsign = le = ldy = ldx = 0
    rx = rstep = rsign = re = rdy = rdx = 0
    while (li < len(left) or lh) and (ri < len(right) or rh):
        if not lh and li < len(left):
            lx, lstep, lsign, le, ldy, ldx, lh = left[li]
            li += 1
        if not rh and ri < len(right):
            rx, rstep, rsign, re, rdy, rdx, rh = right[ri]
            ri += 1
        height = min(lh, rh)
        lh -= height
        rh -= height
        for _ in range(max(height, 0)):
            if rx >= lx:
                spans.append((y, lx, rx))
            y += 1
            lx += lstep
            le += ldx
            if le > 0:
                lx += lsign
                le -= ldy
            rx += rstep
            re += rdx
            if re > 0:
                rx += rsign
                re -= rdy
    return spans


def _join(left: _Face, right: _Face, unique: bool) -> list[Span]:
    """mi's miLineJoin for width 1 and JoinMiter: the wedge between two segments."""
    left, right = replace(left), replace(right)
    if not unique:
        # one of the two lines already draws the joining pixel
        if left.dx > 0 or (left.dx == 0 and left.dy > 0):
            return []
        if right.dx > 0 or (right.dx == 0 and right.dy > 0):
            return []
    denom = -left.dx * float(right.dy) + right.dx * float(left.dy)
    if denom == 0:
        return []
    swap = denom <= 0
    flip = right if swap else left
    flip.xa, flip.ya, flip.dx, flip.dy = -flip.xa, -flip.ya, -flip.dx, -flip.dy
    vertices = [(right.xa, right.ya), (0.0, 0.0), (left.xa, left.ya)]
    slopes: list[Slope] = [(-right.dy, right.dx, 0.0), (left.dy, -left.dx, 0.0)]
    my = (left.dy * (right.xa * right.dy - right.ya * right.dx)
          - right.dy * (left.xa * left.dy - left.ya * left.dx)) / denom
    if left.dy != 0:
        mx = left.xa + (my - left.ya) * float(left.dx) / float(left.dy)
    else:
        mx = right.xa + (my - right.ya) * float(right.dx) / float(right.dy)
    if (mx * mx + my * my) * 4 > _SQSECANT:  # lineWidth 1
        ddx, ddy = right.xa - left.xa, right.ya - left.ya
        scale = max(abs(ddx), abs(ddy))
        if scale == 0:
            return []  # both faces at one point: mi divides by zero, no wedge to fill
        sdx, sdy = int((ddx * 65536) / scale), int((ddy * 65536) / scale)
        k = ((left.xa + right.xa) * sdy - (left.ya + right.ya) * sdx) / 2.0
        slopes.append((sdx, sdy, k))
    else:
        sign = -1 if swap else 1
        slopes += [(sign * left.dx, sign * left.dy, sign * left.k),
                   (sign * right.dx, sign * right.dy, sign * right.k)]
        vertices.append((mx, my))
    return _poly(vertices, slopes, left.x, left.y)


def _dash_lengths(dash: list[int], index: int, offset: int, n: int) -> np.ndarray:
    """The first n dash pieces from (index, offset): what is left of the current dash, then
    whole dashes in turn."""
    reps = -(-(n + index) // len(dash)) + 1
    seq = np.tile(np.asarray(dash, np.int64), reps)[index : index + n]
    seq[0] -= offset
    return seq


def _segment(x1: int, y1: int, x2: int, y2: int, dash: list[int], state: list[int],
             area: Box) -> tuple[list[Span], _Face, _Face]:
    """mi's miWideDashSegment at width 1 (CapNotLast, OnOffDash): the spans of the "on"
    dashes of one segment that may touch `area`, its two faces; `state` (dash index and
    offset into it) moves on along the segment."""
    dx, dy = x2 - x1, y2 - y1
    index, offset = state
    n_dash = len(dash)
    half = 0.5
    if dx == 0:
        length, rdx, rdy = float(abs(dy)), 0.0, (half if dy >= 0 else -half)
    elif dy == 0:
        length, rdx, rdy = float(abs(dx)), (half if dx >= 0 else -half), 0.0
    else:
        length = math.hypot(dx, dy)
        r = half / length
        rdx, rdy = r * dx, r * dy
    k = half * length
    # how many whole pieces the loop walks past: piece i is passed while the length left
    # exceeds it, i.e. while the pieces so far sum to less than the length (exact: the
    # length minus integers loses no bits)
    period = sum(dash)
    bound = (int(length) // period + 2) * n_dash + 2
    if bound > MAX_DASHES_PER_SEGMENT:
        raise RenderError("dashed stroke segment cut into too many pieces")
    pieces = _dash_lengths(dash, index, offset, bound)
    ends = np.cumsum(pieces)
    n = int(np.searchsorted(ends, length, side="left"))  # pieces with end < length
    pieces = pieces[:n]
    indices = (index + np.arange(n)) % n_dash
    spans: list[Span] = []
    lo_x, lo_y, hi_x, hi_y = area[0] - 2, area[1] - 2, area[2] + 2, area[3] + 2
    if n:
        # mi moves the far corners on piece by piece; the running sums keep its rounding
        steps_x = (pieces * dx).astype(np.float64) / length
        steps_y = (pieces * dy).astype(np.float64) / length
        right_x = np.add.accumulate(np.concatenate(([rdy], steps_x)))
        right_y = np.add.accumulate(np.concatenate(([-rdx], steps_y)))
        bottom_x = np.add.accumulate(np.concatenate(([-rdy], steps_x)))
        bottom_y = np.add.accumulate(np.concatenate(([rdx], steps_y)))
        on = np.nonzero(indices % 2 == 0)[0]
        # only pieces near the area: their four corners, relative to (x1, y1)
        xs = (right_x[on], right_x[on + 1], bottom_x[on], bottom_x[on + 1])
        ys = (right_y[on], right_y[on + 1], bottom_y[on], bottom_y[on + 1])
        near = ((x1 + np.minimum.reduce(xs) <= hi_x) & (x1 + np.maximum.reduce(xs) >= lo_x)
                & (y1 + np.minimum.reduce(ys) <= hi_y) & (y1 + np.maximum.reduce(ys) >= lo_y))
        for i in on[near].tolist():
            left_k = 0.0 if i == 0 else -(right_x[i] * dx + right_y[i] * dy)
            rx, ry = right_x[i + 1], right_y[i + 1]
            vertices = [(right_x[i], right_y[i]), (rx, ry),
                        (bottom_x[i + 1], bottom_y[i + 1]), (bottom_x[i], bottom_y[i])]
            slopes: list[Slope] = [(dx, dy, k), (-dy, dx, rx * dx + ry * dy),
                                   (-dx, -dy, k), (dy, -dx, left_k)]
            spans += _poly(vertices, slopes, x1, y1)
        index = (index + n) % n_dash
        remain = dash[index]
        walked = int(ends[n - 1])
        last_rx, last_ry = right_x[n], right_y[n]
        last_bx, last_by = bottom_x[n], bottom_y[n]
        left_k = -(last_rx * dx + last_ry * dy)
    else:
        remain = dash[index] - offset
        walked = 0
        last_rx, last_ry, last_bx, last_by = rdy, -rdx, -rdy, rdx
        left_k = 0.0
    left_remain = length - walked
    if index % 2 == 0 and not (max(x1, x2) + 2 < lo_x or min(x1, x2) - 2 > hi_x
                                 or max(y1, y2) + 2 < lo_y or min(y1, y2) - 2 > hi_y):
        # the last, partial piece, built from the far end
        vertices = [(last_rx - dx, last_ry - dy), (rdy, -rdx), (-rdy, rdx),
                    (last_bx - dx, last_by - dy)]
        slopes = [(dx, dy, k), (-dy, dx, 0.0), (-dx, -dy, k),
                  (dy, -dx, left_k + _wrap32(dx * dx + dy * dy))]
        spans += _poly(vertices, slopes, x2, y2)
    remain = int(remain - left_remain)
    if remain == 0:
        index = (index + 1) % n_dash
        remain = dash[index]
    state[0], state[1] = index, dash[index] - remain
    return (spans, _Face(rdy, -rdx, dx, dy, x1, y1, k),
            _Face(-rdy, rdx, -dx, -dy, x2, y2, k))


def _step_dash(dist: int, dash: list[int]) -> tuple[int, int]:
    """mi's miStepDash from the pattern's start: (dash index, offset into it)."""
    if dist < dash[0]:
        return 0, dist
    dist -= dash[0]
    index = 1 % len(dash)
    total = sum(dash)
    if total <= dist:
        dist %= total
    while dist >= dash[index]:
        dist -= dash[index]
        index = (index + 1) % len(dash)
    return index, dist


def dashed_spans(pts: list[tuple[int, int]], dash: list[int], dash_offset: int,
                 unique: bool, area: Box) -> list[Span]:
    """mi's miWideDash at width 1 for one polyline: the spans of its "on" dashes and the
    joins between them, those that may touch `area` (X's CapNotLast, JoinMiter). `unique`
    is whether mi gathers the spans to paint each pixel once (a raster op that is not
    idempotent on a polyline of 3 points or more); joins are then drawn in full."""
    if sum(dash) <= 0:
        raise RenderError("dash pattern of zero length")
    spans: list[Span] = []
    self_join = len(pts) > 1 and pts[0] == pts[-1]
    state = list(_step_dash(dash_offset, dash))
    first = True
    first_face: _Face | None = None
    first_fg = prev_fg = end_fg = False
    prev_right: _Face | None = None
    right: _Face | None = None
    for (x1, y1), (x2, y2) in itertools.pairwise(pts):
        if x1 == x2 and y1 == y2:
            continue
        start_fg = state[0] % 2 == 0
        seg, left, right = _segment(x1, y1, x2, y2, dash, state, area)
        spans += seg
        end_fg = bool((state[0] & 1) ^ (state[1] != 0))
        if start_fg:
            if first or not prev_fg:
                if first and self_join:
                    first_face, first_fg = left, True
            elif prev_right is not None:
                spans += _join(left, prev_right, unique)
        prev_right, prev_fg, first = right, end_fg, False
    if right is not None and end_fg and self_join and first_fg and first_face is not None:
        spans += _join(first_face, right, unique)
    return spans
