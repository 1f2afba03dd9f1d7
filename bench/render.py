"""2D throughput of the GL renderer against pixman (through pycairo) and this GL's ceilings.

Each case runs the same operations, at the same places and sizes, on a 1024x768 xRGB
surface: through vgpu's Renderer (typed QXL commands, built before timing, as the parser
would hand them over; time includes flush and glFinish) and through pycairo's image surface
(pixman, what spice-gtk's canvas draws with). ROP3 has no pixman equivalent; cairo's XOR
operator stands in as another destination-reading per-pixel operation. All figures are
megapixels per second, so the references fit one scale:

- "GL ceiling": full-surface quads on this GL with no renderer around them, each finished
  before the next: a constant colour (for fills and text) or reading a texture (copies,
  ROP3). llvmpipe drops work that later opaque draws hide, so overlapping large batches
  can pass it.
- "instanced-rect ceiling" (fills up to 100x100): the same rects as one instanced draw of
  solid rects: the most that batching small operations can give on this GL.
- "vgpu, scratch copies" (ROP3, where the GL has framebuffer fetch): the path GLs
  without it take (NVIDIA's, for one).
"""

from __future__ import annotations

from collections.abc import Iterator

import moderngl
import numpy as np

try:
    import cairo
except ImportError:  # a machine without pycairo/libcairo: vgpu's figures and the ceilings
    cairo = None

from vgpu.bench import Bench, Contender, Measurement, workload
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
from vgpu.render.context import create_context

W, H = 1024, 768
NO_MASK = QMask(0, QPoint(0, 0), None)
ZERO = QRect(0, 0, 0, 0)
GLYPH_W, GLYPH_H, GLYPHS = 6, 13, 10  # one xterm-like run of 10 "fixed" glyphs per op
CEILING_QUADS = 10  # full-surface quads per timed run of the GL ceiling
INSTANCED_MAX = 100  # fills up to this size also meet the instanced-rect ceiling

PLAN = [("fill", 10, 40000), ("fill", 32, 20000), ("fill", 100, 3000), ("fill", 512, 200),
        ("copy", 10, 20000), ("copy", 32, 10000), ("copy", 256, 300),
        ("cached copy", 32, 10000), ("cached copy", 256, 300),
        ("text", 0, 10000), ("rop3", 10, 10000), ("rop3", 32, 5000), ("rop3", 256, 200)]
"""(operation, size, count): the operation mixes, each count drawn per timed run."""


def _bitmap(pix: np.ndarray, image_id: int = 0, cache: bool = False) -> BitmapImage:
    h, w = pix.shape[:2]
    desc = ImageDescriptor(image_id, E.IMAGE_TYPE_BITMAP, E.QXL_IMAGE_CACHE if cache else 0, w, h)
    return BitmapImage(desc, E.BITMAP_FMT_32BIT, 4, w, h, w * 4, None, pix.tobytes())


class Mix:
    """`count` operations of one kind at seeded places, for vgpu and for cairo alike."""

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
    def label(self) -> str:
        return f"{self.name} " + (f"{GLYPH_W}x{GLYPH_H} x{GLYPHS}" if self.name == "text"
                                  else f"{self.size}x{self.size}")

    @property
    def megapixels(self) -> float:
        return self.count * self.w * self.h / 1e6

    def commands(self) -> list[Drawable]:
        out = []
        imgs = [_bitmap(p, i + 1, cache=self.name == "cached copy")
                for i, p in enumerate(self.images)]
        area = QRect(0, 0, self.h, self.w)
        glyphs = tuple(RasterGlyph(QPoint(i * GLYPH_W, GLYPH_H), QPoint(0, -GLYPH_H), GLYPH_W,
                                   GLYPH_H, self.glyph_bits.tobytes()) for i in range(GLYPHS))
        for i, ((x, y), color) in enumerate(zip(self.pos, self.colors, strict=True)):
            img = imgs[i % len(imgs)]
            if self.name == "fill":
                op = Fill(SolidBrush(color), E.ROPD_OP_PUT, NO_MASK)
            elif self.name in ("copy", "cached copy"):
                op = Copy(img, area, E.ROPD_OP_PUT, 0, NO_MASK)
            elif self.name == "rop3":
                op = Rop3(img, area, SolidBrush(color), 0x96, 0, NO_MASK)
            else:
                moved = GlyphString(E.STRING_FLAGS_RASTER_A1, tuple(
                    RasterGlyph(QPoint(g.render_pos.x + x, g.render_pos.y + y), g.glyph_origin,
                                g.width, g.height, g.data) for g in glyphs))
                op = Text(moved, ZERO, SolidBrush(color), None, E.ROPD_OP_PUT, E.ROPD_OP_PUT)
            out.append(Drawable(bbox=QRect(y, x, y + self.h, x + self.w), op=op))
        return out

    def vgpu(self, r: Renderer) -> Contender:
        cmds = self.commands()

        def settle() -> None:
            r.flush()
            r.ctx.finish()

        def run() -> None:
            for c in cmds:
                r.execute(c)
            settle()

        return Contender(run, before=settle)

    def cairo(self, surface: cairo.ImageSurface) -> Contender:
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

        def run() -> None:
            ctx = cairo.Context(surface)
            ctx.set_antialias(cairo.ANTIALIAS_NONE)
            ctx.set_operator(cairo.OPERATOR_XOR if self.name == "rop3" else
                             cairo.OPERATOR_SOURCE)
            for i, ((x, y), color) in enumerate(zip(self.pos, self.colors, strict=True)):
                if self.name in ("fill", "text"):
                    ctx.set_source_rgb((color >> 16) / 255, ((color >> 8) & 255) / 255,
                                       (color & 255) / 255)
                    if self.name == "text":
                        ctx.mask_surface(mask, x, y)
                        continue
                else:
                    src = sources[i % len(sources)]
                    if self.name == "copy":
                        src = cairo.ImageSurface.create_for_data(
                            memoryview(self.images[i % len(self.images)]), fmt, w, h, w * 4)
                    ctx.set_source_surface(src, x, y)
                ctx.rectangle(x, y, w, h)
                ctx.fill()
            surface.flush()

        return Contender(run)


_CONSTANT = "out vec4 c; void main() { c = vec4(0.2, 0.4, 0.6, 1.0); }"
_TEXTURED = ("uniform sampler2D t; out vec4 c; "
             "void main() { c = texelFetch(t, ivec2(gl_FragCoord.xy), 0); }")


class Ceilings:
    """This GL's ceilings, drawn by moderngl alone on the renderer's context."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self.tex = ctx.texture((W, H), 4)
        self.fbo = ctx.framebuffer(color_attachments=[self.tex])
        self.src = ctx.texture((W, H), 4, np.random.default_rng(0).integers(
            0, 256, (H, W, 4), dtype=np.uint8))
        self.quad = ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], "f4").tobytes())
        self.corners = ctx.buffer(np.array([0, 0, 1, 0, 0, 1, 1, 1], "f4").tobytes())
        self.owned: list = [self.tex, self.fbo, self.src, self.quad, self.corners]

    def _keep(self, *objs):
        self.owned.extend(objs)
        return objs[-1]

    def _bind(self) -> None:
        self.fbo.use()
        self.src.use(0)
        self.ctx.finish()

    def fill_rate(self, textured: bool) -> tuple[Contender, float]:
        """Full-surface quads, each finished before the next; and the megapixels a run draws."""
        prog = self._keep(self.ctx.program(
            vertex_shader="#version 330 core\nin vec2 p; void main() { gl_Position = "
                          "vec4(p, 0.0, 1.0); }",
            fragment_shader="#version 330 core\n" + (_TEXTURED if textured else _CONSTANT)))
        vao = self._keep(self.ctx.vertex_array(prog, [(self.quad, "2f", "p")],
                                               mode=moderngl.TRIANGLE_STRIP))

        def run() -> None:
            for _ in range(CEILING_QUADS):
                vao.render()
                self.ctx.finish()

        return Contender(run, before=self._bind), CEILING_QUADS * W * H / 1e6

    def instanced(self, mix: Mix) -> Contender:
        """The mix's rects, solid, as one instanced draw: the best batching can do here."""
        prog = self._keep(self.ctx.program(
            vertex_shader="#version 330 core\nin vec2 corner; in vec4 rect; in vec4 color; "
                          "out vec4 v; void main() { vec2 p = mix(rect.xy, rect.zw, corner); "
                          f"gl_Position = vec4(p / vec2({W / 2}, {H / 2}) - 1.0, 0.0, 1.0); "
                          "v = color; }",
            fragment_shader="#version 330 core\nin vec4 v; out vec4 c; void main() { c = v; }"))
        xy = np.array(mix.pos, "f4")
        rgb = np.array([[(c >> 16) / 255, ((c >> 8) & 255) / 255, (c & 255) / 255, 1.0]
                        for c in mix.colors], "f4")
        inst = self._keep(self.ctx.buffer(np.concatenate([xy, xy + mix.size, rgb], 1)
                                          .astype("f4").tobytes()))
        vao = self._keep(self.ctx.vertex_array(
            prog, [(self.corners, "2f", "corner"), (inst, "4f 4f /i", "rect", "color")],
            mode=moderngl.TRIANGLE_STRIP))

        def run() -> None:
            vao.render(instances=mix.count)
            self.ctx.finish()

        return Contender(run, before=self._bind)

    def release(self) -> None:
        for obj in reversed(self.owned):
            obj.release()


@workload("render", "2D operation mixes through the GL renderer, megapixels per second",
          references=("pixman (pycairo)", "GL ceiling", "instanced-rect ceiling"))
def render(b: Bench) -> Iterator[Measurement]:
    scale = 0.1 if b.quick else 1.0
    ctx = create_context()
    r = Renderer(ctx)
    copies = Renderer(ctx, framebuffer_fetch=False) if r.fetch else None
    ceilings = Ceilings(ctx)
    try:
        for renderer in (r, copies):
            if renderer is not None:
                renderer.create_primary(W, H, W * 4, E.SURFACE_FMT_32_xRGB, None)
        surface = cairo.ImageSurface(cairo.FORMAT_RGB24, W, H) if cairo is not None else None
        fill_ceiling, fill_mpx = ceilings.fill_rate(textured=False)
        copy_ceiling, copy_mpx = ceilings.fill_rate(textured=True)
        renderer_name = ctx.info["GL_RENDERER"]
        for i, (name, size, count) in enumerate(PLAN):
            mix = Mix(name, size, max(20, int(count * scale)), seed=i)
            contenders: dict[str, Contender] = {"vgpu": mix.vgpu(r)}
            work = {"vgpu": mix.megapixels}
            if copies is not None and name == "rop3":
                contenders["vgpu, scratch copies"] = mix.vgpu(copies)
                work["vgpu, scratch copies"] = mix.megapixels
            if surface is not None:
                contenders["pixman (pycairo)"] = mix.cairo(surface)
                work["pixman (pycairo)"] = mix.megapixels
            constant = name in ("fill", "text")
            contenders["GL ceiling"] = fill_ceiling if constant else copy_ceiling
            work["GL ceiling"] = fill_mpx if constant else copy_mpx
            if name == "fill" and size <= INSTANCED_MAX:
                contenders["instanced-rect ceiling"] = ceilings.instanced(mix)
                work["instanced-rect ceiling"] = mix.megapixels
            yield b.time(mix.label, contenders, work=work, unit="Mpx/s", rounds=b.rounds(5, 2),
                         note=f"{mix.count} operations per run on {W}x{H} xRGB; {renderer_name}")
    finally:
        ceilings.release()
        if copies is not None:
            copies.close()
        r.close()
        ctx.release()
