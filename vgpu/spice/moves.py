"""What one display client shows, so that content the guest moved is copied by the
client (COPY_BITS) instead of sent again.

The client's picture is the last frame sent to it, except where it got lossy images
or a video stream: sources of a copy must lie outside those. Copies come in two steps:
before the frame's draws, from the client's last picture (content that moved), and
after them, from what the client then holds exactly (a tile the guest drew in this
frame and repeated across the screen). Nothing here touches sockets; the sender asks
for moves before it encodes and says what it sent after.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vgpu.display import Frame, Move, Rect
from vgpu.encode.codecs import changed_tiles
from vgpu.encode.motion import MIN_HINTED_PIXELS, find_hinted_move, find_move, find_repeat
from vgpu.spice.channels import EncodedRegion
from vgpu.spice.imaging import _contains

MAX_INEXACT_RECTS = 64
"""Past this many lossy rectangles still on the client, it is taken as inexact
everywhere (no copies until its next whole picture): bounds the bookkeeping."""

TRIM_TILE = 16
"""Damage is trimmed to the tiles of this size that changed: the size of a glyph row,
so text that was redrawn the same goes nowhere."""
MAX_TRIMMED_RECTS = 16
"""A damaged rectangle trimmed into more pieces than this goes as their bounding box:
each piece is a message with its own image header (about 60 bytes and more)."""

MAX_DRAWN_COPY_PIXELS = 4 * 1920 * 1080
"""Pixels compared per frame for the copies after the draws (one comparison per guest
copy and damaged rectangle it meets, of their overlap): a root window's tile repeated by
doubling is many small copies (Xspice's images session makes about 100 in one frame,
strips of a few KB of pixels each where a copy's message is 35 bytes); a terminal that
scrolled line by line would be a screen's comparison per line. Four full-HD screens
cost about 20 ms."""

MAX_SEARCH_BACKOFF = 16
"""A client whose searches for dragged windows found none searches again only on every
2nd, 4th, ... up to this many frames: a picture that changes without moving (video, an
animation) would otherwise pay a search through its damaged area every frame."""

Copy = tuple[Rect, tuple[int, int]]
"""A destination rectangle and the top-left of its source, on the client's picture."""
Hint = tuple[Rect, int, int]
"""A destination rectangle and (dx, dy) to where the client's picture may hold it."""


@dataclass(frozen=True)
class Search:
    """One client's question: what of `rects` moved or changed from `prev` (its picture)
    to `frame`, checking the guest's own copies (`hints`) first, then searching for
    scrolls where `scrolls` and for dragged windows in `area` (None: not), with no
    source in its `inexact` rectangles."""

    prev: Frame
    frame: Frame
    rects: tuple[Rect, ...]
    area: Rect | None
    inexact: tuple[Rect, ...]
    hints: tuple[Hint, ...] = ()
    scrolls: bool = True
    steps: tuple[Hint, ...] = ()
    """The guest's copies since `prev`, in the guest's order, for the copies after the
    draws; empty where the client may get lossy draws (nothing is copied from those)."""

    def key(self) -> tuple[object, ...]:
        """Equal for equal searches of one frame (frames are kept by their serials)."""
        return ("moves", self.prev.serial, self.rects, self.area, self.inexact, self.scrolls,
                bool(self.steps))

    def checks_only(self) -> Search:
        """The same question answered by the guest's copies alone: no search."""
        return replace(self, area=None, scrolls=False)


class ClientPicture:
    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._inexact: list[Rect] = []
        self._misses = 0  # searches for windows in a row that found none

    def reset(self, frame: Frame, region: EncodedRegion) -> None:
        """The client got `frame` whole, as `region`."""
        self._frame = frame
        self._inexact = [region.rect] if region.lossy else []

    def search(self, frame: Frame, rects: list[Rect], consecutive: bool = True,
               lossless: bool = True) -> Search | None:
        """What to look for between the client's picture and `frame` (None: nothing,
        the client has no picture of this surface). Equal searches give equal answers,
        so clients that keep up share one (SpiceServer.moves). A client that skipped
        frames (not `consecutive`) only checks the guest's copies since its picture:
        a check costs a comparison, not a search, so per-client ones stay cheap.
        `lossless`: the frame's draws reach the client exactly, so copies may read
        them (after the draws)."""
        prev = self._frame
        if prev is None or prev.surface_serial != frame.surface_serial:
            return None
        hints = guest_moves(frame.moves, prev.serial)
        steps = tuple((m.rect, m.dx, m.dy) for m in frame.moves
                      if m.serial > prev.serial and (m.dx, m.dy) != (0, 0)) if lossless else ()
        if not consecutive:
            return (Search(prev, frame, tuple(rects), None, tuple(self._inexact),
                           hints, steps=steps).checks_only() if hints or steps else None)
        # Where a window went is in the frame's damage, and so is where it came from.
        # Searches back off on frame serials, not on a count of each client's own, so
        # that clients that missed alike search the same frames and share the search.
        area: Rect | None = None
        if rects and frame.serial % min(MAX_SEARCH_BACKOFF, 1 << self._misses) == 0:
            area = (min(r[0] for r in rects), min(r[1] for r in rects),
                    max(r[2] for r in rects), max(r[3] for r in rects))
        return Search(prev, frame, tuple(rects), area, tuple(self._inexact), hints, steps=steps)

    def searched(self, search: Search, dragged: bool) -> None:
        """Backs off the searches for windows while they find none."""
        if search.area is not None:
            self._misses = 0 if dragged else self._misses + 1

    def sent(self, frame: Frame, regions: list[EncodedRegion], streamed: Rect | None,
             drawn: list[Copy] | tuple[Copy, ...] = ()) -> None:
        """The client now shows `frame`, but for lossy `regions` and the stream's area.
        `drawn`: the copies made after the draws; one whose source met lossy pixels (or
        an earlier such copy) leaves its destination as inexact as they are."""
        if self._frame is None:
            return  # taken as inexact everywhere until its next whole picture (reset)
        lossy = [r.rect for r in regions if r.lossy]
        if streamed is not None:
            lossy.append(streamed)
        exact = [r.rect for r in regions if not r.lossy]
        for dest, source in drawn:
            if any(_overlap(_source_rect(dest, source), r) for r in self._inexact + lossy):
                lossy.append(dest)
            else:
                exact.append(dest)
        inexact = [r for r in self._inexact if not any(_contains(e, r) for e in exact)]
        # Each rectangle once: the stream's area is inexact after every frame of it,
        # and a list that grew by it each frame cost every later send a scan of all.
        for rect in lossy:
            if not any(_contains(r, rect) for r in inexact):
                inexact.append(rect)
        if len(inexact) > MAX_INEXACT_RECTS:
            self._frame, self._inexact = None, []
        else:
            self._frame, self._inexact = frame, inexact


def find_moves(search: Search) -> tuple[list[Copy], list[Rect], bool, list[Copy]]:
    """Copies the client can make from its picture toward the new frame, what of the
    damage is left to send as images (only what differs from the client's picture),
    whether a window was dragged, and the copies to make after those images are drawn
    (drawn_copies). The copies run first, in order: none reads where an earlier one
    wrote, or where the client's picture is inexact."""
    prev, frame, inexact = search.prev, search.frame, list(search.inexact)
    copies: list[Copy] = []
    rest: list[Rect] = []
    dragged = False
    for rect in search.rects:
        found = find_hinted_move(prev.pixels, frame.pixels, rect, search.hints)
        # A hinted block short of the whole rectangle may be a guest step that matches
        # a little (one line of a scroll that went on in the same frame): the search
        # may find more, and the larger block is copied.
        if search.scrolls and (found is None or found[0] != rect):
            searched = find_move(prev.pixels, frame.pixels, rect, search.area)
            if searched is not None and (found is None or _area(searched[0]) > _area(found[0])):
                found = searched
                dragged |= searched[1] != 0
        if found is None:
            rest.append(rect)
            continue
        (left, top, right, bottom), dx, dy = found
        source = (left + dx, top + dy, right + dx, bottom + dy)
        if any(_overlap(source, r) for r in inexact + [d for d, _ in copies]):
            rest.append(rect)
            continue
        copies.append(((left, top, right, bottom), (left + dx, top + dy)))
        rest.extend(_around(rect, (left, top, right, bottom)))
    drawn, rest = drawn_copies(frame, rest, search.steps, inexact)
    if not copies and not drawn and not search.scrolls:
        return [], list(search.rects), False, []  # untrimmed: encodes others share
    # Trimmed after the search: a move is found in whole rectangles, not in the
    # pieces of them that changed. (A copy writes the new frame's pixels, so the
    # pieces trimmed away, equal in both frames, stay right wherever it lands.)
    return (copies, [t for r in rest for t in _changed(prev, frame, r, inexact)], dragged,
            drawn)


def drawn_copies(frame: Frame, rects: list[Rect], steps: tuple[Hint, ...],
                 inexact: list[Rect]) -> tuple[list[Copy], list[Rect]]:
    """Copies the client makes after `rects` are drawn, where the guest copied within the
    frame (`steps`, in its order) and the frame's pixels agree, and the rects left to
    draw. Made in order, each reads only pixels the client then holds exactly: none
    reads where it or a later one writes (not yet written), or where the client's
    picture is `inexact`; the sender also keeps them off a stream's area. Their
    sources may lie in the drawn rects, in earlier copies, or where nothing changed."""
    pixels, rest = frame.pixels, list(rects)
    copies: list[Copy] = []
    sources: list[Rect] = []
    budget = MAX_DRAWN_COPY_PIXELS
    for (m_left, m_top, m_right, m_bottom), dx, dy in dict.fromkeys(steps):
        i = 0
        while i < len(rest):
            rect = rest[i]
            left, top = max(rect[0], m_left), max(rect[1], m_top)
            right, bottom = min(rect[2], m_right), min(rect[3], m_bottom)
            if (right <= left or bottom <= top
                    or (right - left) * (bottom - top) < MIN_HINTED_PIXELS):
                i += 1
                continue
            budget -= (right - left) * (bottom - top)
            if budget < 0:
                return copies, rest
            block = find_repeat(pixels, (left, top, right, bottom), dx, dy)
            if block is None:
                i += 1
                continue
            source = _source_rect(block, (block[0] + dx, block[1] + dy))
            if (_overlap(source, block) or any(_overlap(source, r) for r in inexact)
                    or any(_overlap(block, s) for s in sources)):
                i += 1
                continue
            copies.append((block, (source[0], source[1])))
            sources.append(source)
            # the rest of this rect, checked again against the same guest copy
            rest[i:i + 1] = _around(rect, block)
    return copies, rest


def clear_of(copies: list[Copy], area: Rect | None) -> list[Copy]:
    """The copies after the draws that neither read nor write `area` (a video stream's:
    its frame comes after them, and what the client shows there is lossy)."""
    if area is None:
        return copies
    return [(dest, source) for dest, source in copies
            if not _overlap(dest, area) and not _overlap(_source_rect(dest, source), area)]


def _around(rect: Rect, block: Rect) -> list[Rect]:
    """`rect` less `block` (inside it): the bands above and below, the pieces beside."""
    left, top, right, bottom = block
    return [r for r in ((rect[0], rect[1], rect[2], top), (rect[0], bottom, rect[2], rect[3]),
                        (rect[0], top, left, bottom), (right, top, rect[2], bottom))
            if r[0] < r[2] and r[1] < r[3]]


def _source_rect(dest: Rect, source: tuple[int, int]) -> Rect:
    return (source[0], source[1], source[0] + dest[2] - dest[0], source[1] + dest[3] - dest[1])


def guest_moves(moves: tuple[Move, ...], since: int) -> tuple[Hint, ...]:
    """The guest's copies first shown after frame `since` (the client's picture), newest
    first, as hints from that picture: a copy whose source lies inside an earlier copy's
    destination is taken back through it as well (a window dragged several times between
    two frames the client got is at the sum of the steps from where the client saw it)."""
    chain: list[Hint] = []
    for move in moves:
        if move.serial <= since:
            continue
        left, top, right, bottom = move.rect
        source = (left + move.dx, top + move.dy, right + move.dx, bottom + move.dy)
        chain.append((move.rect, move.dx, move.dy))
        for rect, dx, dy in reversed(chain[:-1]):
            if _contains(rect, source):
                chain.append((move.rect, move.dx + dx, move.dy + dy))
                break
    out: list[Hint] = []
    for hint in reversed(chain):  # newest first: composed ones were appended last
        if hint not in out and hint[1:] != (0, 0):  # (dragged back: nothing to copy)
            out.append(hint)
    return tuple(out)


def _changed(prev: Frame, frame: Frame, rect: Rect, inexact: list[Rect]) -> list[Rect]:
    """The tiles of `rect` that differ from the client's picture: a guest redraws
    more than it changes (bench/data/windows: 430 pixels changed in a damaged
    800x301). Where the client's picture is inexact, all of rect."""
    if any(_overlap(rect, r) for r in inexact):
        return [rect]
    left, top, right, bottom = rect
    tiles = changed_tiles(prev.pixels[top:bottom, left:right],
                          frame.pixels[top:bottom, left:right], TRIM_TILE)
    if len(tiles) > MAX_TRIMMED_RECTS:
        tiles = [(min(t[0] for t in tiles), min(t[1] for t in tiles),
                  max(t[2] for t in tiles), max(t[3] for t in tiles))]
    return [(left + x0, top + y0, left + x1, top + y1) for x0, y0, x1, y1 in tiles]


def _area(r: Rect) -> int:
    return (r[2] - r[0]) * (r[3] - r[1])


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

