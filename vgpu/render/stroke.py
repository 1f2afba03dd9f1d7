"""STROKE paths rasterised on the CPU into a coverage mask (zero-width lines, as the software
canvas draws them: QXL strokes carry no width). Strokes are rare; the mask then goes through
the same GL raster-op path as every other masked draw."""

from __future__ import annotations

import itertools

import numpy as np

from vgpu.device.commands import LineAttr, PathSeg
from vgpu.render import enums as E
from vgpu.render.dash import dashed_spans
from vgpu.render.errors import RenderError
from vgpu.render.region import COORD_LIMIT, Box

MAX_PATH_POINTS = 65536
"""Most points (after flattening curves) one stroke may have: a whole-screen polyline is a
few thousand; the bound keeps the CPU rasteriser's work per command small."""

MAX_BEZIER_DEPTH = 16
"""Halvings of one cubic Bezier at most: spice-common's subdivision stops at flatness well
before this for any curve on a screen; the bound keeps a hostile curve to 65536 pieces."""

MAX_STYLE_SEGMENTS = 32
"""Dash pattern entries accepted: X11 and GDI use at most a handful."""


def _half(a: int, b: int) -> int:
    """C's (a + b) / 2: the midpoint, rounded toward zero."""
    s = a + b
    return s // 2 if s >= 0 else -(-s // 2)


def _bezier(p0: tuple[int, int], p1: tuple[int, int], p2: tuple[int, int],
            p3: tuple[int, int]) -> list[tuple[int, int]]:
    """A cubic Bezier's points after p0, by spice-common's subdivide_bezier: halve until
    both control points lie within the flatness bound of the chord (28.4 fixed point)."""
    out: list[tuple[int, int]] = []
    stack = [(p0, p1, p2, p3, 0)]
    while stack:
        a, b, c, d, depth = stack.pop()
        a2 = ((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) >> 4
        b2 = ((d[0] - a[0]) ** 2 + (d[1] - a[1]) ** 2) >> 4
        c2 = ((c[0] - d[0]) ** 2 + (c[1] - d[1]) ** 2) >> 4
        ab = ((b[0] - a[0]) * (d[0] - a[0]) + (b[1] - a[1]) * (d[1] - a[1])) >> 4
        cb = ((c[0] - d[0]) * (a[0] - d[0]) + (c[1] - d[1]) * (a[1] - d[1])) >> 4
        h1 = (a2 * b2 - ab * ab) >> 3
        h2 = (c2 * b2 - cb * cb) >> 3
        if (h1 < b2 and h2 < b2) or depth >= MAX_BEZIER_DEPTH:
            out.append((fix_to_int(d[0]), fix_to_int(d[1])))
            continue
        ab_ = (_half(a[0], b[0]), _half(a[1], b[1]))
        bc = (_half(b[0], c[0]), _half(b[1], c[1]))
        cd = (_half(c[0], d[0]), _half(c[1], d[1]))
        abc = (_half(ab_[0], bc[0]), _half(ab_[1], bc[1]))
        bcd = (_half(bc[0], cd[0]), _half(bc[1], cd[1]))
        mid = (_half(abc[0], bcd[0]), _half(abc[1], bcd[1]))
        stack.append((mid, bcd, cd, d, depth + 1))  # popped second: drawn second
        stack.append((a, ab_, abc, mid, depth + 1))
    return out


def fix_to_int(v: int) -> int:
    """28.4 fixed point -> pixel, rounding as spice-common's fix_to_int (up only past .5)."""
    val = v >> 4
    return val + 1 if (v & 0xF) > 8 else val


def polylines(path: tuple[PathSeg, ...]) -> list[list[tuple[int, int]]]:
    """The path's subpaths as integer point lists (curves flattened, CLOSE closed)."""
    out: list[list[tuple[int, int]]] = []
    cur: list[tuple[int, int]] = []
    done = 0  # points in the finished subpaths

    def finish() -> None:
        nonlocal cur, done
        if cur:
            out.append(cur)
            done += len(cur)
        cur = []

    for seg in path:
        for x, y in seg.points:
            if not (-COORD_LIMIT * 16 <= x <= COORD_LIMIT * 16
                    and -COORD_LIMIT * 16 <= y <= COORD_LIMIT * 16):
                raise RenderError("stroke point out of range")
        pts = list(seg.points)
        if seg.flags & E.PATH_BEGIN:
            finish()
            if not pts:
                raise RenderError("path segment BEGIN without a point")
            cur.append((fix_to_int(pts[0][0]), fix_to_int(pts[0][1])))
            pts = pts[1:]
        if seg.flags & E.PATH_BEZIER:
            if len(pts) % 3 or not cur:
                raise RenderError("bezier segment needs a start and 3n points")
            for i in range(0, len(pts), 3):
                start = (cur[-1][0] << 4, cur[-1][1] << 4)
                cur.extend(_bezier(start, *pts[i : i + 3]))
                if done + len(cur) > MAX_PATH_POINTS:
                    raise RenderError("stroke path too long")
        else:
            cur.extend((fix_to_int(x), fix_to_int(y)) for x, y in pts)
        if done + len(cur) > MAX_PATH_POINTS:
            raise RenderError("stroke path too long")
        if seg.flags & E.PATH_END:
            if seg.flags & E.PATH_CLOSE and cur:
                cur.append(cur[0])
            finish()
    finish()
    return out


_XDECREASING, _YDECREASING, _YMAJOR = 4, 2, 1
# X's default thin-line bias (mi's DEFAULTZEROLINEBIAS): octants 2, 3, 4 and 5 prefer the
# axial step when the Bresenham error term is exactly zero.
_BIAS = ((1 << (_YDECREASING | _YMAJOR)) | (1 << (_XDECREASING | _YDECREASING | _YMAJOR))
         | (1 << (_XDECREASING | _YDECREASING)) | (1 << _XDECREASING))


def _line(x1: int, y1: int, x2: int, y2: int, area: Box
          ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """X's zero-width line from (x1, y1) towards (x2, y2), the end point excluded (mi's
    miZeroLine, which spice-common's lines.c uses): (its length in pixels, and the indices
    along it and coordinates of those of its pixels whose major coordinate lies in `area`)."""
    adx, ady = abs(x2 - x1), abs(y2 - y1)
    sx, sy = (-1 if x2 < x1 else 1), (-1 if y2 < y1 else 1)
    octant = (_XDECREASING if x2 < x1 else 0) | (_YDECREASING if y2 < y1 else 0)
    x_major = adx > ady
    major, minor = (adx, ady) if x_major else (ady, adx)
    if not x_major:
        octant |= _YMAJOR
    # only the stretch whose major coordinate falls inside the area is computed
    start, sign, lo, hi = (x1, sx, area[0], area[2]) if x_major else (y1, sy, area[1], area[3])
    first, last = ((lo - start, hi - 1 - start) if sign > 0
                   else (start - (hi - 1), start - lo))
    i = np.arange(max(first, 0), min(last + 1, major), dtype=np.int64)
    if major == 0:
        return 0, i, i, i
    e1 = 2 * minor
    e = e1 - major - ((_BIAS >> octant) & 1) - e1
    # after i pixels the minor axis has stepped (e + i * e1) // (2 * major) + 1 times
    steps = (e + i * e1) // (2 * major) + 1
    if x_major:
        return major, i, x1 + sx * i, y1 + sy * steps
    return major, i, x1 + sx * steps, y1 + sy * i


def dash_pattern(attr: LineAttr) -> tuple[list[int], int]:
    """The on/off dash lengths and start offset, as canvas_draw_stroke sets up X11's dashes:
    each length cut to a byte (X's dash list is unsigned char); START_WITH_GAP rotates the
    style by one and starts one entry in."""
    style = [fix_to_int(v) & 0xFF for v in attr.style]
    if attr.flags & E.LINE_FLAGS_START_WITH_GAP:
        style = style[1:] + style[:1]
        return style, style[0]
    return style, 0


def stroke_mask(path: tuple[PathSeg, ...], attr: LineAttr, area: Box,
                careful: bool = False) -> np.ndarray | None:
    """How many times the stroke covers each pixel inside `area`, as an (h, w) uint8 array
    (saturating at 255), or None if none fall there. The canvas fills each segment's spans
    through the raster op, so a pixel two segments share gets the operation twice. Dashed
    strokes are mi's width-1 dashed polygons (vgpu.render.dash); `careful` says the raster
    op is not idempotent, for which mi paints each pixel of a dashed polyline of three
    points or more once."""
    styled = bool(attr.flags & E.LINE_FLAGS_STYLED)
    dash: list[int] = []
    offset = 0
    if styled:
        if not 0 < len(attr.style) <= MAX_STYLE_SEGMENTS:
            raise RenderError("bad line style")
        if any(v < 0 for v in attr.style):
            raise RenderError("bad line style lengths")
        dash, offset = dash_pattern(attr)
        if sum(dash) <= 0:
            # mi's miStepDash never ends on a pattern of zero length: spice-server hangs
            raise RenderError("line style of zero length")
    x0, y0, x1, y1 = area
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for pts in polylines(path):
        if styled:
            unique = careful and len(pts) >= 3
            once = np.zeros(mask.shape, bool)
            for y, left, right in dashed_spans(pts, dash, offset, unique, area):
                lo, hi = max(left, x0), min(right + 1, x1)
                if y0 <= y < y1 and lo < hi:
                    if unique:
                        once[y - y0, lo - x0 : hi - x0] = True
                    else:
                        row = mask[y - y0, lo - x0 : hi - x0]
                        row += row < 255
            mask += once & (mask < 255)
            continue
        # every segment leaves out its end point, the last one too (CapNotLast)
        for (ax, ay), (bx, by) in itertools.pairwise(pts):
            _, _, xs, ys = _line(ax, ay, bx, by, area)
            inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            hit = (ys[inside] - y0, xs[inside] - x0)  # a segment covers a pixel once
            mask[hit] = np.minimum(mask[hit].astype(np.uint16) + 1, 255)
    return mask if mask.any() else None
