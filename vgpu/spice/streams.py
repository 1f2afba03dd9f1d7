"""Which damaged region becomes an MJPEG stream, as pure per-client logic (no IO, no clock).

A region that is damaged again and again (3D output, video) costs the least as
a video stream; everything else stays lossless. One stream per client at a
time: a large rectangle damaged in enough consecutive frames, close together
in time, starts it. Damage inside the stream's rectangle becomes stream frames;
damage elsewhere is drawn losslessly around it. When the region has been still
for STREAM_TIMEOUT_S, or another region becomes the busy one, the stream ends
and its rectangle is drawn once more, losslessly, so still pictures end exact.

A 3D window is known by the renderer's record of where its presents landed (the
frame's `presents`), as spice-server knows a stream by a draw repeated onto the same
destination: that rect, presented in enough frames, is the candidate whatever else is
damaged, and it stays the candidate between its presents (other frames, published
apart) and across frames a slow client merged. Damage alone would follow the largest
rectangle, which flips between the 3D window (its damage box turning with what it
shows) and whatever else animates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vgpu.display import Present, Rect

STREAM_MIN_AREA = 96 * 96
"""spice-server's minimum stream size: smaller regions (a blinking cursor, a clock)
compress well losslessly and would only blur as video."""

STREAM_START_FRAMES = {"all": 2, "filter": 8}
"""Consecutive damaged frames before a stream starts. "filter" waits long enough to
tell animation from a burst of redraws (a window opening); "all" streams almost at once."""

STREAM_MAX_GAP_S = 0.2
"""Damage further apart than this is not an animation (5 frames per second at least)."""

STREAM_TIMEOUT_S = 1.0
"""A stream whose region has been still this long ends (spice-server's timeout too)."""

STREAM_MATCH = 0.9
"""Two damage rectangles are "the same region" when they overlap this much (intersection
over union): animated content jitters a little in size from frame to frame."""


# _area and _intersection run some thirty times per client and frame: comparisons, not
# max() and min() calls, which cost several times as much in CPython.
def _area(r: Rect) -> int:
    left, top, right, bottom = r
    if right <= left or bottom <= top:
        return 0
    return (right - left) * (bottom - top)


def _intersection(a: Rect, b: Rect) -> Rect:
    return (a[0] if a[0] > b[0] else b[0], a[1] if a[1] > b[1] else b[1],
            a[2] if a[2] < b[2] else b[2], a[3] if a[3] < b[3] else b[3])


def _overlap(a: Rect, b: Rect) -> float:
    inter = _area(_intersection(a, b))
    union = _area(a) + _area(b) - inter
    return inter / union if union else 0.0


def even(rect: Rect) -> Rect:
    """`rect` less its last column and row where its sides are odd: 4:2:0 video
    (H.264, VP8...) codes 2x2 blocks of colour. What is left out is drawn
    losslessly around the stream like any damage outside it."""
    left, top, right, bottom = rect
    return (left, top, right - (right - left) % 2, bottom - (bottom - top) % 2)


def subtract(rect: Rect, hole: Rect) -> list[Rect]:
    """`rect` minus `hole`, as at most four rectangles (above, below, left, right)."""
    inter = _intersection(rect, hole)
    if _area(inter) == 0:
        return [rect]
    left, top, right, bottom = rect
    il, it, ir, ib = inter
    parts = [
        (left, top, right, it),
        (left, ib, right, bottom),
        (left, it, il, ib),
        (ir, it, right, ib),
    ]
    return [p for p in parts if _area(p)]


def presented(presents: Iterable[Present], since: int) -> dict[Rect, int]:
    """The rects 3D presents wrote into in the frames after `since` (the last frame the
    client took), each with how many of those frames presented it."""
    counts: dict[Rect, int] = {}
    for present in presents:
        if present.serial > since:
            counts[present.rect] = counts.get(present.rect, 0) + 1
    return counts


def _shared_rect(candidate: Rect, known: Callable[[], Iterable[Rect]] | None) -> Rect:
    """The rectangle a new stream of `candidate` takes: another client's stream of the
    same region where there is one (the region as this client's planner sees it
    depends on when it joined and which frames it merged), so that their stream
    frames are one encode (SpiceServer.encode_stream); else the candidate, even."""
    best, best_overlap = even(candidate), STREAM_MATCH
    for rect in known() if known is not None else ():
        # Matched against the candidate itself, as plan() keeps a stream by: a
        # shared rectangle must not end the stream again at the next frame.
        overlap = _overlap(rect, candidate)
        if overlap >= best_overlap:
            best, best_overlap = rect, overlap
    return best


@dataclass
class Plan:
    """What to send for one frame: streams to end (with their rectangles to redraw
    losslessly), a stream to start, whether the stream gets a frame, lossless draws."""

    ended: list[tuple[int, Rect]] = field(default_factory=list)
    started: tuple[int, Rect] | None = None
    stream_frame: tuple[int, Rect] | None = None
    draws: list[Rect] = field(default_factory=list)


class StreamPlanner:
    def __init__(self, mode: str) -> None:
        if mode not in ("off", "all", "filter"):
            raise ValueError(f"streaming mode {mode!r}")
        self._mode = mode
        self._candidate: Rect | None = None
        self._count = 0
        self._candidate_presented = False  # the candidate is a 3D present's rect
        self._last_seen = 0.0
        self._next_id = 0
        self.active: tuple[int, Rect] | None = None
        self._active_damaged = 0.0

    def deadline(self) -> float | None:
        """When the active stream ends if its region stays still; None without a stream."""
        return self._active_damaged + STREAM_TIMEOUT_S if self.active else None

    def covers(self, rects: list[Rect]) -> bool:
        """Whether all of `rects` lie inside the active stream's rectangle: they go as its
        next frame whatever moved inside (the client's copy of that area is lossy, no
        source for a copy, and a frame overwrites any destination)."""
        if self.active is None or not rects:
            return False
        left, top, right, bottom = self.active[1]
        return all(left <= r[0] and top <= r[1] and r[2] <= right and r[3] <= bottom
                   for r in rects)

    def expire(self, now: float) -> Plan:
        """Ends the active stream if it has timed out (call when deadline() passes)."""
        plan = Plan()
        deadline = self.deadline()
        if self.active is not None and deadline is not None and now >= deadline:
            plan.ended.append(self.active)
            plan.draws.append(self.active[1])
            self.active = None
        return plan

    def reset(self) -> list[int]:
        """The surface is gone: forget everything; returns the streams to destroy."""
        ended = [self.active[0]] if self.active else []
        self.active = None
        self._candidate = None
        self._count = 0
        self._candidate_presented = False
        return ended

    def plan(self, rects: list[Rect], now: float, merged: int = 1,
             known: Callable[[], Iterable[Rect]] | None = None,
             presents: dict[Rect, int] | None = None) -> Plan:
        """`rects`: this frame's normalized damage (not cut into bands); `merged`: how
        many published frames it covers (a slow client takes one in several); `known`:
        asked only when a stream starts, the rectangles of other clients' streams of
        the same surface; `presents`: the rects 3D presents wrote into in those frames,
        with how many of them each (presented())."""
        plan = Plan()
        if self._mode == "off":
            plan.draws = list(rects)
            return plan
        if not (presents and self._track_presents(presents, now, merged)):
            self._track(rects, now, merged)
        start_at = STREAM_START_FRAMES[self._mode]
        busy = self._candidate is not None and self._count >= start_at
        if busy and (
            self.active is None or _overlap(self.active[1], self._candidate) < STREAM_MATCH
        ):
            if self.active is not None:
                plan.ended.append(self.active)
                rects = [*rects, self.active[1]]
            self._next_id += 1
            self.active = (self._next_id, _shared_rect(self._candidate, known))
            plan.started = self.active
        if self.active is None:
            plan.draws = list(rects)
            return plan
        area = self.active[1]
        for rect in rects:
            if _area(_intersection(rect, area)):
                plan.stream_frame = self.active
                self._active_damaged = now
            plan.draws.extend(subtract(rect, area))
        if plan.started is not None:
            plan.stream_frame = self.active
            self._active_damaged = now
        return plan

    def _track_presents(self, presents: dict[Rect, int], now: float, merged: int) -> bool:
        """Follows the largest rect a 3D present wrote into; False where none is large
        enough (the damage decides then)."""
        big = [r for r in presents if _area(r) >= STREAM_MIN_AREA]
        if not big:
            return False
        largest = max(big, key=_area)
        recent = now - self._last_seen <= STREAM_MAX_GAP_S or merged > 1
        if self._candidate_presented and recent and largest == self._candidate:
            self._count += presents[largest]
        else:
            self._candidate, self._count = largest, presents[largest]
            self._candidate_presented = True
        self._last_seen = now
        return True

    def _track(self, rects: list[Rect], now: float, merged: int) -> None:
        if self._candidate_presented:
            # Frames without a present (the desktop's, published apart) keep a 3D
            # window the candidate while it is presented as often as an animation is.
            if now - self._last_seen <= STREAM_MAX_GAP_S:
                return
            self._candidate, self._count, self._candidate_presented = None, 0, False
        big = [r for r in rects if _area(r) >= STREAM_MIN_AREA]
        if not big:
            if now - self._last_seen > STREAM_MAX_GAP_S:
                self._candidate, self._count = None, 0
            return
        largest = max(big, key=_area)
        # Several frames merged into one take are an animation however long the
        # client took: a slow link must not keep a busy region out of the stream.
        recent = now - self._last_seen <= STREAM_MAX_GAP_S or merged > 1
        if (
            self._candidate is not None
            and recent
            and _overlap(largest, self._candidate) >= STREAM_MATCH
        ):
            self._count += merged
        else:
            self._candidate, self._count = largest, merged
        self._last_seen = now
