"""2D throughput of the GL renderer against pixman (through pycairo) and GL's fill-rate ceiling.

Each workload runs the same operations, at the same places and sizes, on a 1024x768 xRGB
surface: through vgpu's Renderer (typed QXL commands, built before timing, as the parser
would hand them over; time includes flush and glFinish) and through pycairo's image surface
(pixman, what spice-gtk's canvas draws with). ROP3 has no pixman equivalent; cairo's XOR
operator stands in as another destination-reading per-pixel operation. The ceilings are one
full-surface quad drawn and finished per timing: with a constant colour (for fills and text)
and reading a texture (for copies and ROP3). llvmpipe drops work that later opaque draws
hide, so overlapping large batches can pass the single-draw ceiling. The instanced-rect
ceiling is what one instanced draw of solid rects reaches with no renderer around it: the
most that batching small operations can give on this GL (and, at 100x100, what llvmpipe's
rasterizer makes of rects that do not cover whole tiles). Where the GL offers framebuffer
fetch, ROP3 runs again through the scratch-copy path that other GLs take.

Then every Xspice recording in the test data is replayed the whole way (record reader, guest
driver, QXL device, this renderer) and timed against the span of the recording itself.

Figures are medians of several runs. Usage: bench/render.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import moderngl
import numpy as np

try:
    import cairo
except ImportError:  # a machine without pycairo/libcairo: vgpu's figures alone
    cairo = None

from vgpu.device.commands import (
    BitmapImage,
    Copy,
    Drawable,
    Fill,
    GlyphString,
    ImageDescriptor,
    QMask,
    QPoint,
    QRect,
    RasterGlyph,
    Rop3,
    SolidBrush,
    Text,
)
from vgpu.render import Renderer
from vgpu.render import enums as E
from vgpu.render.gl import create_context
from vgpu.replay import CommandEvent, read_events, replay

TESTS = Path(__file__).resolve().parent.parent / "tests"
RECORDINGS = [TESTS / "data" / "basic.spice.xz", *sorted((TESTS / "render" / "data").glob(
    "*.spice.xz"))]

W, H = 1024, 768
NO_MASK = QMask(0, QPoint(0, 0), None)
ZERO = QRect(0, 0, 0, 0)
GLYPH_W, GLYPH_H, GLYPHS = 6, 13, 10  # one xterm-like run of 10 "fixed" glyphs per op


def _cmd(op, x: int, y: int, w: int, h: int) -> Drawable:
    return Drawable(0, QRect(y, x, y + h, x + w), None, 0, 0, 0, ZERO, 0, (-1, -1, -1),
                    (ZERO, ZERO, ZERO), op)


def _bitmap(pix: np.ndarray, image_id: int = 0, cache: bool = False) -> BitmapImage:
    h, w = pix.shape[:2]
    desc = ImageDescriptor(image_id, E.IMAGE_TYPE_BITMAP, E.QXL_IMAGE_CACHE if cache else 0, w, h)
    return BitmapImage(desc, E.BITMAP_FMT_32BIT, 4, w, h, w * 4, None, pix.tobytes())


class Workload:
    def __init__(self, name: str, size: int, count: int, seed: int) -> None:
        self.name, self.size, self.count = name, size, count
        rng = np.random.default_rng(seed)
        w, h = (GLYPH_W * GLYPHS, GLYPH_H) if name == "text" else (size, size)
        self.w, self.h = w, h
        self.pos = np.stack([rng.integers(0, W - w + 1, count),
                             rng.integers(0, H - h + 1, count)], axis=1).tolist()
        self.colors = rng.integers(0, 1 << 24, count).tolist()
        n_images = 8 if name == "cached copy" else min(count, 256)
        self.images = [rng.integers(0, 256, (h, w, 4), dtype=np.uint8) for _ in range(n_images)]
        self.glyph_bits = rng.integers(0, 256, (GLYPH_H, 1), dtype=np.uint8)

    @property
    def pixels(self) -> int:
        return self.w * self.h

    # --- vgpu ------------------------------------------------------------------------

    def commands(self) -> list[Drawable]:
        out = []
        imgs = [_bitmap(p, i + 1, cache=self.name == "cached copy")
                for i, p in enumerate(self.images)]
        area = QRect(0, 0, self.h, self.w)
        glyphs = GlyphString(E.STRING_FLAGS_RASTER_A1, tuple(
            RasterGlyph(QPoint(i * GLYPH_W, GLYPH_H), QPoint(0, -GLYPH_H), GLYPH_W, GLYPH_H,
                        self.glyph_bits.tobytes()) for i in range(GLYPHS)))
        for i, ((x, y), color) in enumerate(zip(self.pos, self.colors, strict=True)):
            img = imgs[i % len(imgs)]
            if self.name == "fill":
                op = Fill(SolidBrush(color), E.ROPD_OP_PUT, NO_MASK)
            elif self.name in ("copy", "cached copy"):
                op = Copy(img, area, E.ROPD_OP_PUT, 0, NO_MASK)
            elif self.name == "rop3":
                op = Rop3(img, area, SolidBrush(color), 0x96, 0, NO_MASK)
            else:
                moved = GlyphString(glyphs.flags, tuple(
                    RasterGlyph(QPoint(g.render_pos.x + x, g.render_pos.y + y), g.glyph_origin,
                                g.width, g.height, g.data) for g in glyphs.glyphs))
                op = Text(moved, ZERO, SolidBrush(color), None, E.ROPD_OP_PUT, E.ROPD_OP_PUT)
            out.append(_cmd(op, x, y, self.w, self.h))
        return out

    def run_vgpu(self, r: Renderer, cmds: list[Drawable]) -> float:
        r.flush()
        r.ctx.finish()
        t = time.perf_counter()
        for c in cmds:
            r.execute(c)
        r.flush()
        r.ctx.finish()
        return time.perf_counter() - t

    # --- pycairo (pixman) ---------------------------------------------------------------

    def run_cairo(self, surface: cairo.ImageSurface) -> float:
        ctx = cairo.Context(surface)
        ctx.set_antialias(cairo.ANTIALIAS_NONE)
        ctx.set_operator(cairo.OPERATOR_XOR if self.name == "rop3" else cairo.OPERATOR_SOURCE)
        w, h = self.w, self.h
        # image surfaces made before timing, as a cache would hold them (uncached copies
        # convert again every time, as spice-gtk does for a bitmap it was not told to keep)
        fmt = cairo.FORMAT_ARGB32 if self.name == "rop3" else cairo.FORMAT_RGB24
        sources = [cairo.ImageSurface.create_for_data(memoryview(p), fmt, w, h, w * 4)
                   for p in self.images]
        bits = np.zeros((h, cairo.ImageSurface.format_stride_for_width(cairo.FORMAT_A1, w)),
                        np.uint8)
        bits[:, : (w + 7) // 8] = self.glyph_bits[0, 0] if h == GLYPH_H else 0
        mask = cairo.ImageSurface.create_for_data(memoryview(bits), cairo.FORMAT_A1, w, h,
                                                  bits.shape[1])
        t = time.perf_counter()
        for i, ((x, y), color) in enumerate(zip(self.pos, self.colors, strict=True)):
            if self.name == "fill":
                ctx.set_source_rgb((color >> 16) / 255, ((color >> 8) & 255) / 255,
                                   (color & 255) / 255)
                ctx.rectangle(x, y, w, h)
                ctx.fill()
            elif self.name == "text":
                ctx.set_source_rgb((color >> 16) / 255, ((color >> 8) & 255) / 255,
                                   (color & 255) / 255)
                ctx.mask_surface(mask, x, y)
            else:
                src = sources[i % len(sources)]
                if self.name == "copy":
                    src = cairo.ImageSurface.create_for_data(
                        memoryview(self.images[i % len(self.images)]), fmt, w, h, w * 4)
                ctx.set_source_surface(src, x, y)
                ctx.rectangle(x, y, w, h)
                ctx.fill()
        surface.flush()
        return time.perf_counter() - t


_CONSTANT = "out vec4 c; void main() { c = vec4(0.2, 0.4, 0.6, 1.0); }"
_TEXTURED = ("uniform sampler2D t; out vec4 c; "
             "void main() { c = texelFetch(t, ivec2(gl_FragCoord.xy), 0); }")


def fill_rate_ceiling(ctx: moderngl.Context, frames: int, fragment: str) -> float:
    """Pixels per second of full-surface quads on this GL, each finished before the next."""
    prog = ctx.program(
        vertex_shader="#version 330 core\nin vec2 p; void main() { gl_Position = "
                      "vec4(p, 0.0, 1.0); }",
        fragment_shader="#version 330 core\n" + fragment)
    vbo = ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], "f4").tobytes())
    vao = ctx.vertex_array(prog, [(vbo, "2f", "p")], mode=moderngl.TRIANGLE_STRIP)
    tex = ctx.texture((W, H), 4)
    src = ctx.texture((W, H), 4, np.random.default_rng(0).integers(0, 256, (H, W, 4),
                                                                    dtype=np.uint8))
    src.use(0)
    fbo = ctx.framebuffer(color_attachments=[tex])
    fbo.use()
    vao.render()
    ctx.finish()
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        vao.render()
        ctx.finish()
        times.append(time.perf_counter() - t)
    dt = statistics.median(times) * frames
    for obj in (vao, vbo, prog, fbo, tex, src):
        obj.release()
    return frames * W * H / dt


def instanced_rect_ceiling(ctx: moderngl.Context, size: int, count: int, repeats: int) -> float:
    """Rects per second when `count` solid size x size rects go to GL as one instanced draw
    with no renderer around it: what batching small operations can reach at best here."""
    prog = ctx.program(
        vertex_shader="#version 330 core\nin vec2 corner; in vec4 rect; in vec4 color; "
                      "out vec4 v; void main() { vec2 p = mix(rect.xy, rect.zw, corner); "
                      f"gl_Position = vec4(p / vec2({W / 2}, {H / 2}) - 1.0, 0.0, 1.0); "
                      "v = color; }",
        fragment_shader="#version 330 core\nin vec4 v; out vec4 c; void main() { c = v; }")
    rng = np.random.default_rng(size)
    xy = rng.integers(0, [W - size, H - size], (count, 2)).astype("f4")
    inst = np.concatenate([xy, xy + size, rng.random((count, 4), dtype="f4")], 1)
    corners = ctx.buffer(np.array([0, 0, 1, 0, 0, 1, 1, 1], "f4").tobytes())
    buf = ctx.buffer(inst.astype("f4").tobytes())
    vao = ctx.vertex_array(prog, [(corners, "2f", "corner"), (buf, "4f 4f /i", "rect", "color")],
                           mode=moderngl.TRIANGLE_STRIP)
    tex = ctx.texture((W, H), 4)
    fbo = ctx.framebuffer(color_attachments=[tex])
    fbo.use()

    def once() -> float:
        ctx.finish()
        t = time.perf_counter()
        vao.render(instances=count)
        ctx.finish()
        return time.perf_counter() - t

    rate = count / _median(once, repeats)
    for obj in (vao, buf, corners, prog, fbo, tex):
        obj.release()
    return rate


def _median(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    repeats = 3 if quick else 5
    scale = 0.25 if quick else 1.0
    ctx = create_context()
    r = Renderer(ctx)
    r.create_primary(W, H, W * 4, E.SURFACE_FMT_32_xRGB, None)
    surface = cairo.ImageSurface(cairo.FORMAT_RGB24, W, H) if cairo is not None else None
    if cairo is None:
        print("pycairo is not importable here: the pixman columns are left empty")
    plan = [("fill", 10, 40000), ("fill", 32, 20000), ("fill", 100, 3000), ("fill", 512, 200),
            ("copy", 10, 20000), ("copy", 32, 10000), ("copy", 256, 300),
            ("cached copy", 32, 10000), ("cached copy", 256, 300),
            ("text", 0, 10000), ("rop3", 10, 10000), ("rop3", 32, 5000), ("rop3", 256, 200)]
    print(f"renderer: {ctx.info['GL_RENDERER']}; surface {W}x{H} xRGB; median of {repeats}")
    frames = max(10, int(100 * scale))
    fill_ceiling = fill_rate_ceiling(ctx, frames, _CONSTANT)
    copy_ceiling = fill_rate_ceiling(ctx, frames, _TEXTURED)
    print(f"fill-rate ceiling (full-surface quad): constant colour {fill_ceiling / 1e6:,.0f} "
          f"Mpx/s, textured {copy_ceiling / 1e6:,.0f} Mpx/s")
    small = [(n, instanced_rect_ceiling(ctx, n, max(1000, int(count * scale)), repeats))
             for n, count in ((10, 20000), (32, 20000), (100, 3000))]
    print("instanced-rect ceiling (one draw, moderngl alone): "
          + ", ".join(f"{n}x{n} {rate:,.0f} rects/s" for n, rate in small) + "\n")
    head = (f"{'operation':<13}{'size':>8}{'vgpu ops/s':>13}{'Mpx/s':>8}"
            f"{'pixman ops/s':>14}{'Mpx/s':>8}{'vgpu/pixman':>13}{'of ceiling':>12}")
    print(head)
    print("-" * len(head))
    pixman_fills: dict[int, float] = {}
    for i, (name, size, count) in enumerate(plan):
        wl = Workload(name, size, max(20, int(count * scale)), seed=i)
        cmds = wl.commands()
        tv = _median(lambda wl=wl, cmds=cmds: wl.run_vgpu(r, cmds), repeats)
        ops_v = wl.count / tv
        mpx_v = ops_v * wl.pixels / 1e6
        label = "6x13 x10" if name == "text" else f"{size}x{size}"
        ceiling = fill_ceiling if name in ("fill", "text") else copy_ceiling
        pixman = f"{'-':>14}{'-':>8}{'-':>13}"
        if surface is not None:
            tc = _median(lambda wl=wl: wl.run_cairo(surface), repeats)
            ops_c = wl.count / tc
            if name == "fill":
                pixman_fills[size] = ops_c
            pixman = f"{ops_c:>14,.0f}{ops_c * wl.pixels / 1e6:>8,.0f}{ops_v / ops_c:>12.2f}x"
        print(f"{name:<13}{label:>8}{ops_v:>13,.0f}{mpx_v:>8,.0f}{pixman}"
              f"{mpx_v * 1e6 / ceiling:>11.0%}", flush=True)
    fetch = r.fetch
    r.close()
    if pixman_fills:
        # can any renderer on this GL reach the small-operation target at all?
        print("\nsmall fills, 2x pixman against what one instanced draw can do on this GL:")
        for n, rate in small:
            if n > 32:  # the small-operation target
                continue
            print(f"  {n}x{n}: 2x pixman is {2 * pixman_fills[n]:,.0f} rects/s, the "
                  f"instanced-rect ceiling {rate:,.0f} ({rate / (2 * pixman_fills[n]):.2f} of it)")
    if fetch:
        # the path GLs without framebuffer fetch take (NVIDIA's, for one), in the same run
        print("\ndestination reads: framebuffer fetch (above) against scratch copies")
        copies = Renderer(ctx, framebuffer_fetch=False)
        copies.create_primary(W, H, W * 4, E.SURFACE_FMT_32_xRGB, None)
        for i, (name, size, count) in enumerate(plan):
            if name != "rop3":
                continue
            wl = Workload(name, size, max(20, int(count * scale)), seed=i)
            cmds = wl.commands()
            tv = _median(lambda wl=wl, cmds=cmds: wl.run_vgpu(copies, cmds), repeats)
            print(f"{name:<13}{f'{size}x{size}':>8}{wl.count / tv:>13,.0f} ops/s with copies",
                  flush=True)
        copies.close()
    print("\nreplay of Xspice recordings (reader + guest driver + device + renderer)")
    print(f"{'recording':<12}{'drawables':>10}{'span s':>9}{'commands s':>12}{'replay s':>10}"
          f"{'x real time':>13}")
    for path in RECORDINGS:
        times = [e.timestamp for e in read_events(path)]
        cmd_times = [e.timestamp for e in read_events(path) if isinstance(e, CommandEvent)]
        span = (times[-1] - times[0]) / 1e9
        burst = (cmd_times[-1] - cmd_times[0]) / 1e9

        def once(path: Path = path) -> float:
            rr = Renderer(ctx)
            try:
                return replay(path, rr).seconds
            finally:
                rr.close()

        took = _median(once, 1 if quick else 3)
        drawables = sum(1 for e in read_events(path) if isinstance(e, CommandEvent))
        name = path.name.removesuffix(".spice.xz")
        print(f"{name:<12}{drawables:>10}{span:>9.2f}{burst:>12.2f}{took:>10.2f}"
              f"{span / took:>12.1f}x", flush=True)
    ctx.release()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
