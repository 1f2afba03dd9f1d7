"""The image cache's byte bound and LRU order (no GL)."""

from __future__ import annotations

from vgpu.render.cache import CachedImage, ImageCache


class _Tex:
    def __init__(self) -> None:
        self.released = False

    def release(self) -> None:
        self.released = True


def test_lru_eviction_by_bytes():
    cache = ImageCache(max_bytes=3 * 400)
    texes = [_Tex() for _ in range(4)]
    for i in range(3):
        cache.put(i, CachedImage(texes[i], 10, 10, False))
    assert cache.get(0) is not None  # 0 is now the most recent
    cache.put(3, CachedImage(texes[3], 10, 10, False))
    assert cache.get(1) is None and texes[1].released
    assert all(cache.get(k) is not None for k in (0, 2, 3))
    assert cache.bytes == 1200
    huge = _Tex()
    cache.put(9, CachedImage(huge, 100, 100, False))
    assert cache.get(9) is None and huge.released and len(cache) == 3
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0 and texes[0].released
