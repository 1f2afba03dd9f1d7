"""QUIC images from the guest (QXL image type QUIC): drawn as the pixels spice-common
decodes, in the GL renderer and in the numpy reference alike, cached like bitmaps; a bad
stream is a RenderError, and through the device the guest-bug state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from render_helpers import NO_MASK, draw, rect

from vgpu.device.abi import lib
from vgpu.device.commands import (
    AlphaBlend,
    CompressedImage,
    Copy,
    Fill,
    ImageDescriptor,
    PatternBrush,
    QPoint,
    QRect,
    SolidBrush,
)
from vgpu.encode.codecs import encode_quic_rgb32
from vgpu.render import RenderError
from vgpu.render import enums as E
from vgpu.render import pixels as px
from vgpu.render.reference import ReferenceCanvas

pytestmark = pytest.mark.gl

PUT = E.ROPD_OP_PUT
QUIC = lib.SPICE_IMAGE_TYPE_QUIC
SPICE_COMMON = Path(__file__).resolve().parents[1] / "encode" / "data" / "quic_spice_common.npz"


def quic_image(stream: bytes, w: int, h: int, *, image_id: int = 0, cache: bool = False,
               image_type: int = QUIC) -> CompressedImage:
    flags = E.QXL_IMAGE_CACHE if cache else 0
    return CompressedImage(ImageDescriptor(image_id, image_type, flags, w, h), stream)


def spice_common(name: str, qtype: str) -> tuple[bytes, np.ndarray]:
    data = np.load(SPICE_COMMON)
    return data[f"{name}_{qtype}_stream"].tobytes(), data[f"{name}_{qtype}_decoded"]


def both(cmds, w: int = 96, h: int = 64, fmt: int = E.SURFACE_FMT_32_xRGB):
    """Runs the commands on a fresh GL renderer and on the reference: both surfaces."""
    from vgpu.render import Renderer

    ref = ReferenceCanvas()
    ref.create(0, w, h, fmt)
    r = Renderer()
    try:
        r.create_primary(w, h, w * 4, fmt, None)
        for c in cmds:
            r.execute(c)
            ref.execute(c)
        return r.read_pixels(0), ref.pixels(0), len(r.cache)
    finally:
        r.close()


def _fill(color: int, box):
    return draw(Fill(SolidBrush(color), PUT, NO_MASK), box)


def test_copy_of_a_quic_image_draws_the_decoded_pixels():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (23, 37, 4), dtype=np.uint8)
    frame[5:15, 3:30] = (10, 200, 30, 0)  # runs
    img = quic_image(encode_quic_rgb32(frame), 37, 23)
    copy = draw(Copy(img, rect(2, 3, 37, 23), PUT, 0, NO_MASK), (10, 20, 45, 40))
    gl, ref, _ = both([_fill(0x123456, (0, 0, 96, 64)), copy])
    assert np.array_equal(gl, ref)
    assert np.array_equal(gl[20:40, 10:45, :3], frame[3:23, 2:37, :3])
    assert not gl[20:40, 10:45, 3].any()  # spice-common writes a zero 4th byte
    assert gl[0, 0, :3].tolist() == [0x56, 0x34, 0x12]


@pytest.mark.parametrize("qtype", ["rgb16", "rgb24", "rgb32", "rgba"])
def test_spice_common_streams_draw_spice_commons_pixels(qtype):
    stream, decoded = spice_common("gradient", qtype)
    h, w = decoded.shape[:2]
    img = quic_image(stream, w, h)
    cmds = [_fill(0x808080, (0, 0, 96, 64)),
            draw(Copy(img, rect(0, 0, w, h), PUT, 0, NO_MASK), (1, 2, 1 + w, 2 + h)),
            # alpha blending uses the alpha plane only for RGBA (a 32-bit bitmap otherwise)
            draw(AlphaBlend(0, 200, img, rect(0, 0, w, h)), (50, 30, 50 + w, 30 + h))]
    gl, ref, _ = both(cmds)
    assert np.array_equal(gl, ref)
    assert np.array_equal(gl[2:2 + h, 1:1 + w], decoded)


def test_argb_surface_keeps_the_alpha_plane():
    stream, decoded = spice_common("palette", "rgba")
    h, w = decoded.shape[:2]
    copy = draw(Copy(quic_image(stream, w, h), rect(0, 0, w, h), PUT, 0, NO_MASK), (0, 0, w, h))
    gl, ref, _ = both([copy], fmt=E.SURFACE_FMT_32_ARGB)
    assert np.array_equal(gl, ref)
    assert np.array_equal(gl[:h, :w], decoded)


def test_cached_quic_image_goes_into_the_image_cache():
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (16, 20, 4), dtype=np.uint8)
    stream = encode_quic_rgb32(frame)
    cmds = []
    for i in range(4):
        img = quic_image(stream, 20, 16, image_id=0x5157, cache=True)
        cmds.append(draw(Copy(img, rect(i, i, 20, 16), PUT, 0, NO_MASK),
                         (i * 22, i * 3, i * 22 + 20 - i, i * 3 + 16 - i)))
        cmds.append(_fill(0xFF00FF, (i * 22, i * 3, i * 22 + 2, i * 3 + 2)))
    gl, ref, cached = both(cmds)
    assert cached == 1
    assert np.array_equal(gl, ref)
    assert np.array_equal(gl[11:22, 68:83, :3], frame[5:16, 5:20, :3])  # the last copy


def test_cached_quic_image_is_decoded_once(renderer, monkeypatch):
    """A cache hit is found from the stream's header: the image is not decoded again."""
    decoded = []
    quic_bitmap = px.quic_bitmap
    monkeypatch.setattr(px, "quic_bitmap", lambda img: decoded.append(img) or quic_bitmap(img))
    frame = np.random.default_rng(3).integers(0, 256, (16, 20, 4), dtype=np.uint8)
    img = quic_image(encode_quic_rgb32(frame), 20, 16, image_id=0x5158, cache=True)
    renderer.create_primary(64, 32, 256, E.SURFACE_FMT_32_xRGB, None)
    for i in range(3):
        renderer.execute(draw(Copy(img, rect(0, 0, 20, 16), PUT, 0, NO_MASK),
                              (i * 21, 0, i * 21 + 20, 16)))
    assert len(decoded) == 1
    assert np.array_equal(renderer.read_pixels(0)[:16, 42:62, :3], frame[..., :3])


def test_pattern_brush_from_a_quic_image_equals_the_reference():
    stream, decoded = spice_common("noise", "rgb32")
    h, w = decoded.shape[:2]
    brush = PatternBrush(quic_image(stream, w, h), QPoint(3, 1))
    gl, ref, _ = both([draw(Fill(brush, PUT, NO_MASK), (5, 5, 90, 60))])
    assert np.array_equal(gl, ref)
    colours = {tuple(p) for p in decoded[..., :3].reshape(-1, 3).tolist()}
    assert {tuple(p) for p in gl[5:60, 5:90, :3].reshape(-1, 3).tolist()} == colours


def _bad_images():
    stream = encode_quic_rgb32(np.zeros((8, 8, 4), np.uint8))
    yield "truncated", quic_image(stream[:-8], 8, 8)
    yield "bit flips", quic_image(stream[:24] + b"\xff" * (len(stream) - 24), 8, 8)
    yield "descriptor size differs", quic_image(stream, 8, 7)
    yield "not QUIC", quic_image(b"junk", 8, 8)
    yield "gray", quic_image(stream[:8] + (1).to_bytes(4, "little") + stream[12:], 8, 8)
    yield "LZ type", quic_image(stream, 8, 8, image_type=lib.SPICE_IMAGE_TYPE_LZ_RGB)
    # a header and descriptor that agree on a side over the renderer's limit
    wide = stream[:12] + (px.MAX_DIM + 1).to_bytes(4, "little") + stream[16:]
    yield "too large", quic_image(wide, px.MAX_DIM + 1, 8)


@pytest.mark.parametrize(("why", "img"), list(_bad_images()), ids=[w for w, _ in _bad_images()])
def test_bad_quic_images_raise_render_error_and_change_nothing(renderer, why, img):
    renderer.create_primary(16, 16, 64, E.SURFACE_FMT_32_xRGB, None)
    renderer.execute(_fill(0x112233, (0, 0, 16, 16)))
    before = renderer.read_pixels(0).copy()
    with pytest.raises(RenderError):
        renderer.execute(draw(Copy(img, rect(0, 0, 8, 7), PUT, 0, NO_MASK), (0, 0, 8, 7)))
    with pytest.raises(RenderError):
        px.quic_bitmap(img)
    assert np.array_equal(renderer.read_pixels(0), before)


def test_guest_quic_copy_through_the_device(gl_ctx):
    """Guest builders write a QUIC image into guest memory; the device parses it and the
    renderer draws it: no guest-bug state, the primary shows the pixels. A corrupt one then
    puts the device in the guest-bug state."""
    from vgpu.device.device import Device
    from vgpu.device.inprocess import InProcessAttachment
    from vgpu.guest.driver import GuestDriver
    from vgpu.render import Renderer

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 4, (30, 50, 4), dtype=np.uint8) * 80
    stream = encode_quic_rgb32(frame)
    renderer = Renderer(gl_ctx)
    device = Device(renderer, ram_size=8 << 20, vram_size=4 << 20, n_surfaces=16)
    guest = GuestDriver(InProcessAttachment(device, inline=True), chunk_size=1024)
    try:
        guest.create_primary(64, 48)
        img = quic_image(stream, 50, 30, image_id=77, cache=True)
        guest.submit(draw(Copy(img, rect(0, 0, 50, 30), PUT, 0, NO_MASK), (7, 9, 57, 39)))
        guest.update_area(0, QRect(0, 0, 48, 64))
        assert device.guest_bug is None, device.guest_bug
        shown = renderer.read_pixels(0)
        assert np.array_equal(shown[9:39, 7:57, :3], frame[..., :3])
        assert len(renderer.cache) == 1

        bad = quic_image(stream[: len(stream) // 2], 50, 30)
        guest.submit(draw(Copy(bad, rect(0, 0, 50, 30), PUT, 0, NO_MASK), (0, 0, 50, 30)))
        assert device.guest_bug is not None
    finally:
        guest.close()
        device.close()
        renderer.close()
