"""The batch engine: operations are queued, not drawn. Consecutive operations of one kind on
one target become one instanced draw (`Batch`) of the blit program (fills and plain copies)
or the draw program (everything that reads the destination). The guest pixels a batch needs
(small bitmaps, masks, glyphs) are appended to one staging buffer, uploaded once per draw call
and read by the shaders by index.

Operations that read the destination read the framebuffer itself where the GL offers coherent
framebuffer fetch (llvmpipe and Mesa's GPU drivers do), and then batch whatever they touch;
elsewhere they copy the rects they touch to a scratch texture first and read that
(ping-pong), and batch only while their rects do not overlap.

`vgpu.render.gl.Renderer.execute` queues every operation through its handler; where the
staging buffer has no room for its pixels, `_queue_again` draws what is queued, empties the
buffer and queues it again (the one path that flushes for room).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import moderngl
import numpy as np

from vgpu.render import enums as E
from vgpu.render.context import GlContext, Surface, load_program
from vgpu.render.errors import RenderError
from vgpu.render.region import Box

MAX_BATCH = 2048
"""Instances per draw call: amortises a draw call's cost thousands of times, while each
submitted draw is flushed to the GL early enough that it draws while Python queues the next
batch (llvmpipe rasterizes on its own threads: 10x10 fills ran 1.7x faster than with 16384,
whose first draw left the GL idle until 16384 operations were queued)."""

MAX_STAGING_BYTES = 32 << 20
"""Guest bitmap bytes queued for one draw call's staging buffer before it flushes: a few
full screens of small copies, and a bound on the memory one batch holds."""

REFILL_IN_PLACE_BYTES = 1 << 20
"""Uploads from this size on go into a GL buffer's existing storage instead of orphaned fresh
storage: llvmpipe zeroes a new buffer and every 4 KiB of it page-faults (an 18 MiB batch of
copies spent as long on that as on drawing), which costs more than waiting for the draw that
last read the buffer. Smaller uploads orphan, so frequent small batches never wait."""

OVERLAP_CELL_SHIFT = 3
"""Without framebuffer fetch, a batch of destination-reading draws must not overlap itself;
overlap is tested on 8x8-pixel cells: small rects rarely share a cell by chance, and a
screen-sized rect marks at most a few hundred rows of bits."""

# blit.glsl i_kind values; a batch's `kinds` holds 1 << kind for each one it has
BLIT_FILL, BLIT_COPY, BLIT_STAGED, BLIT_GLYPH = 0, 1, 2, 3
BLIT_INTS = 8  # int32 fields per blit instance (_BLIT_FMT)

# draw.glsl i_mode layout
KIND_ROP3, KIND_COLORKEY, KIND_COVERAGE, KIND_ALPHA = 0, 1, 2, 3
MODE_MASK = 1 << 12
MODE_PATTERN = 1 << 13
MODE_SRC_ALPHA = 1 << 14
MODE_DST_ALPHA = 1 << 15
MODE_BILINEAR = 1 << 16
MODE_SRC = 1 << 17
MODE_SRC_OPAQUE = 1 << 18

SourceMap = tuple[int, int, int, int]
"""(fx, fy, cx, cy): see `vgpu.render.ops2d.Ops2d._src_map`."""
UNSCALED = (1 << 16, 1 << 16, 0x8000, 0x8000)

_BLIT_FMT = ("4i 2i u u", ("i_rect", "i_off", "i_color", "i_kind"))
_DRAW_FMT = ("4i 4i 2i 4i u u", ("i_rect", "i_src", "i_stage", "i_aux", "i_color", "i_mode"))
_DRAW_INTS = 16  # 32-bit fields per draw instance (_DRAW_FMT)
BLIT_LIMIT = MAX_BATCH * BLIT_INTS  # ints in a full batch
_DRAW_LIMIT = MAX_BATCH * _DRAW_INTS


@dataclass(slots=True)
class Source:
    """Where an operation's source (or pattern) pixels are: a texture, or staged pixels
    (`staged` = (first pixel index, pixels per row) in the staging buffer, valid until the
    batch flushes)."""

    tex: Any  # moderngl.Texture, or None when staged or the target itself
    width: int
    height: int
    has_alpha: bool
    surface: Surface | None = None
    staged: tuple[int, int] | None = None
    x: int = 0  # the image's place inside `tex` (cached images share one texture)
    y: int = 0
    content: int | None = None  # a cached image's pixel hash (render.cache.content_key)


class StagingFull(Exception):
    """The staging buffer has no room left for an operation's pixels: draw, empty, retry."""


class Batch:
    """The queued instances of one draw call and the state they share."""

    __slots__ = ("blit_to", "cells", "data", "extra", "kind", "kinds", "limit", "pat", "reads",
                 "src", "stage_start", "target")

    def __init__(self) -> None:
        self.kind: str | None = None
        self.extra: tuple[Any, ...] = ()
        self.data: list[Any] = []
        self.reads: list[Box] = []  # what a batch reading its own target reads of it
        # without framebuffer fetch: the OVERLAP_CELL cells its rects touch (row -> bit mask)
        self.cells: dict[int, int] = {}
        self.target: Surface | None = None
        self.src: Any = None
        self.pat: Any = None
        # blit: 1 << BLIT_*; draw: 1 << KIND_*, and 256 when an instance has a mask
        self.kinds = 0
        self.stage_start = 0  # the first staging byte its instances refer to
        # ints `data` may grow to while other operations join it; 0 while it has no kind or
        # reads its own target (it draws before the next operation)
        self.limit = 0
        # its target while it is a blit batch other blits may join, else None: with room (and
        # for a copy, its source) the whole test for joining, written out where blits queue
        self.blit_to: Surface | None = None


Handler = Callable[[Surface, Box, list[Box], Any], list[Box]]
"""An operation's handler: (target, bbox, destination rects, op) -> the rects it changed."""


class BatchEngine(GlContext):
    """Queues operations into batches and draws them (see the module docstring)."""

    def __init__(self, ctx: moderngl.Context | None, framebuffer_fetch: bool | None) -> None:
        super().__init__(ctx, framebuffer_fetch)
        self._blit_variants: dict[tuple[int, int], tuple[moderngl.Program,
                                                         moderngl.VertexArray]] = {}
        self._draw_variants: dict[tuple[int, ...], tuple[moderngl.Program,
                                                         moderngl.VertexArray]] = {}
        self._blit_buf = self.ctx.buffer(reserve=MAX_BATCH * BLIT_INTS * 4, dynamic=True)
        # guest bitmap rows of the blit batch (kind 2), written at _staged, allocated once:
        # appending to a growing bytearray would copy it over and over
        self._staging = bytearray(MAX_STAGING_BYTES)
        self._staged = 0
        self._op_stage_start = 0
        self._staging_buf = self.ctx.buffer(reserve=4096, dynamic=True)
        self._draw_buf = self.ctx.buffer(reserve=MAX_BATCH * _DRAW_INTS * 4, dynamic=True)
        self._pending_release: list[Any] = []  # textures to free once the batch has drawn
        self._op_textures: list[Any] = []  # made or evicted by the operation being queued
        self._batch = Batch()
        self.draw_calls = 0

    def _queue_again(self, handler: Handler, surf: Surface, bbox: Box, rects: list[Box],
                     op: Any) -> list[Box]:
        """Queues an operation again after its handler found no room in the staging buffer
        for its pixels (nothing of it is queued yet): draws what is queued and empties the
        buffer first."""
        self.flush()
        self._staged = self._op_stage_start = 0
        try:
            return handler(surf, bbox, rects, op)
        except StagingFull:
            raise RenderError("operation's pixels exceed the staging buffer") from None

    def _release_op_textures(self) -> None:
        """Textures the operation just queued made are freed after the batch that samples
        them."""
        self._pending_release.extend(self._op_textures)
        self._op_textures.clear()

    def flush(self) -> None:
        """Submits the queued operations, and has the GL start on them."""
        b = self._batch
        if b.kind is None:
            return
        try:
            if b.data:
                self._submit(b)
                self._gl_flush()
        finally:
            self._drop_batch()

    def _stage(self, data: Any) -> int:
        """Appends bytes to the staging buffer at a 4-byte boundary; returns their offset."""
        pos = self._staged  # kept 4-aligned: pixels are read as 32-bit words
        if type(data) is not bytes:  # guest rows come as bytes, needing no view
            data = memoryview(data).cast("B")
        end = pos + len(data)
        if end > MAX_STAGING_BYTES:
            raise StagingFull
        self._staging[pos:end] = data
        self._staged = (end + 3) & ~3
        return pos

    def _stage_mask(self, mask: np.ndarray, box: Box) -> tuple[int, int]:
        """A bool/coverage (h, w) array covering `box` into the staging buffer; returns (a, s)
        such that the byte of destination pixel (x, y) is at a + y * s + x."""
        w = mask.shape[1]
        data = mask if mask.dtype == np.uint8 else mask.astype(np.uint8) * np.uint8(255)
        base = self._stage(np.ascontiguousarray(data))
        return base - box[1] * w - box[0], w

    def _begin(self, kind: str, target: Surface, src_tex: Any = None, pat_tex: Any = None,
               extra: tuple[Any, ...] = ()) -> Batch:
        """The batch to append to: the current one if this operation can share its draw call
        (same program, target and settings; a source or pattern it lacks it may bring), else
        a new one after flushing. src_tex, pat_tex: what `resolve` made of them. The usual
        fill and copy test `Batch.blit_to` themselves and come here when they cannot join."""
        b = self._batch
        # cheapest tests first: this runs once per operation
        if (b.target is target and len(b.data) < b.limit and b.kind == kind
                and b.extra == extra
                and (src_tex is None or b.src is src_tex or (b.src is None and src_tex != "self"))
                and (pat_tex is None or b.pat is pat_tex or (b.pat is None and pat_tex != "self"))):
            if b.src is None:
                b.src = src_tex
            if b.pat is None:
                b.pat = pat_tex
            return b
        self.flush()
        b = self._batch
        b.kind, b.target, b.src, b.pat, b.extra = kind, target, src_tex, pat_tex, extra
        b.stage_start = self._op_stage_start
        b.limit = (0 if src_tex == "self" or pat_tex == "self"
                   else BLIT_LIMIT if kind == "blit" else _DRAW_LIMIT)
        b.blit_to = target if kind == "blit" and b.limit else None
        return b

    def _queue_fill(self, target: Surface, rects: list[Box], color: int) -> None:
        b = self._begin("blit", target)
        b.kinds |= 1 << BLIT_FILL
        for x0, y0, x1, y1 in rects:
            b.data += (x0, y0, x1, y1, 0, 0, color, BLIT_FILL)

    def _queue_copy(self, target: Surface, rects: list[Box], src: Source, dx: int,
                    dy: int) -> None:
        """Copies source texel (x - dx, y - dy) of the image to each destination pixel."""
        if src.staged is not None:
            self._queue_staged(target, rects, src.staged, dx, dy)
            return
        if src.surface is target:  # a self-read (`resolve`) always starts a batch
            b = self._begin("blit", target, "self")
            b.kinds |= 1 << BLIT_COPY
            b.reads.extend((x0 - dx, y0 - dy, x1 - dx, y1 - dy) for x0, y0, x1, y1 in rects)
            for x0, y0, x1, y1 in rects:
                b.data += (x0, y0, x1, y1, src.x - dx, src.y - dy, 0, BLIT_COPY)
            self.flush()
            return
        tex = src.tex
        b = self._batch
        # _begin's test for joining the batch, written out (`Batch.blit_to`): this runs for
        # every copy of a cached image
        if b.blit_to is target and len(b.data) < BLIT_LIMIT and (b.src is None or b.src is tex):
            b.src = tex
        else:
            b = self._begin("blit", target, tex)
        b.kinds |= 1 << BLIT_COPY
        ox, oy = src.x - dx, src.y - dy
        for x0, y0, x1, y1 in rects:
            b.data += (x0, y0, x1, y1, ox, oy, 0, BLIT_COPY)

    def _queue_staged(self, target: Surface, rects: list[Box], staged: tuple[int, int],
                      dx: int, dy: int) -> None:
        """Copies staged pixel (x - dx, y - dy) of an image (`Source.staged`) to each
        destination pixel."""
        b = self._batch
        # _begin's test for joining the batch, written out (`Batch.blit_to`): this runs for
        # most copies
        if (b.blit_to is target and len(b.data) < BLIT_LIMIT
                and (b.src is None or b.src == "staged")):
            b.src = "staged"
        else:
            b = self._begin("blit", target, "staged")
        base, stride = staged
        b.kinds |= 1 << BLIT_STAGED
        for x0, y0, x1, y1 in rects:
            b.data += (x0, y0, x1, y1, base - dy * stride - dx, stride, 0, BLIT_STAGED)

    def _queue_draw(self, target: Surface, rects: list[Box], mode: int, *,
                    src: Source | None = None, src_map: SourceMap = UNSCALED,
                    pat: Source | None = None, color: int = 0,
                    aux: tuple[int, int] = (0, 0), pat_pos: tuple[int, int] = (0, 0),
                    src_reads: list[Box] | None = None) -> None:
        """Queues a destination-reading draw over `rects` (disjoint). src_map: see
        `_src_map`; aux: (a, s) from _stage_mask for the mask/coverage."""
        if src is not None:
            mode |= MODE_SRC
        if pat is not None:
            mode |= MODE_PATTERN
        bilinear = bool(mode & MODE_BILINEAR)
        src_tex, pat_tex = resolve(src, target), resolve(pat, target)
        src_self, pat_self = src_tex == "self", pat_tex == "self"
        b = self._begin("draw", target, src_tex, pat_tex, (bilinear,))
        if not self.fetch and not claim_cells(b.cells, rects):
            self.flush()
            b = self._begin("draw", target, src_tex, pat_tex, (bilinear,))
            claim_cells(b.cells, rects)
        whole = (0, 0, target.width, target.height)
        if src_self:
            b.reads.extend(src_reads or [whole])
        if pat_self:  # a pattern tiles from anywhere in it
            b.reads.append(whole)
        stage = (0, 0)
        if src is not None and src.staged is not None:
            stage = src.staged
        elif src is not None and (src.x or src.y):
            src_map = (src_map[0], src_map[1], src_map[2] + (src.x << 16),
                       src_map[3] + (src.y << 16))
        b.kinds |= 1 << ((mode >> 8) & 0xF)
        if mode & MODE_MASK:
            b.kinds |= 1 << 8
        color &= 0xFFFFFFFF
        for r in rects:
            b.data += (*r, *src_map, *stage, *aux, *pat_pos, color, mode)
        if src_self or pat_self:
            self.flush()

    def _drop_batch(self) -> None:
        self._batch = Batch()
        for tex in self._pending_release:
            tex.release()
        self._pending_release.clear()

    def _submit(self, b: Batch) -> None:
        target = b.target
        assert target is not None
        if self._staged > b.stage_start:
            fill_buffer(self._staging_buf,
                         memoryview(self._staging)[b.stage_start : self._staged])
            self._staging_buf.bind_to_storage_buffer(0)
        src = self._sample_tex(b.src, target, b.reads)
        pat = self._sample_tex(b.pat, target, b.reads)
        # fields are 32-bit words; colours and modes above 2**31 keep their bits
        data = np.array(b.data, np.int64).astype(np.int32)
        if b.kind == "blit":
            n = len(data) // BLIT_INTS
            fill_buffer(self._blit_buf, data.tobytes())
            self._blit_draw(b.kinds, src, target, target.fmt, n, stage_base=b.stage_start)
            self.draw_calls += 1
            return
        data = data.reshape(-1, _DRAW_INTS)
        n = len(data)
        if not self.fetch:
            self._copy_rects(target, "scratch", data[:, :4]).use(0)
        fill_buffer(self._draw_buf, data.tobytes())
        src.use(1)
        pat.use(2)
        source = 0 if b.src is None else 2 if b.src == "staged" else 1
        key = (b.kinds & 0xFF, source, int(b.pat is not None), int(bool(b.extra[0])),
               int(bool(b.kinds & 1 << 8)), target.fmt, int(self.fetch))
        variant = self._draw_variants.get(key)
        if variant is None:
            prog = load_program(self.ctx, "draw", KINDS=key[0], SOURCE=key[1], PATTERN=key[2],
                                BILINEAR=key[3], MASKS=key[4], FMT=key[5], FETCH=key[6])
            variant = (prog, self._vao(prog, self._draw_buf, _DRAW_FMT))
            self._draw_variants[key] = variant
        prog, vao = variant
        for name, value in (("u_dst", 0), ("u_src", 1), ("u_pat", 2),
                            ("u_stage_base", b.stage_start),
                            ("u_size", (target.width, target.height))):
            if name in prog:
                prog[name] = value
        target.fbo.use()
        vao.render(instances=n)
        self.draw_calls += 1

    def _blit_draw(self, kinds: int, src: moderngl.Texture, target: Surface, fmt: int, n: int,
                   fbo: moderngl.Framebuffer | None = None, stage_base: int = 0) -> None:
        """n instances of the blit buffer onto target (or another fbo of its size)."""
        variant = self._blit_variants.get((kinds, fmt))
        if variant is None:
            prog = load_program(self.ctx, "blit", KINDS=kinds, FMT=fmt)
            variant = (prog, self._vao(prog, self._blit_buf, _BLIT_FMT))
            self._blit_variants[(kinds, fmt)] = variant
        prog, vao = variant
        src.use(0)
        for name, value in (("u_src", 0), ("u_size", (target.width, target.height)),
                            ("u_stage_base", stage_base)):
            if name in prog:
                prog[name] = value
        (fbo or target.fbo).use()
        vao.render(instances=n)

    def _sample_tex(self, which: Any, target: Surface, reads: list[Box]) -> moderngl.Texture:
        """The texture to bind for a batch's source or pattern (`_resolve`'s value); when
        that is the target itself, a copy of the `reads` rects taken before drawing."""
        if which is None or which == "staged":
            return self._dummy
        if which == "self":
            return self._copy_rects(target, "self_copy", reads)
        return which

    def _copy_rects(self, surf: Surface, attr: str, boxes: list[Box] | np.ndarray
                    ) -> moderngl.Texture:
        """Copies `boxes` (x0, y0, x1, y1 rows) of the surface into its scratch texture
        `attr` (same coordinates)."""
        tex, fbo = self._scratch(surf, attr)
        w, h = surf.width, surf.height
        rects = np.clip(np.asarray(boxes, np.int32).reshape(-1, 4), 0, (w, h, w, h))
        rects = rects[(rects[:, 0] < rects[:, 2]) & (rects[:, 1] < rects[:, 3])]
        for i in range(0, len(rects), MAX_BATCH):
            part = rects[i : i + MAX_BATCH]
            data = np.zeros((len(part), BLIT_INTS), np.int32)
            data[:, :4] = part
            data[:, 7] = BLIT_COPY
            fill_buffer(self._blit_buf, data.tobytes())
            self._blit_draw(1 << BLIT_COPY, surf.tex, surf, E.SURFACE_FMT_32_ARGB, len(part), fbo)
            self.draw_calls += 1
        return tex

    def _destroy(self, sid: int) -> None:
        self._settle_3d()
        surf = self._get_surface(sid)
        b = self._batch
        if b.target is surf or surf.tex in (b.src, b.pat):
            self.flush()
        self._release_surface(surf)

    def close(self) -> None:
        for variants in (self._blit_variants, self._draw_variants):
            for prog, vao in variants.values():
                vao.release()
                prog.release()
        for buf in (self._blit_buf, self._staging_buf, self._draw_buf):
            buf.release()
        super().close()


def resolve(src: Source | None, target: Surface) -> Any:
    """What a batch samples for a source or pattern: None, its texture, "staged" (the staging
    buffer) or "self" (the target itself: a copy taken before the draw)."""
    if src is None:
        return None
    if src.surface is target:
        return "self"
    return src.tex if src.tex is not None else "staged"


def fill_buffer(buf: moderngl.Buffer, data: bytes | bytearray | memoryview) -> None:
    """Replaces a buffer's content: large data in place when it fits (REFILL_IN_PLACE_BYTES),
    otherwise in fresh storage (orphaning: no wait for draws still reading the old one), sized
    to the data rounded up to 64 KiB so sizes repeat."""
    if not REFILL_IN_PLACE_BYTES <= len(data) <= buf.size:
        buf.orphan(max(len(data) + 0xFFFF & ~0xFFFF, 0x10000))
    buf.write(data)



def claim_cells(cells: dict[int, int], rects: list[Box]) -> bool:
    """Marks the OVERLAP_CELL cells the (disjoint) rects touch, unless one of them is marked
    already (then returns False and marks nothing): a conservative overlap test whose cost
    follows the rects' size, not the number of rects already in the batch."""
    spans = []
    for x0, y0, x1, y1 in rects:
        c0 = x0 >> OVERLAP_CELL_SHIFT
        bits = ((1 << (((x1 - 1) >> OVERLAP_CELL_SHIFT) - c0 + 1)) - 1) << c0
        rows = range(y0 >> OVERLAP_CELL_SHIFT, ((y1 - 1) >> OVERLAP_CELL_SHIFT) + 1)
        for row in rows:
            if cells.get(row, 0) & bits:
                return False
        spans.append((bits, rows))
    for bits, rows in spans:
        for row in rows:
            cells[row] = cells.get(row, 0) | bits
    return True

