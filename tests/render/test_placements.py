"""Placements: the renderer's hints that a guest image is drawn whole on the primary, keyed
by its pixels (what the SPICE server's pixmap cache names images by). Only hints: the
server checks the frame's pixels before it uses one (tests/spice/test_pixmaps.py)."""

from __future__ import annotations

import numpy as np
from render_helpers import NO_MASK, bitmap, draw, rect

from vgpu.device.commands import Copy, Fill, ImageDescriptor, SolidBrush, SurfaceImage
from vgpu.display import Placement
from vgpu.render import enums as E
from vgpu.render.cache import content_key, part_key

PUT = E.ROPD_OP_PUT
W, H = 200, 120
OFFSCREEN = 5


def photo(seed: int, w: int = 64, h: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)


def copy(image, area: tuple[int, int, int, int], box: tuple[int, int, int, int],
         clip: list | None = None, surface_id: int = 0):
    return draw(Copy(image, rect(*area), PUT, 0, NO_MASK), box, clip, surface_id)


def start(renderer) -> None:
    renderer.create_primary(W, H, W * 4, E.SURFACE_FMT_32_xRGB, None)
    renderer.snapshot()


def test_a_cached_image_copied_whole_is_placed_by_its_pixels(renderer):
    start(renderer)
    pixels = photo(1)
    renderer.execute(copy(bitmap(pixels, image_id=7, cache=True), (0, 0, 64, 64),
                          (10, 20, 74, 84)))
    # another id with the same pixels: the same key (the guest's id is not the key)
    renderer.execute(copy(bitmap(pixels, image_id=8, cache=True), (0, 0, 64, 64),
                          (100, 20, 164, 84)))
    frame = renderer.snapshot()
    key = content_key(pixels, 64, 64)  # a 32BIT bitmap decodes to its own bytes
    assert frame.placements == (Placement(key, (10, 20, 74, 84)),
                                Placement(key, (100, 20, 164, 84)))
    assert (frame.pixels[20:84, 10:74, :3] == pixels[..., :3]).all()
    renderer.execute(copy(bitmap(photo(2), image_id=9, cache=True), (0, 0, 64, 64),
                          (10, 20, 74, 84)))
    newest = renderer.snapshot().placements[-1]
    assert newest.rect == (10, 20, 74, 84) and newest.key != key  # other pixels


def test_parts_are_keyed_apart_and_what_is_drawn_over_goes(renderer):
    start(renderer)
    cached = bitmap(photo(3, 96, 96), image_id=1, cache=True)
    renderer.execute(copy(cached, (0, 0, 96, 96), (0, 0, 96, 96)))
    renderer.execute(copy(cached, (16, 16, 96, 80), (100, 0, 180, 64)))  # a large part
    whole, part = renderer.snapshot().placements
    assert part == Placement(part_key(whole.key, (16, 16, 96, 80)), (100, 0, 180, 64))
    # a clipped copy places nothing, and draws over the part
    renderer.execute(copy(cached, (0, 0, 96, 96), (100, 0, 196, 96), clip=[(100, 0, 150, 40)]))
    assert renderer.snapshot().placements == (whole,)
    renderer.execute(draw(Fill(SolidBrush(0x123456), PUT, NO_MASK), (90, 90, 100, 100)))
    assert renderer.snapshot().placements == ()


def test_small_and_uncached_images_are_not_placed(renderer):
    start(renderer)
    renderer.execute(copy(bitmap(photo(4, 32, 32), image_id=2, cache=True), (0, 0, 32, 32),
                          (0, 0, 32, 32)))  # under MIN_PLACEMENT_PIXELS
    renderer.execute(copy(bitmap(photo(5)), (0, 0, 64, 64), (40, 0, 104, 64)))  # uncached
    assert renderer.snapshot().placements == ()


def test_a_placement_travels_with_a_copy_of_its_surface(renderer):
    """Xspice draws a photo into a pixmap (an off-screen surface) and copies the pixmap to
    the screen at every expose: the photo's placement goes along."""
    start(renderer)
    renderer.surface_created(OFFSCREEN, 100, 100, 400, E.SURFACE_FMT_32_xRGB, None)
    renderer.execute(copy(bitmap(photo(6), image_id=3, cache=True), (0, 0, 64, 64),
                          (2, 2, 66, 66), surface_id=OFFSCREEN))
    (on_pixmap,) = renderer._surfaces[OFFSCREEN].placements
    pixmap = SurfaceImage(ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, 100, 100), OFFSCREEN)
    renderer.execute(copy(pixmap, (0, 0, 80, 80), (50, 10, 130, 90)))
    renderer.execute(copy(pixmap, (10, 10, 80, 80), (120, 10, 190, 80)))  # the photo cut
    assert renderer.snapshot().placements == (Placement(on_pixmap.key, (52, 12, 116, 76)),)
