"""The image cache: decoded guest images kept on the GPU, bounded in bytes, LRU.

Small cached images share one texture (`SlotAtlas`), so that copies of different cached
images still batch into one draw call; larger ones get a texture each."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

IMAGE_CACHE_BYTES = 128 << 20
"""Texture bytes the cache may hold: spice-server's own client-side image cache defaults to
80 MiB of 32-bit pixels, a bit more here keeps its working set (icons, glyph runs, window
backgrounds) resident; 128 MiB is still small next to the surfaces of a multi-head guest."""

SLOT_ATLAS_SIDE = 4096
"""Side of the shared texture for small cached images: 64 MiB, half the cache's bound."""

PAGE = 256
"""The shared texture is cut into PAGE x PAGE pages, each holding square slots of one size
class (16, 32, ..., PAGE): an image takes the smallest class that fits it, so at most three
quarters of a slot is wasted and freeing is O(1)."""

SLOT_CLASSES = (16, 32, 64, 128, 256)


def content_key(pixels: bytes, width: int, height: int) -> int:
    """A 64-bit hash of a decoded image's pixels and size: what a placement names the image
    by (the guest's image id is the guest's to choose, and it reuses ids)."""
    digest = hashlib.blake2b(pixels, digest_size=8, person=b"vgpu-img")
    digest.update(width.to_bytes(4, "little") + height.to_bytes(4, "little"))
    return int.from_bytes(digest.digest(), "little")


def part_key(content: int, area: tuple[int, int, int, int]) -> int:
    """The key of the part `area` (left, top, right, bottom) of the image `content`."""
    data = content.to_bytes(8, "little") + b"".join(v.to_bytes(4, "little") for v in area)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, person=b"vgpu-part").digest(),
                          "little")


@dataclass(slots=True)
class CachedImage:
    texture: Any  # moderngl.Texture holding the decoded pixels (shared or its own)
    x: int  # the image's place inside the texture
    y: int
    width: int
    height: int
    has_alpha: bool
    slot: tuple[int, int] | None = None  # (class, slot id) in the SlotAtlas, if there
    source: Any = None  # the renderer's ready-made Source for a hit (one per entry, not per op)

    @property
    def nbytes(self) -> int:
        if self.slot is not None:
            return self.slot[0] * self.slot[0] * 4
        return self.width * self.height * 4


class SlotAtlas:
    """Slot bookkeeping for the shared texture (no GL here)."""

    def __init__(self, side: int = SLOT_ATLAS_SIDE) -> None:
        per_row = side // PAGE
        self._free_pages = [(i % per_row * PAGE, i // per_row * PAGE)
                            for i in range(per_row * per_row)]
        self._free: dict[int, list[tuple[int, int]]] = {c: [] for c in SLOT_CLASSES}
        self._page_used: dict[tuple[int, int], int] = {}

    @staticmethod
    def size_class(width: int, height: int) -> int | None:
        side = max(width, height)
        return next((c for c in SLOT_CLASSES if side <= c), None)

    def alloc(self, cls: int) -> tuple[int, int] | None:
        """A free slot's top-left corner, or None when the texture is full for this class."""
        free = self._free[cls]
        if not free:
            if not self._free_pages:
                return None
            px, py = self._free_pages.pop()
            n = PAGE // cls
            free.extend((px + i * cls, py + j * cls) for j in range(n) for i in range(n))
            self._page_used[(px, py)] = 0
        at = free.pop()
        page = (at[0] - at[0] % PAGE, at[1] - at[1] % PAGE)
        self._page_used[page] += 1
        return at

    def free(self, cls: int, at: tuple[int, int]) -> None:
        page = (at[0] - at[0] % PAGE, at[1] - at[1] % PAGE)
        self._page_used[page] -= 1
        if self._page_used[page]:
            self._free[cls].append(at)
            return
        # an empty page goes back to the pool, for any class
        del self._page_used[page]
        self._free[cls] = [s for s in self._free[cls]
                           if (s[0] - s[0] % PAGE, s[1] - s[1] % PAGE) != page]
        self._free_pages.append(page)


class ImageCache:
    """Keyed by (image id, palette identity): a guest may send one bitmap id with several
    palettes (the Windows blinking cursor), and each must show its own colours."""

    def __init__(self, max_bytes: int = IMAGE_CACHE_BYTES,
                 release: Callable[[CachedImage], None] | None = None) -> None:
        self.max_bytes = max_bytes
        # Called for every entry that leaves; the renderer frees its slot or texture when no
        # queued draw can still sample it.
        self._release = release or (lambda entry: entry.texture.release())
        self.bytes = 0
        self._entries: OrderedDict[Hashable, CachedImage] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, width: int | None = None, height: int | None = None
            ) -> CachedImage | None:
        """The entry under `key`; with a size, only an entry of that size (a guest may reuse
        an id for another image)."""
        entry = self._entries.get(key)
        if entry is None or (width is not None
                             and (entry.width != width or entry.height != height)):
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, entry: CachedImage) -> None:
        """Adds an entry, evicting least recently used ones until the total fits; an entry
        larger than the whole cache is not kept. One already under `key` (a guest may send
        an id again with another size) is released first, so its bytes are not counted on."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes
            self._release(old)
        if entry.nbytes > self.max_bytes:
            self._release(entry)
            return
        self._entries[key] = entry
        self.bytes += entry.nbytes
        while self.bytes > self.max_bytes:
            self.evict_oldest()

    def evict_oldest(self) -> bool:
        """Drops the least recently used entry; False when the cache is empty."""
        if not self._entries:
            return False
        _, old = self._entries.popitem(last=False)
        self.bytes -= old.nbytes
        self._release(old)
        return True

    def clear(self) -> None:
        for entry in self._entries.values():
            self._release(entry)
        self._entries.clear()
        self.bytes = 0
