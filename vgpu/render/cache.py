"""The image cache: decoded guest images kept as textures, bounded in bytes, LRU."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

IMAGE_CACHE_BYTES = 128 << 20
"""Texture bytes the cache may hold: spice-server's own client-side image cache defaults to
80 MiB of 32-bit pixels, a bit more here keeps its working set (icons, glyph runs, window
backgrounds) resident; 128 MiB is still small next to the surfaces of a multi-head guest."""


@dataclass(slots=True)
class CachedImage:
    texture: Any  # moderngl.Texture (or anything with release()) holding the decoded pixels
    width: int
    height: int
    has_alpha: bool

    @property
    def nbytes(self) -> int:
        return self.width * self.height * 4


class ImageCache:
    """Keyed by (image id, palette identity): a guest may send one bitmap id with several
    palettes (the Windows blinking cursor), and each must show its own colours."""

    def __init__(self, max_bytes: int = IMAGE_CACHE_BYTES,
                 release: Callable[[Any], None] | None = None) -> None:
        self.max_bytes = max_bytes
        # Evicted textures go here rather than being freed at once: a queued draw may still
        # sample them (the renderer frees them after its next flush).
        self._release = release or (lambda tex: tex.release())
        self.bytes = 0
        self._entries: OrderedDict[Hashable, CachedImage] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> CachedImage | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, entry: CachedImage) -> None:
        """Adds an entry (the caller checked it is not there), evicting least recently used
        ones until the total fits; an entry larger than the whole cache is not kept."""
        if entry.nbytes > self.max_bytes:
            self._release(entry.texture)
            return
        self._entries[key] = entry
        self.bytes += entry.nbytes
        while self.bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.nbytes
            self._release(old.texture)

    def clear(self) -> None:
        for entry in self._entries.values():
            self._release(entry.texture)
        self._entries.clear()
        self.bytes = 0
