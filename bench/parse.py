"""QXL command parsing: drawables per second on one core, for a realistic mix.

The mix is what a desktop guest sends most: solid fills, copies of small
cached bitmaps (32x32 RGBA icons, in chunks as a driver lays them out),
text drawn as glyph bitmaps (8x16, as Xspice does) and glyph-string TEXT
commands. Commands are built once in guest memory by the guest driver; the
timed loop is the device's parser alone, then the whole device path (ring
pop, parse, checks, release chaining, a backend that does nothing) in the
same run. Each figure is the median of several rounds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from vgpu.device import commands as c
from vgpu.device.abi import lib
from vgpu.device.backend import run_fences
from vgpu.device.device import Device
from vgpu.device.inprocess import InProcessAttachment
from vgpu.guest.builders import CommandWriter
from vgpu.guest.driver import GuestDriver

Z = c.QRect(0, 0, 0, 0)
NO_MASK = c.QMask(0, c.QPoint(0, 0), None)
W, H = 1280, 800


class NullBackend:
    def create_primary(self, *a: object) -> None: ...
    def destroy_primary(self) -> None: ...
    def execute(self, cmd: object) -> None: ...
    def surface_created(self, *a: object) -> None: ...
    def surface_destroyed(self, surface_id: int) -> None: ...
    def read_area(self, *a: object) -> None: ...
    def reset(self) -> None: ...
    def reset_3d(self) -> None: ...

    def execute_3d(self, batch: bytes, guest: object) -> None:
        run_fences(batch, guest)  # type: ignore[arg-type]


def _drawable(rng: random.Random, w: int, h: int, op: c.DrawOp) -> c.Drawable:
    x, y = rng.randrange(W - w), rng.randrange(H - h)
    return c.Drawable(0, c.QRect(y, x, y + h, x + w), None, lib.QXL_EFFECT_OPAQUE,
                      rng.randrange(1 << 32), 0, Z, 0, (-1, -1, -1), (Z, Z, Z), op)


def _bitmap(rng: random.Random, w: int, h: int, cache_id: int, fmt: int) -> c.BitmapImage:
    desc = c.ImageDescriptor(cache_id, lib.SPICE_IMAGE_TYPE_BITMAP, lib.QXL_IMAGE_CACHE, w, h)
    data = rng.randbytes(w * h * 4)
    return c.BitmapImage(desc, fmt, lib.QXL_BITMAP_TOP_DOWN, w, h, w * 4, None, data)


def make_commands(rng: random.Random) -> dict[str, list[c.Drawable]]:
    icons = [_bitmap(rng, 32, 32, 1000 + i, lib.SPICE_BITMAP_FMT_RGBA) for i in range(16)]
    glyphs = [_bitmap(rng, 8, 16, 2000 + i, lib.SPICE_BITMAP_FMT_32BIT) for i in range(64)]
    out: dict[str, list[c.Drawable]] = {"fill": [], "icon copy": [], "glyph copy": [],
                                        "text": []}
    for _ in range(400):
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


MIX = {"fill": 4, "icon copy": 3, "glyph copy": 2, "text": 1}
"""Parts of each kind in the mix (fills and small copies dominate a desktop's traffic)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vgpu bench parse", description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    rng = random.Random(1)
    device = Device(NullBackend(), ram_size=64 << 20)
    guest = GuestDriver(InProcessAttachment(device, inline=True))
    guest.create_primary(W, H)
    writer = CommandWriter(guest.buf, guest.ram_alloc.alloc, guest.phys)
    kinds = make_commands(rng)
    addrs = {k: [writer.write(d, i + 1) for i, d in enumerate(v)] for k, v in kinds.items()}
    mix = [a for k, n in MIX.items() for a in addrs[k][: 100 * n]]
    rng.shuffle(mix)
    parser = device.parser
    for k, v in addrs.items():  # the parser must give back exactly what was built
        assert [parser.drawable(a).op for a in v[:20]] == [d.op for d in kinds[k][:20]], k

    def rate(batch: list[int]) -> float:
        drawable = parser.drawable
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for a in batch:
                drawable(a)
            times.append(time.perf_counter() - t0)
        return len(batch) / statistics.median(times)

    print(f"QXL parser, one core, median of {args.rounds} rounds (drawables/s)")
    for k, v in addrs.items():
        print(f"  {k:<12} {rate(v):>12,.0f}")
    print(f"  {'mix':<12} {rate(mix):>12,.0f}   "
          f"({', '.join(f'{n}/10 {k}' for k, n in MIX.items())})")

    # The whole device path for the same mix, as the render thread runs it: the guest
    # fills the ring, the device pops a batch (checks, parse, release chains).
    guest.att = InProcessAttachment(device)  # doorbells now only wake; this loop runs the device
    ring_times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for i in range(0, len(mix), 30):
            for a in mix[i:i + 30]:
                guest.push_raw("cmd", a, lib.QXL_CMD_DRAW)
            device.process(64)
        ring_times.append(time.perf_counter() - t0)
    assert device.guest_bug is None, device.guest_bug
    print(f"  {'mix, device':<12} {len(mix) / statistics.median(ring_times):>12,.0f}   "
          "(ring pop + parse + checks + release, null backend, guest pushes included)")
    guest.close()
    device.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
