"""The image cache's byte bound and LRU order, and the shared texture's slots (no GL)."""

from __future__ import annotations

import random

from vgpu.render.cache import PAGE, CachedImage, ImageCache, SlotAtlas


def _entry(w: int, h: int, tag: list) -> CachedImage:
    return CachedImage(tag, 0, 0, w, h, False)


def test_lru_eviction_by_bytes():
    released: list = []
    cache = ImageCache(max_bytes=3 * 400, release=lambda e: released.append(e.texture))
    for i in range(3):
        cache.put(i, _entry(10, 10, [i]))
    assert cache.get(0) is not None  # 0 is now the most recent
    cache.put(3, _entry(10, 10, [3]))
    assert cache.get(1) is None and released == [[1]]
    assert all(cache.get(k) is not None for k in (0, 2, 3))
    assert cache.bytes == 1200
    cache.put(9, _entry(100, 100, [9]))
    assert cache.get(9) is None and released[-1] == [9] and len(cache) == 3
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0 and len(released) == 5


def test_put_under_a_taken_key_replaces_the_entry():
    """A guest may send a cached id again with another size: the old entry leaves (released,
    its bytes no longer counted), else the cache would fill with bytes nobody holds."""
    released: list = []
    cache = ImageCache(max_bytes=3 * 400, release=lambda e: released.append(e.texture))
    cache.put(1, _entry(10, 10, ["small"]))
    cache.put(1, _entry(10, 20, ["tall"]))
    assert len(cache) == 1 and cache.bytes == 800 and released == [["small"]]
    assert cache.get(1).texture == ["tall"]
    cache.put(1, _entry(100, 100, ["huge"]))  # too big to keep: the key is then empty
    assert cache.get(1) is None and cache.bytes == 0 and released[1:] == [["tall"], ["huge"]]


def test_slot_atlas_allocates_disjoint_slots_and_recycles_pages():
    atlas = SlotAtlas(side=2 * PAGE)  # four pages
    assert SlotAtlas.size_class(17, 3) == 32 and SlotAtlas.size_class(300, 1) is None
    taken: list[tuple[int, tuple[int, int]]] = []
    rng = random.Random(4)
    for _ in range(2000):
        if taken and rng.random() < 0.45:
            cls, at = taken.pop(rng.randrange(len(taken)))
            atlas.free(cls, at)
            continue
        cls = rng.choice([16, 64, 128, 256])
        at = atlas.alloc(cls)
        if at is None:
            continue
        assert 0 <= at[0] <= 2 * PAGE - cls and 0 <= at[1] <= 2 * PAGE - cls
        for other_cls, o in taken:  # never overlapping a live slot
            assert (at[0] + cls <= o[0] or o[0] + other_cls <= at[0]
                    or at[1] + cls <= o[1] or o[1] + other_cls <= at[1])
        taken.append((cls, at))
    for cls, at in taken:
        atlas.free(cls, at)
    assert len([atlas.alloc(256) for _ in range(4)]) == 4 and atlas.alloc(256) is None
