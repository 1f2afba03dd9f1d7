"""vgpu against the real SPICE canvas: one record file played by spice-server and by vgpu.

spice-server 0.15.1 (bench/peer's vgpu-spice-peer, its own replay reader and worker)
draws the file and spicy-screenshot (spice-gtk) takes the picture, images uncompressed;
`vgpu replay`'s path (guest driver, device, GL renderer) draws the same file. The pictures
must be equal pixel for pixel. Where spice-server's canvas is itself broken (it crashes,
or reads memory no guest gave it), docs/conformance.md says so and a test here pins
vgpu's choice against what spice-server draws for the same intent.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from canvas_diff import differing, spice_server_picture, vgpu_picture
from canvas_strategies import DASHED, KINDS, TILE, batches
from hypothesis import HealthCheck, given, settings
from replay_scene import PrimarySurface, WorkerMessage, desktop_session, draw, record_bytes, scene
from spice_peer import SpicePeer, screenshot

from vgpu.device.commands import (
    BitmapImage,
    Composite,
    Copy,
    Fill,
    GlyphString,
    ImageDescriptor,
    LineAttr,
    PathSeg,
    PatternBrush,
    QMask,
    QPoint,
    QRect,
    RasterGlyph,
    Rop3,
    SolidBrush,
    Stroke,
    SurfaceCmd,
    SurfaceCreate,
    SurfaceImage,
    Text,
)
from vgpu.render import enums as E

pytestmark = [pytest.mark.gl, pytest.mark.skipif(shutil.which("spicy-screenshot") is None,
                                                 reason="spicy-screenshot is not installed")]
NO_MASK = QMask(0, QPoint(0, 0), None)
W, H = 128, 64


def both(peer: Path, items: list, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    record = tmp_path / "scene.spice"
    record.write_bytes(record_bytes(items))
    return spice_server_picture(peer, record), vgpu_picture(record)


def small_scene(*cmds: object) -> list[tuple[object, object]]:
    """A W x H primary, filled grey, then `cmds`."""
    primary = PrimarySurface(W, H, -W * 4, E.SURFACE_FMT_32_xRGB, 0, 1, 0, 0, bytes(W * H * 4))
    return [(WorkerMessage.ADD_MEMSLOT, None), (WorkerMessage.START, None),
            (WorkerMessage.CREATE_PRIMARY_SURFACE, primary),
            (draw(QRect(0, 0, H, W), Fill(SolidBrush(0x808080), E.ROPD_OP_PUT, NO_MASK)), None),
            *[(cmd, None) for cmd in cmds], (WorkerMessage.WAKEUP, None)]


def test_every_draw_type_scene(peer: Path, tmp_path: Path) -> None:
    spice, ours = both(peer, scene(), tmp_path)
    assert spice.shape == ours.shape == (192, 256, 3)
    assert differing(spice, ours) == 0


def test_the_desktop_demos_session(peer: Path, tmp_path: Path) -> None:
    # its terminal text (A1 glyphs), cached icons, the blinking cursor's one bitmap id with
    # two palettes, scrolling and the moving window by COPY_BITS, the chart
    spice, ours = both(peer, desktop_session(), tmp_path)
    assert spice.shape == ours.shape == (768, 1024, 3)
    assert differing(spice, ours) == 0


@pytest.mark.slow
@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(items=batches(max_commands=3))
def test_random_scenes(peer: Path, tmp_path: Path, items: list) -> None:
    # 5 records of 48 tiles: 240 scenes of 1 to 3 commands of every kind
    spice, ours = both(peer, items, tmp_path)
    assert differing(spice, ours) == 0


def test_the_generator_draws_every_kind() -> None:
    seen: set[str] = set()

    @settings(max_examples=3, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(batches(max_commands=3))
    def collect(items: list) -> None:
        seen.update(type(cmd.op).__name__ for cmd, _ in items if hasattr(cmd, "op"))

    collect()
    assert len(KINDS) == 15 and seen >= {
        "Fill", "Copy", "Blend", "Opaque", "Rop3", "Blackness", "Whiteness", "Invers",
        "Transparent", "AlphaBlend", "Stroke", "Text", "Composite", "CopyBits"}


def glyph(x: int, y: int, rows: list[int]) -> RasterGlyph:
    """An 8-pixel-wide A8 glyph whose rows (top first on screen) have these values."""
    data = b"".join(bytes([v] * 8) for v in reversed(rows))  # bottom-up, as the canvas reads
    return RasterGlyph(QPoint(x, y), QPoint(0, 0), 8, len(rows), data)


def test_a8_glyphs_the_canvas_draws_a_row_off(peer: Path, tmp_path: Path) -> None:
    # canvas_put_glyph_bits reads 8 bpp rows from one row past the glyph's data downwards:
    # its top row is memory after the glyph, every other row comes one row low and the
    # glyph's own top row is lost (docs/conformance.md). vgpu draws the glyph as sent.
    rows = [0xFF, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0x00]
    text = Text(GlyphString(E.STRING_FLAGS_RASTER_A8, (glyph(20, 10, rows),)),
                QRect(0, 0, 0, 0), SolidBrush(0xFFFFFF), None, E.ROPD_OP_PUT, E.ROPD_OP_PUT)
    spice, ours = both(peer, small_scene(draw(QRect(10, 20, 18, 28), text)), tmp_path)
    white = [bool(v) for v in rows]
    assert [bool(ours[10 + i, 20:28].min() == 255) for i in range(8)] == white
    assert [bool(spice[11 + i, 20:28].min() == 255) for i in range(7)] == white[:7]


@pytest.mark.parametrize("code", [0x66, 0xCC, 0xF0, 0x5A])
def test_rop3_codes_that_drop_an_operand(peer: Path, tmp_path: Path, code: int) -> None:
    # spice-common's rop3.c has handlers only for codes that use source, pattern and
    # destination: any other ROP3 aborts spice-server (spice_critical "not implemented").
    # vgpu draws the truth table, which equals what spice-server draws for the same
    # operation sent as a COPY or FILL with a rop descriptor.
    img = ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, 0, 0)
    src = SurfaceImage(img, 0)
    area = QRect(0, 0, 32, 32)
    brush = SolidBrush(0x3366CC)
    bbox = QRect(16, 40, 48, 72)
    rop3 = draw(bbox, Rop3(src, area, brush, code, 0, NO_MASK), source=(0, area))
    record = tmp_path / "rop3.spice"
    record.write_bytes(record_bytes(small_scene(rop3)))
    with SpicePeer(peer, record) as server:
        server.wait_done()
        # the worker draws when a client needs the picture, and aborts there
        with pytest.raises((subprocess.CalledProcessError, subprocess.TimeoutExpired)):
            screenshot(server.port, tmp_path / "shot.ppm", timeout=10)
        assert server.proc.wait(10) != 0
        assert "not implemented" in server.stderr()
    same = {0x66: Copy(src, area, E.ROPD_OP_XOR, 0, NO_MASK),
            0xCC: Copy(src, area, E.ROPD_OP_PUT, 0, NO_MASK),
            0xF0: Fill(brush, E.ROPD_OP_PUT, NO_MASK),
            0x5A: Fill(brush, E.ROPD_OP_XOR, NO_MASK)}[code]
    spice, _ = both(peer, small_scene(draw(bbox, same, source=(0, area))), tmp_path)
    assert differing(vgpu_picture(record), spice) == 0


def test_a_copy_from_a_surface_waits_for_its_draws(peer: Path, tmp_path: Path) -> None:
    # spice-server renders an off-screen surface's pending draws before a copy from it
    # only when the drawable names it in surfaces_dest; without, it copies stale pixels,
    # while a client watching live draws in command order. vgpu draws in command order:
    # its picture is spice-server's with the dependency declared.
    items = scene()
    with_dep = both(peer, items, tmp_path)
    i = next(i for i, (cmd, _) in enumerate(items)
             if hasattr(cmd, "op") and isinstance(cmd.op, Copy)
             and isinstance(cmd.op.src_bitmap, SurfaceImage))
    items[i] = (dataclasses.replace(items[i][0], surfaces_dest=(-1, -1, -1)), None)
    spice, ours = both(peer, items, tmp_path)
    assert differing(ours, with_dep[0]) == 0
    assert differing(spice, ours) == 2 * 32 * 32  # two squares: the copy and its COPY_BITS


@pytest.mark.parametrize("flags", DASHED)
def test_dashed_strokes_are_drawn_as_the_canvas_does(peer: Path, tmp_path: Path,
                                                     flags: int) -> None:
    path = (PathSeg(E.PATH_BEGIN | E.PATH_END, ((5 << 4, 5 << 4), (40 << 4, 20 << 4))),)
    stroke = Stroke(path, LineAttr(flags, (3 << 4, 2 << 4)), SolidBrush(0xFFFFFF),
                    E.ROPD_OP_PUT, E.ROPD_OP_PUT)
    spice, ours = both(peer, small_scene(draw(QRect(0, 0, TILE, TILE), stroke)), tmp_path)
    assert differing(spice, ours) == 0




@pytest.mark.parametrize("mode", [E.ROPD_OP_PUT, E.ROPD_OP_XOR])
def test_dashed_polylines_join_and_retrace_as_the_canvas_does(peer: Path, tmp_path: Path,
                                                              mode: int) -> None:
    # a sharp turn (mi bevels its mitre), a shallow one (a mitre) and a retraced stretch:
    # with XOR, a polyline of three points or more is painted each pixel once
    pts = ((4 << 4, 4 << 4), (50 << 4, 10 << 4), (6 << 4, 14 << 4), (40 << 4, 40 << 4),
           (12 << 4, 26 << 4), (40 << 4, 40 << 4), (60 << 4, 8 << 4))
    path = (PathSeg(E.PATH_BEGIN, pts[:2]), PathSeg(E.PATH_END | E.PATH_CLOSE, pts[2:]))
    stroke = Stroke(path, LineAttr(E.LINE_FLAGS_STYLED, ((5 << 4) | 9, 1 << 4, 2 << 4)),
                    SolidBrush(0xFF8040), mode, E.ROPD_OP_PUT)
    spice, ours = both(peer, small_scene(draw(QRect(0, 0, TILE, TILE), stroke)), tmp_path)
    assert differing(spice, ours) == 0


def test_a_composite_transform_does_not_leak(peer: Path, tmp_path: Path) -> None:
    # canvas_draw_composite sets a source transform on the off-screen surface's own
    # pixman image and never clears it: a later COMPOSITE from that surface without a
    # transform is still drawn scaled (docs/conformance.md). vgpu gives each draw only
    # its own transform: its picture is spice-server's of the later draw alone.
    size = 32
    data = bytes((i * 37 + (i // 4) * 11) & 0xFF for i in range(size * size * 4))
    off = SurfaceCmd(0, 1, 0, 1, SurfaceCreate(E.SURFACE_FMT_32_xRGB, size, size, size * 4,
                                               0, size * size * 4))
    img = SurfaceImage(ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, 0, 0), 1)
    over = 3 | (3 << 8)  # PIXMAN_OP_OVER, nearest filter

    def composite(x: int, transform: tuple[int, ...] | None) -> object:
        flags = over | (E.COMPOSITE_HAS_SRC_TRANSFORM if transform else 0)
        return draw(QRect(0, x, 16, x + 16),
                    Composite(flags, img, None, transform, None, QPoint(0, 0), QPoint(0, 0)),
                    source=(1, QRect(0, 0, size, size)))

    def with_surface(*cmds: object) -> list[tuple[object, object]]:
        items = small_scene(*cmds)
        items.insert(3, (off, data))
        return items

    half = (1 << 15, 0, 0, 0, 1 << 15, 0)
    alone, _ = both(peer, with_surface(composite(20, None)), tmp_path)
    spice, ours = both(peer, with_surface(composite(0, half), composite(20, None)), tmp_path)
    second = (slice(0, 16), slice(20, 36))
    assert differing(ours[second], alone[second]) == 0
    assert differing(spice[second], alone[second]) > 200
    assert differing(spice[:, :20], ours[:, :20]) == 0

@pytest.mark.parametrize("pos", [(7, 0), (3, -8), (0, 18)])
def test_rop3_pattern_positions_past_the_bbox(peer: Path, tmp_path: Path,
                                              pos: tuple[int, int]) -> None:
    # canvas_draw_rop3 starts the pattern at (bbox corner - position) % size, C's
    # remainder, which is negative when the position lies past the corner: the first
    # column or row then comes from outside the pattern's memory (docs/conformance.md).
    # vgpu tiles the pattern as FILL does, which is what spice-server draws for the same
    # position moved back by whole pattern sizes.
    pat = pattern_image(3, 4, 1)
    src = pattern_image(28, 24, 2)
    bbox, area = QRect(16, 2, 40, 30), QRect(0, 0, 24, 28)

    def rop3_at(x: int, y: int) -> object:
        brush = PatternBrush(pat, QPoint(x, y))
        return draw(bbox, Rop3(src, area, brush, 0xCA, 0, NO_MASK))

    record = tmp_path / "pattern.spice"
    record.write_bytes(record_bytes(small_scene(rop3_at(*pos))))
    spice_here = spice_server_picture(peer, record)
    ours = vgpu_picture(record)
    back = (pos[0] - 3 * pat.width, pos[1] - 3 * pat.height)
    spice_back, _ = both(peer, small_scene(rop3_at(*back)), tmp_path)
    assert differing(ours, spice_back) == 0
    assert differing(spice_here, spice_back) > 0


def pattern_image(w: int, h: int, seed: int) -> BitmapImage:
    """A w x h 32-bit bitmap of distinct pixels."""
    data = bytes((17 * i + 5 * c + 101 * seed) & 0xFF for i in range(w * h) for c in range(4))
    return BitmapImage(ImageDescriptor(seed, E.IMAGE_TYPE_BITMAP, 0, w, h),
                       E.BITMAP_FMT_32BIT, 4, w, h, w * 4, None, data)
