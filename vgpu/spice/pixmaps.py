"""The client's pixmap cache, as the server must model it: what the client keeps, so that
an image it has is drawn FROM_CACHE (an id, no pixels) instead of sent again.

SPICE leaves the bookkeeping to the server. The client announces a capacity in pixels
(SPICE_MSGC_DISPLAY_INIT's pixmap_cache_size; spice-server counts width * height per
image), keeps every image sent with SPICE_IMAGE_FLAGS_CACHE_ME under its descriptor's id,
and forgets an id only when told to (SPICE_MSG_DISPLAY_INVAL_LIST). So the server evicts
least recently used images itself to stay within the capacity, and names them in an
INVAL_LIST before the draw that needed the room, as spice-server does. Which images to
look at comes from the renderer's placements (`vgpu.display.Placement`), hints that are
checked here against the frame's pixels. Nothing here does IO: the sender asks (the
digests on its encoder pool) and the display channel sends.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from vgpu.display import Frame, Placement, Rect, overlaps, subtract

MAX_CACHE_PIXELS = 64 << 20
"""The most pixels of a client's announced capacity that is used: spice-gtk 0.42 announces
20 Mi pixels, spice-html5 10 Mi; a hostile announcement (up to 2^63) is taken as this."""

MAX_CACHE_ENTRIES = 4096
"""Images modelled per client, whatever their pixels: bounds the server's memory per client
(an id and a digest each) when many small images would fit the capacity."""

DIGEST_BYTES = 16
"""What the model keeps of each image's pixels: a 128-bit digest of exactly what was sent,
so that a draw from the cache is checked against the frame, not trusted to a hint."""


@dataclass(frozen=True, slots=True)
class CachedPixmap:
    pixels: int  # width * height: what it counts against the capacity
    digest: bytes  # of the pixels it was sent with (DIGEST_BYTES)


class PixmapCache:
    """One display client's pixmap cache, least recently used first.

    Decisions are made image by image in the order the frame's draws go out; images used
    in the frame being built are never evicted for another of the same frame (as
    spice-server refuses to evict what the message being built holds), so that the
    frame's evictions can all go in one INVAL_LIST before its draws.
    """

    def __init__(self) -> None:
        self.capacity = 0  # pixels; 0 until the client's display init says otherwise
        self.used = 0
        self._entries: OrderedDict[int, CachedPixmap] = OrderedDict()
        self._frame: set[int] = set()  # ids the frame being built uses
        self._evicted: list[int] = []  # ids to invalidate before the frame's draws

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, image_id: int) -> bool:
        return image_id in self._entries

    def set_capacity(self, pixels: int) -> None:
        """The client's display init: a negative size (or none sent) means no cache."""
        self.capacity = max(0, min(pixels, MAX_CACHE_PIXELS))

    def hit(self, image_id: int, digest: bytes) -> bool:
        """True when the client has `image_id` with exactly these pixels: draw it from the
        cache (it becomes the most recently used)."""
        entry = self._entries.get(image_id)
        if entry is None or entry.digest != digest:
            return False
        self._entries.move_to_end(image_id)
        self._frame.add(image_id)
        return True

    def add(self, image_id: int, pixels: int, digest: bytes) -> bool:
        """Makes room for an image the client is to keep (evicting the least recently
        used) and records it: True when it is to be sent with CACHE_ME. False when it
        cannot be kept: larger than the cache, an id the client holds already (with other
        pixels: it is never replaced under the client's feet), or no room without evicting
        an image this frame uses."""
        if image_id in self._entries or pixels <= 0 or pixels > self.capacity:
            return False
        evict: list[int] = []
        free = self.capacity - self.used
        count = len(self._entries)
        for old_id, old in self._entries.items():
            if free >= pixels and count < MAX_CACHE_ENTRIES:
                break
            if old_id in self._frame:
                return False
            evict.append(old_id)
            free += old.pixels
            count -= 1
        if free < pixels or count >= MAX_CACHE_ENTRIES:
            return False
        for old_id in evict:
            self.used -= self._entries.pop(old_id).pixels
        self._evicted += evict
        self._entries[image_id] = CachedPixmap(pixels, digest)
        self.used += pixels
        self._frame.add(image_id)
        return True

    def end_frame(self) -> list[int]:
        """The ids evicted while the frame was built, for its INVAL_LIST (sent before its
        draws); the next frame starts."""
        evicted, self._evicted = self._evicted, []
        self._frame.clear()
        return evicted


CACHE_ID_BITS = 53
"""A placement's 64-bit content key becomes the image id in its top 53 bits: spice-html5
reads ids into JavaScript numbers, exact only up to 2^53, and keys its cache by them."""

CACHE_ME_MIN_SHARE = 0.5
"""An image the client lacks is sent whole (to be kept) only where the damage covers at
least this share of it; a sliver of damage over a photo goes as the sliver."""


def cache_id(key: int) -> int:
    """The image id a placement's content key is cached under (the same for every client,
    so what the shared encode made goes to all of them alike)."""
    return key >> (64 - CACHE_ID_BITS)


def digest(frame: Frame, rect: Rect) -> bytes:
    """DIGEST_BYTES of the frame's pixels in `rect`: what a cached image is checked by."""
    left, top, right, bottom = rect
    pixels = np.ascontiguousarray(frame.pixels[top:bottom, left:right])
    return hashlib.blake2b(pixels, digest_size=DIGEST_BYTES).digest()


def candidates(frame: Frame, rects: list[Rect], avoid: Rect | None) -> list[Placement]:
    """The frame's placements worth a look: inside the frame, touching the damage `rects`,
    clear of `avoid` (a video stream's area) and of each other (the newest wins)."""
    chosen: list[Placement] = []
    for placement in reversed(frame.placements):
        left, top, right, bottom = rect = placement.rect
        if not (0 <= left < right <= frame.width and 0 <= top < bottom <= frame.height):
            continue  # a hint from a surface that was bigger, or nonsense
        if avoid is not None and overlaps(rect, avoid):
            continue
        if any(overlaps(rect, other.rect) for other in chosen):
            continue
        if any(overlaps(rect, r) for r in rects):
            chosen.append(placement)
    return chosen


def damaged_share(rect: Rect, rects: list[Rect]) -> float:
    """How much of `rect` the (disjoint) damage `rects` covers, 0 to 1."""
    covered = 0
    for r in rects:
        w = min(rect[2], r[2]) - max(rect[0], r[0])
        h = min(rect[3], r[3]) - max(rect[1], r[1])
        if w > 0 and h > 0:
            covered += w * h
    return covered / ((rect[2] - rect[0]) * (rect[3] - rect[1]))


def subtract_all(rects: list[Rect], holes: list[Rect]) -> list[Rect]:
    """What of `rects` lies outside every hole, as rectangles."""
    for hole in holes:
        rects = [part for r in rects
                 for part in (subtract(r, hole) if overlaps(r, hole) else [r])]
    return rects
