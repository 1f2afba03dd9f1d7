"""QXL command parsing: drawables per second on one core, for a realistic mix.

The mix is what a desktop guest sends most: solid fills, copies of small cached bitmaps
(32x32 RGBA icons, in chunks as a driver lays them out), text drawn as glyph bitmaps
(8x16, as Xspice does) and glyph-string TEXT commands. Commands are built once in guest
memory by the guest driver; measured are the device's parser alone per kind and for the
mix, and the whole device path for the mix (ring pop, parse, checks, release chaining,
the null backend), guest pushes included. There is no other QXL parser to run here;
the parser is measured against the device path it is part of.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from vgpu.bench import Bench, Measurement, workload
from vgpu.bench.common import NullBackend
from vgpu.device import commands as c
from vgpu.device.abi import lib
from vgpu.device.device import Device
from vgpu.device.inprocess import InProcessAttachment
from vgpu.guest.builders import CommandWriter
from vgpu.guest.driver import GuestDriver

NO_MASK = c.QMask(0, c.QPoint(0, 0), None)
W, H = 1280, 800
PER_KIND = 400

MIX = {"fill": 4, "icon copy": 3, "glyph copy": 2, "text": 1}
"""Parts of each kind in the mix (fills and small copies dominate a desktop's traffic)."""

RING_BATCH = 30
"""Commands the guest pushes before the device pops them (below the ring's size)."""


def _drawable(rng: random.Random, w: int, h: int, op: c.DrawOp) -> c.Drawable:
    x, y = rng.randrange(W - w), rng.randrange(H - h)
    return c.Drawable(bbox=c.QRect(y, x, y + h, x + w), effect=lib.QXL_EFFECT_OPAQUE,
                      mm_time=rng.randrange(1 << 32), op=op)


def _bitmap(rng: random.Random, w: int, h: int, cache_id: int, fmt: int) -> c.BitmapImage:
    desc = c.ImageDescriptor(cache_id, lib.SPICE_IMAGE_TYPE_BITMAP, lib.QXL_IMAGE_CACHE, w, h)
    data = rng.randbytes(w * h * 4)
    return c.BitmapImage(desc, fmt, lib.QXL_BITMAP_TOP_DOWN, w, h, w * 4, None, data)


def make_commands(rng: random.Random) -> dict[str, list[c.Drawable]]:
    icons = [_bitmap(rng, 32, 32, 1000 + i, lib.SPICE_BITMAP_FMT_RGBA) for i in range(16)]
    glyphs = [_bitmap(rng, 8, 16, 2000 + i, lib.SPICE_BITMAP_FMT_32BIT) for i in range(64)]
    out: dict[str, list[c.Drawable]] = {k: [] for k in MIX}
    for _ in range(PER_KIND):
        out["fill"].append(_drawable(rng, rng.randrange(1, 400), rng.randrange(1, 300), c.Fill(
            c.SolidBrush(rng.randrange(1 << 24)), lib.SPICE_ROPD_OP_PUT, NO_MASK)))
        out["icon copy"].append(_drawable(rng, 32, 32, c.Copy(
            rng.choice(icons), c.QRect(0, 0, 32, 32), lib.SPICE_ROPD_OP_PUT, 0, NO_MASK)))
        out["glyph copy"].append(_drawable(rng, 8, 16, c.Copy(
            rng.choice(glyphs), c.QRect(0, 0, 16, 8), lib.SPICE_ROPD_OP_PUT, 0, NO_MASK)))
        string = c.GlyphString(lib.SPICE_STRING_FLAGS_RASTER_A1, tuple(
            c.RasterGlyph(c.QPoint(i * 8, 12), c.QPoint(0, -12), 8, 14, rng.randbytes(14))
            for i in range(12)))
        out["text"].append(_drawable(rng, 96, 16, c.Text(
            string, c.QRect(0, 0, 16, 96), c.SolidBrush(0), None, lib.SPICE_ROPD_OP_PUT, 0)))
    return out


@workload("parse", "the QXL parser and the device path, drawables per second, one core")
def parse(b: Bench) -> Iterator[Measurement]:
    rng = random.Random(1)
    device = Device(NullBackend(), ram_size=64 << 20)  # type: ignore[arg-type]
    guest = GuestDriver(InProcessAttachment(device, inline=True))
    try:
        guest.create_primary(W, H)
        writer = CommandWriter(guest.buf, guest.ram_alloc.alloc, guest.phys)
        kinds = make_commands(rng)
        addrs = {k: [writer.write(d, i + 1) for i, d in enumerate(v)] for k, v in kinds.items()}
        mix = [a for k, n in MIX.items() for a in addrs[k][: 100 * n]]
        rng.shuffle(mix)
        parser = device.parser
        for k, v in addrs.items():  # the parser must give back exactly what was built
            if [parser.drawable(a).op for a in v[:20]] != [d.op for d in kinds[k][:20]]:
                raise AssertionError(f"the parser does not read back the {k} commands built")

        def parse_all(batch: list[int]) -> None:
            drawable = parser.drawable
            for a in batch:
                drawable(a)

        for kind, batch in addrs.items():
            yield b.time(f"parse {kind}", {"vgpu parser": lambda batch=batch: parse_all(batch)},
                         work=len(batch), unit="drawables/s")

        mix_note = ", ".join(f"{n}/10 {k}" for k, n in MIX.items())
        yield b.time("parse mix", {"vgpu parser": lambda: parse_all(mix)},
                     work=len(mix), unit="drawables/s", note=mix_note)

        # The whole device path for the same mix, as the render thread runs it: the
        # guest fills the ring, the device pops a batch (checks, parse, release chains).
        # Measured after the parser alone: from here on commands get released.
        def device_path() -> None:
            for i in range(0, len(mix), RING_BATCH):
                for a in mix[i:i + RING_BATCH]:
                    guest.push_raw("cmd", a, lib.QXL_CMD_DRAW)
                device.process(64)

        guest.att = InProcessAttachment(device)  # doorbells now only wake; we run the device
        yield b.time("device path, mix", {"vgpu device (ring pop, parse, checks, release)":
                                          device_path},
                     work=len(mix), unit="drawables/s", note=mix_note + "; null backend")
        if device.guest_bug is not None:
            raise AssertionError(f"the device found a guest bug: {device.guest_bug}")
    finally:
        guest.close()
        device.close()
