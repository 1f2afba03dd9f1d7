"""The client's pixmap cache as the server models it (vgpu.spice.pixmaps), without sockets.

Expected behaviour is SPICE's: spice-server counts width * height per image against the
size the client's display init announces, evicts least recently used images and names
them in INVAL_LIST before the draw that needed the room; spice-gtk and spice-html5 keep
whatever carries CACHE_ME until told otherwise. The wire side is checked by a model of
that client below (and by the real ones in test_real_clients.py)."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from spice_testkit import mini, split_messages

from vgpu.display import Frame, Placement
from vgpu.spice import constants as const
from vgpu.spice import pixmaps
from vgpu.spice.channels import ChannelClosed, DisplayChannel, EncodedRegion, FrameUpdate
from vgpu.spice.link import Linked
from vgpu.spice.pixmaps import PixmapCache, cache_id, candidates, digest, subtract_all

D1, D2 = b"\1" * 16, b"\2" * 16


def cache(capacity: int) -> PixmapCache:
    model = PixmapCache()
    model.set_capacity(capacity)
    return model


def test_no_display_init_or_a_hostile_one_means_no_cache():
    assert not PixmapCache().add(1, 100, D1)  # no init yet: capacity 0
    assert not cache(-1 << 40).add(1, 100, D1)
    assert cache(1 << 62).capacity == pixmaps.MAX_CACHE_PIXELS


def test_kept_images_hit_only_with_the_same_pixels():
    model = cache(1000)
    assert model.add(7, 100, D1)
    assert model.hit(7, D1)
    assert not model.hit(7, D2)  # the hint named 7, the frame shows something else
    assert not model.hit(8, D1)
    assert not model.add(7, 100, D2)  # never replaced under the client's feet
    assert not model.add(9, 1001, D1)  # larger than the whole cache
    assert model.end_frame() == []


def test_least_recently_used_goes_first_and_is_named():
    model = cache(300)
    for image_id in (1, 2, 3):
        assert model.add(image_id, 100, D1)
    model.end_frame()
    assert model.hit(1, D1)  # 2 is now the oldest
    model.end_frame()
    assert model.add(4, 150, D1)  # needs 2 and 3 gone
    assert model.end_frame() == [2, 3]
    assert (len(model), model.used) == (2, 250)
    assert 1 in model and 4 in model


def test_what_a_frame_uses_is_not_evicted_for_the_same_frame():
    model = cache(200)
    assert model.add(1, 100, D1) and model.add(2, 100, D1)
    assert not model.add(3, 100, D1)  # only room by evicting 1 or 2, drawn this frame
    assert model.end_frame() == []
    assert model.hit(2, D1)
    assert model.add(3, 100, D1)  # 1 is free to go now, 2 is used again
    assert model.end_frame() == [1]


def test_entries_are_bounded_whatever_the_pixels(monkeypatch):
    monkeypatch.setattr(pixmaps, "MAX_CACHE_ENTRIES", 3)
    model = cache(10**6)
    for image_id in range(3):
        assert model.add(image_id, 1, D1)
    model.end_frame()
    assert model.add(3, 1, D1)
    assert model.end_frame() == [0] and len(model) == 3


def linked_display() -> DisplayChannel:
    return DisplayChannel(Linked(const.SPICE_CHANNEL_DISPLAY, 0, 0, (0b1011,), ()))


def display_init(size: int) -> bytes:
    return mini(const.SPICE_MSGC_DISPLAY_INIT, struct.pack("<BqBi", 1, size, 0, 0))


def test_display_init_sizes_the_cache_once():
    channel = linked_display()
    channel.receive_data(display_init(20 << 20))
    assert channel.pixmaps.capacity == 20 << 20
    # spice-server refuses a second init too (its cache is in use)
    events = channel.receive_data(display_init(1))
    assert isinstance(events[-1], ChannelClosed) and "second display init" in events[-1].reason


class ClientCache:
    """What spice-gtk's display channel does with the cache messages: keeps CACHE_ME
    images by id, drops INVAL_LIST ids, and needs every FROM_CACHE id to be there."""

    def __init__(self) -> None:
        self.images: dict[int, int] = {}  # id -> pixels

    def feed(self, data: bytes) -> None:
        for msg_type, body in split_messages(data):
            if msg_type == const.SPICE_MSG_DISPLAY_INVAL_LIST:
                (count,) = struct.unpack_from("<H", body)
                assert len(body) == 2 + 9 * count
                for i in range(count):
                    res_type, image_id = struct.unpack_from("<BQ", body, 2 + 9 * i)
                    assert res_type == const.SPICE_RES_TYPE_PIXMAP
                    self.images.pop(image_id)  # only what the client holds is named
            elif msg_type == const.SPICE_MSG_DISPLAY_DRAW_COPY:
                (image_at,) = struct.unpack_from("<I", body, 21)
                image_id, image_type, flags, w, h = struct.unpack_from("<QBBII", body, image_at)
                if image_type == const.SPICE_IMAGE_TYPE_FROM_CACHE:
                    assert image_id in self.images, f"image {image_id} not in the cache"
                    assert len(body) == image_at + 18  # an id, no pixels
                elif flags & const.SPICE_IMAGE_FLAGS_CACHE_ME:
                    self.images[image_id] = w * h


def test_random_frames_keep_the_clients_cache_as_modelled():
    """Frames drawing random images, from the cache where the model says the client has
    them: the client never misses one, and never holds more than it announced."""
    rng = random.Random(11)
    capacity = 4000
    channel, client = linked_display(), ClientCache()
    channel.receive_data(display_init(capacity))
    channel.show_surface(64, 64, False, EncodedRegion((0, 0, 64, 64), 0, b""))
    sizes = {image_id: rng.randint(100, 1500) for image_id in range(20)}
    for _frame in range(300):
        draws = []
        for image_id in rng.sample(sorted(sizes), rng.randint(0, 4)):
            pixels = sizes[image_id]
            rect = (0, 0, pixels // 100, 100)
            if channel.pixmaps.hit(image_id, D1):
                draws.append(EncodedRegion(rect, const.SPICE_IMAGE_TYPE_FROM_CACHE, b"",
                                           cache_id=image_id))
            else:
                kept = channel.pixmaps.add(image_id, pixels, D1)
                draws.append(EncodedRegion(rect, const.SPICE_IMAGE_TYPE_LZ4, b"\0" * 4,
                                           cache_id=image_id if kept else None))
        channel.show_update(FrameUpdate(draws=tuple(draws),
                                        invalidated=tuple(channel.pixmaps.end_frame())))
        client.feed(channel.data_to_send())
        assert sum(client.images.values()) <= capacity
        assert client.images.keys() == {i for i in sizes if i in channel.pixmaps}


def frame_with(placements: tuple[Placement, ...], w: int = 64, h: int = 48) -> Frame:
    pixels = np.arange(w * h * 4, dtype=np.uint32).astype(np.uint8).reshape(h, w, 4)
    return Frame(1, 1, pixels, ((0, 0, w, h),), placements=placements)


def test_candidates_are_checked_hints():
    inside = Placement(1, (8, 8, 24, 24))
    frame = frame_with((
        Placement(2, (40, 40, 80, 80)),  # past the frame's edge
        inside,
        Placement(3, (30, 0, 60, 20)),  # in the stream's area
        Placement(4, (0, 34, 16, 46)),  # not damaged
        Placement(5, (16, 16, 32, 32)),  # newer, over `inside`: the newest wins
    ))
    assert candidates(frame, [(0, 0, 32, 32)], avoid=(32, 0, 64, 16)) == [
        frame.placements[4]]
    assert candidates(frame_with((inside,)), [(0, 0, 10, 10)], None) == [inside]


def test_digest_is_of_the_pixels_and_ids_of_the_key():
    frame = frame_with(())
    assert digest(frame, (0, 0, 8, 8)) == digest(frame, (0, 0, 8, 8))
    assert digest(frame, (0, 0, 8, 8)) != digest(frame, (1, 0, 9, 8))
    assert cache_id((1 << 64) - 1) == (1 << pixmaps.CACHE_ID_BITS) - 1


@pytest.mark.parametrize("holes", [[(4, 4, 8, 8)], [(0, 0, 16, 4), (12, 0, 20, 20)], []])
def test_subtract_leaves_exactly_the_rest(holes):
    rects = [(0, 0, 16, 16), (20, 0, 24, 4)]
    grid = np.zeros((24, 24), int)
    for left, top, right, bottom in subtract_all(rects, holes):
        grid[top:bottom, left:right] += 1
    want = np.zeros((24, 24), int)
    for left, top, right, bottom in rects:
        want[top:bottom, left:right] = 1
    for left, top, right, bottom in holes:
        want[top:bottom, left:right] = 0
    assert (grid == want).all()
