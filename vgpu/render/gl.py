"""The OpenGL renderer: QXL surfaces as textures on one moderngl context, every 2D draw
operation, the image cache, damage, readback and published frames.

Semantics follow spice-common's software canvas (canvas_base.c, sw_canvas.c), which is what
spice-gtk shows. Pixels live in RGBA8 textures whose four channels are the surface's memory
bytes (see `vgpu.render.pixels`), rows top-down: texture row y is surface row y, so the
framebuffer's y axis needs no flipping and readback is in memory order.

Operations are queued, not drawn: consecutive operations of one kind on one target become one
instanced draw (`_Batch`). The guest pixels a batch needs (small bitmaps, masks, glyphs) are
appended to one staging buffer, uploaded once per draw call and read by the shaders by index.
Operations that read the destination read the framebuffer itself where the GL offers coherent
framebuffer fetch (llvmpipe and Mesa's GPU drivers do), and then batch whatever they touch;
elsewhere they copy the rects they touch to a scratch texture first and read that
(ping-pong), and batch only while their rects do not overlap. Everything an
operation needs is checked and decoded before anything is queued, so a bad operation raises
`RenderError` and leaves nothing half-done.
"""

from __future__ import annotations

import ctypes
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import moderngl
import numpy as np

from vgpu.device.backend import Gl3dGuest
from vgpu.device.commands import (
    AlphaBlend,
    BitmapImage,
    Blackness,
    Blend,
    Brush,
    Composite,
    Copy,
    CopyBits,
    Drawable,
    Fill,
    Image,
    Invers,
    Nop,
    Opaque,
    Palette,
    PatternBrush,
    QMask,
    QRect,
    Rop3,
    SolidBrush,
    Stroke,
    SurfaceImage,
    Text,
    Transparent,
    Whiteness,
)
from vgpu.display import Frame
from vgpu.render import enums as E
from vgpu.render import pixels as px
from vgpu.render import rops
from vgpu.render.cache import (
    IMAGE_CACHE_BYTES,
    SLOT_ATLAS_SIDE,
    CachedImage,
    ImageCache,
    SlotAtlas,
)
from vgpu.render.composite import ImageShape, composite_setup
from vgpu.render.errors import RenderError
from vgpu.render.gl3d import Gl3dExecutor
from vgpu.render.region import Box, check_rect, dest_region, intersect
from vgpu.render.stroke import stroke_mask

SHADER_DIR = Path(__file__).resolve().parents[2] / "shaders"

PRIMARY = 0

GL_REQUIRED = 430
"""OpenGL 4.3: the staging buffer is a shader storage buffer (std430). llvmpipe gives 4.5,
every desktop GPU driver of the last decade 4.3 or more."""


def _gl_flush() -> Callable[[], None]:
    """glFlush, which moderngl does not expose, from the GL library moderngl's EGL context
    dispatches through. Only a hint (work starts sooner); where the library cannot be found
    the GL starts at its next synchronising call instead."""
    for name in ("libGL.so.1", "libOpenGL.so.0"):
        try:
            return ctypes.CDLL(name).glFlush
        except (OSError, AttributeError):
            continue
    return lambda: None


def create_context() -> moderngl.Context:
    """A headless context (EGL) with what the renderer needs."""
    return moderngl.create_standalone_context(backend="egl", require=GL_REQUIRED)

MAX_SURFACES = 4096
"""Live surfaces at once: QXL's ROM offers 1024 surface ids by default (QEMU's n_surfaces);
room for larger configurations, while bounding what a guest can make us allocate."""

MAX_SURFACE_PIXELS = 256 << 20
"""Pixels of all live surfaces together (1 GiB of RGBA8, up to 3 GiB with the scratch copies a
surface may get): several 4K heads plus the off-screen surfaces a desktop keeps, while a guest
that asks for more cannot exhaust the host GPU's memory."""

MAX_SURFACE_ID = 1 << 20
"""Surface ids accepted: QXL ids index a table the device sizes, far below this."""

STAGE_MAX_IMAGE = 512
"""Uncached images up to this side are staged with the batch; larger ones are rare (window
contents) and get a texture of their own, where one upload per image is cheap next to its
pixels."""

MAX_BATCH = 2048
"""Instances per draw call: amortises a draw call's cost thousands of times, while each
submitted draw is flushed to the GL early enough that it draws while Python queues the next
batch (llvmpipe rasterizes on its own threads: 10x10 fills ran 1.7x faster than with 16384,
whose first draw left the GL idle until 16384 operations were queued)."""

MAX_STAGING_BYTES = 32 << 20
"""Guest bitmap bytes queued for one draw call's staging buffer before it flushes: a few
full screens of small copies, and a bound on the memory one batch holds."""

READ_MERGE_AREA = 2
READ_MERGE_COUNT = 8
"""Stale rects one read needs become a single read of their bounding box when that box is at
most READ_MERGE_AREA times their area, or when there are more than READ_MERGE_COUNT of them:
each GL read waits for the GL to finish, which costs more than the extra pixels."""

REFILL_IN_PLACE_BYTES = 1 << 20
"""Uploads from this size on go into a GL buffer's existing storage instead of orphaned fresh
storage: llvmpipe zeroes a new buffer and every 4 KiB of it page-faults (an 18 MiB batch of
copies spent as long on that as on drawing), which costs more than waiting for the draw that
last read the buffer. Smaller uploads orphan, so frequent small batches never wait."""

OVERLAP_CELL_SHIFT = 3
"""Without framebuffer fetch, a batch of destination-reading draws must not overlap itself;
overlap is tested on 8x8-pixel cells: small rects rarely share a cell by chance, and a
screen-sized rect marks at most a few hundred rows of bits."""

MAX_DAMAGE_RECTS = 64
"""Changed rects kept per surface (damage between snapshots, stale shadow, unsynced guest
memory) before they collapse into their bounding box: a read or write-back per rect costs a
GL round trip, so past this many one is cheaper."""

# blit.glsl i_kind values; a batch's `kinds` holds 1 << kind for each one it has
BLIT_FILL, BLIT_COPY, BLIT_STAGED, BLIT_GLYPH = 0, 1, 2, 3
_BLIT_INTS = 8  # int32 fields per blit instance (_BLIT_FMT)

# draw.glsl i_mode layout
KIND_ROP3, KIND_COLORKEY, KIND_COVERAGE, KIND_ALPHA = 0, 1, 2, 3
MODE_MASK = 1 << 12
MODE_PATTERN = 1 << 13
MODE_SRC_ALPHA = 1 << 14
MODE_DST_ALPHA = 1 << 15
MODE_BILINEAR = 1 << 16
MODE_SRC = 1 << 17
MODE_SRC_OPAQUE = 1 << 18

FRAMEBUFFER_FETCH = "GL_EXT_shader_framebuffer_fetch"

SourceMap = tuple[int, int, int, int]
"""(fx, fy, cx, cy): see `Renderer._src_map`."""
UNSCALED = (1 << 16, 1 << 16, 0x8000, 0x8000)

_FORMATS_32 = (E.SURFACE_FMT_32_xRGB, E.SURFACE_FMT_32_ARGB)
_FORMATS_32_BITMAP = (E.BITMAP_FMT_32BIT, E.BITMAP_FMT_RGBA)
_ALPHA_FORMATS = (E.SURFACE_FMT_32_ARGB, E.SURFACE_FMT_8_A, E.SURFACE_FMT_1_A)

_BLIT_FMT = ("4i 2i u u", ("i_rect", "i_off", "i_color", "i_kind"))
_DRAW_FMT = ("4i 4i 2i 4i u u", ("i_rect", "i_src", "i_stage", "i_aux", "i_color", "i_mode"))
_DRAW_INTS = 16  # 32-bit fields per draw instance (_DRAW_FMT)


def load_program(ctx: moderngl.Context, name: str, **defines: int) -> moderngl.Program:
    """shaders/<name>.glsl holds both stages; `#include "x"` pulls in shaders/x; `defines`
    become #defines (variants of one program)."""
    text = (SHADER_DIR / f"{name}.glsl").read_text()
    head = "#version 330 core\n"
    if text.startswith("#version"):  # a program that needs more than GL 3.3 says so
        head, text = text.split("\n", 1)
        head += "\n"
    head += "".join(f"#define {k} {v}\n" for k, v in defines.items())
    text = re.sub(r'#include "([\w.]+)"', lambda m: (SHADER_DIR / m.group(1)).read_text(), text)
    return ctx.program(vertex_shader=head + "#define VERTEX\n" + text,
                       fragment_shader=head + "#define FRAGMENT\n" + text)


@dataclass(slots=True, eq=False)
class _Surface:
    id: int
    width: int
    height: int
    fmt: int
    tex: moderngl.Texture
    fbo: moderngl.Framebuffer
    scratch: tuple[moderngl.Texture, moderngl.Framebuffer] | None = None
    self_copy: tuple[moderngl.Texture, moderngl.Framebuffer] | None = None
    # host copy of the pixels, made at the first read; `stale` lists what changed since
    shadow: np.ndarray | None = None
    stale: list[Box] = field(default_factory=list)
    # what guest memory lacks: drawn since the last UPDATE_AREA write-back covering it
    unsynced: list[Box] = field(default_factory=list)

    def changed(self, boxes: list[Box] | tuple[Box, ...],
                in_shadow: tuple[Box, ...] = ()) -> None:
        """`in_shadow`: boxes of `boxes` written into the shadow as well (a 3D present by
        copy): not stale there any more."""
        self.unsynced = _add_rects(self.unsynced, boxes)
        if self.shadow is not None:
            self.stale = _add_rects(self.stale, [b for b in boxes if b not in in_shadow])
            for hole in in_shadow:
                self.stale = [part for r in self.stale for part in _subtract(r, hole)]

    def framebuffers(self) -> list[moderngl.Framebuffer]:
        return [self.fbo] + [pair[1] for pair in (self.scratch, self.self_copy) if pair]

    def release(self) -> None:
        for pair in (self.scratch, self.self_copy):
            if pair is not None:
                pair[1].release()
                pair[0].release()
        self.fbo.release()
        self.tex.release()


@dataclass(slots=True)
class _Source:
    """Where an operation's source (or pattern) pixels are: a texture, or staged pixels
    (`staged` = (first pixel index, pixels per row) in the staging buffer, valid until the
    batch flushes)."""

    tex: Any  # moderngl.Texture, or None when staged or the target itself
    width: int
    height: int
    has_alpha: bool
    surface: _Surface | None = None
    staged: tuple[int, int] | None = None
    x: int = 0  # the image's place inside `tex` (cached images share one texture)
    y: int = 0


class _StagingFull(Exception):
    """The staging buffer has no room left for an operation's pixels: draw, empty, retry."""


class _Batch:
    """The queued instances of one draw call and the state they share."""

    __slots__ = ("cells", "data", "extra", "kind", "kinds", "pat", "reads", "src",
                 "stage_start", "target")

    def __init__(self) -> None:
        self.kind: str | None = None
        self.extra: tuple[Any, ...] = ()
        self.data: list[Any] = []
        self.reads: list[Box] = []  # what a batch reading its own target reads of it
        # without framebuffer fetch: the OVERLAP_CELL cells its rects touch (row -> bit mask)
        self.cells: dict[int, int] = {}
        self.target: _Surface | None = None
        self.src: Any = None
        self.pat: Any = None
        # blit: 1 << BLIT_*; draw: 1 << KIND_*, and 256 when an instance has a mask
        self.kinds = 0
        self.stage_start = 0  # the first staging byte its instances refer to


class Renderer:
    """Implements `vgpu.device.backend.DisplayBackend` on one moderngl context; see the module
    docstring. Not thread-safe: one render thread calls everything."""

    def __init__(self, ctx: moderngl.Context | None = None, *,
                 cache_bytes: int = IMAGE_CACHE_BYTES,
                 framebuffer_fetch: bool | None = None) -> None:
        """framebuffer_fetch: read the destination in the shader (None: where the GL offers
        it; False: always through scratch copies, the path for GLs without it)."""
        self.ctx = ctx or create_context()
        if self.ctx.version_code < GL_REQUIRED:
            raise RuntimeError(f"the renderer needs OpenGL {GL_REQUIRED / 100:.1f}, the context "
                               f"has {self.ctx.version_code / 100:.1f}")
        self._owns_ctx = ctx is None
        self._gl_flush = _gl_flush()
        offered = FRAMEBUFFER_FETCH in self.ctx.extensions
        if framebuffer_fetch and not offered:
            raise RuntimeError(f"this GL does not offer {FRAMEBUFFER_FETCH}")
        self.fetch = offered if framebuffer_fetch is None else framebuffer_fetch
        self.ctx.disable(moderngl.BLEND | moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        self._blit_variants: dict[tuple[int, int], tuple[moderngl.Program,
                                                         moderngl.VertexArray]] = {}
        self._draw_variants: dict[tuple[int, ...], tuple[moderngl.Program,
                                                         moderngl.VertexArray]] = {}
        self._corners = self.ctx.buffer(np.array([0, 0, 1, 0, 0, 1, 1, 1], "f4").tobytes())
        self._blit_buf = self.ctx.buffer(reserve=MAX_BATCH * _BLIT_INTS * 4, dynamic=True)
        # guest bitmap rows of the blit batch (kind 2), written at _staged, allocated once:
        # appending to a growing bytearray would copy it over and over
        self._staging = bytearray(MAX_STAGING_BYTES)
        self._staged = 0
        self._op_stage_start = 0
        self._staging_buf = self.ctx.buffer(reserve=4096, dynamic=True)
        self._draw_buf = self.ctx.buffer(reserve=MAX_BATCH * _DRAW_INTS * 4, dynamic=True)
        self._comp_variants: dict[tuple[int, ...],
                                  tuple[moderngl.Program, moderngl.VertexArray]] = {}
        self._dummy = self.ctx.texture((1, 1), 4, b"\0\0\0\0")
        # the default framebuffer (name 0, never freed), bound instead of a surface's that is
        # being freed: moderngl binds its last framebuffer again after making a new one, and
        # a freed name is a GL error, in this renderer or the next one on the context
        self._parking = self.ctx.detect_framebuffer(0)
        self._pending_release: list[Any] = []  # textures to free once the batch has drawn
        self._op_textures: list[Any] = []  # made or evicted by the operation being queued
        self.cache = ImageCache(cache_bytes, self._cache_release)
        self._slots = SlotAtlas()
        self._cache_tex: moderngl.Texture | None = None  # small cached images, made on demand
        self._surfaces: dict[int, _Surface] = {}
        self._batch = _Batch()
        self._handlers: dict[type, Callable[..., list[Box]]] = {
            Fill: self._fill, Opaque: self._opaque, Copy: self._copy, Blend: self._blend,
            Blackness: self._const_fill, Whiteness: self._const_fill, Invers: self._const_fill,
            Rop3: self._rop3, Stroke: self._stroke, Text: self._text,
            Transparent: self._transparent, AlphaBlend: self._alpha_blend,
            Composite: self._composite, CopyBits: self._copy_bits,
        }
        self.draw_calls = 0
        self.last_damage: tuple[Box, ...] = ()
        """The rects (x0, y0, x1, y1) the last `execute` changed on its target surface."""
        self._damage: list[Box] = []  # primary damage since the last snapshot
        self._frame_serial = 0
        self._surface_serial = 0
        self.gl3d: Gl3dExecutor | None = None  # made at the first 3D batch

    def _vao(self, prog: moderngl.Program, buf: moderngl.Buffer,
             fmt: tuple[str, tuple[str, ...]]) -> moderngl.VertexArray:
        """Instance attributes a program variant does not use are skipped as padding."""
        parts, names = [], []
        for part, name in zip(fmt[0].split(), fmt[1], strict=True):
            if name in prog:
                parts.append(part)
                names.append(name)
            else:
                count = int(part[:-1]) if part[:-1] else 1
                parts.append(f"{count * 4}x")
        return self.ctx.vertex_array(
            prog, [(self._corners, "2f", "corner"), (buf, " ".join(parts) + " /i", *names)],
            mode=moderngl.TRIANGLE_STRIP)

    # --- DisplayBackend --------------------------------------------------------------

    def create_primary(self, width: int, height: int, stride: int, format: int,
                       initial: np.ndarray | None) -> None:
        self._create(PRIMARY, width, height, stride, format, initial)
        self._surface_serial += 1
        self._damage = [(0, 0, width, height)]

    def destroy_primary(self) -> None:
        self._destroy(PRIMARY)
        self._damage = []

    def surface_created(self, surface_id: int, width: int, height: int, stride: int,
                        format: int, initial: np.ndarray | None) -> None:
        if surface_id == PRIMARY:
            raise RenderError("surface 0 is the primary; use create_primary")
        self._create(surface_id, width, height, stride, format, initial)

    def surface_destroyed(self, surface_id: int) -> None:
        if surface_id == PRIMARY:
            raise RenderError("surface 0 is the primary; use destroy_primary")
        self._destroy(surface_id)

    def execute(self, cmd: Drawable) -> None:
        if self._batch.kind is None:
            self._staged = 0  # nothing queued refers to staged bytes any more
        self._op_stage_start = self._staged
        op = cmd.op
        if cmd.clip is None and (type(op) is Fill or type(op) is Copy) and self._fast(cmd, op):
            return
        surf = self._get_surface(cmd.surface_id)
        if type(op) is Nop:  # draws nothing, whatever its bbox says
            self.last_damage = ()
            return
        bbox = check_rect(cmd.bbox, "bbox")
        handler = self._handlers.get(type(op))
        if handler is None:
            raise RenderError(f"unknown draw operation {type(cmd.op).__name__}")
        rects = dest_region(bbox, cmd.clip, surf.width, surf.height)
        damage: list[Box] = []
        try:
            if rects:
                try:
                    damage = handler(surf, bbox, rects, op)
                except _StagingFull:
                    # nothing of this operation was queued yet: draw, empty, redo
                    self.flush()
                    self._staged = self._op_stage_start = 0
                    try:
                        damage = handler(surf, bbox, rects, op)
                    except _StagingFull:
                        raise RenderError("operation's pixels exceed the staging buffer") \
                            from None
        finally:
            # textures this operation made are freed after the batch that samples them
            self._pending_release.extend(self._op_textures)
            self._op_textures.clear()
        self._note_damage(surf, tuple(damage))

    def execute_3d(self, batch: bytes, guest: Gl3dGuest) -> None:
        """Runs one batch of the 3D ring (docs/3d-ring.md) on `Gl3dExecutor`. Faults inside
        the batch stay with their context."""
        if self.gl3d is None:
            self.gl3d = Gl3dExecutor(self)
        self.gl3d.execute(batch, guest)

    def _note_damage(self, surf: _Surface, boxes: tuple[Box, ...],
                     in_shadow: tuple[Box, ...] = ()) -> None:
        """Records what an operation changed: `last_damage`, the surface's stale rects (but
        for `in_shadow`, written into the host shadow too) and, on the primary, the damage
        the next snapshot reports."""
        self.last_damage = boxes
        if not boxes:
            return
        surf.changed(boxes, in_shadow)
        if surf.id == PRIMARY:
            self._damage = _add_rects(self._damage, boxes)

    def _fast(self, cmd: Drawable, op: Fill | Copy) -> bool:
        """The common case without the general machinery: an unclipped, unmasked solid fill,
        or plain copy of an image already in the cache or of an uncached 32-bit top-down
        bitmap, onto a 32-bit surface. Checks the same things; returns False (having done
        nothing) for anything else."""
        if op.mask.bitmap is not None or op.rop_descriptor != E.ROPD_OP_PUT:
            return False
        surf = self._surfaces.get(cmd.surface_id)
        if surf is None or surf.fmt not in _FORMATS_32:
            return False
        top, left, bottom, right = cmd.bbox
        if not (0 <= left < right <= surf.width and 0 <= top < bottom <= surf.height):
            return False
        b = self._batch
        same = (b.kind == "blit" and b.target is surf and b.src != "self"
                and len(b.data) < MAX_BATCH * _BLIT_INTS)
        if type(op) is Fill:
            brush = op.brush
            if type(brush) is not SolidBrush:
                return False
            if not same:
                b = self._begin("blit", surf, None, None)
            b.data += (left, top, right, bottom, 0, 0, brush.color & 0xFFFFFFFF, BLIT_FILL)
            b.kinds |= 1 << BLIT_FILL
        else:
            img = op.src_bitmap
            area = op.src_area
            if type(img) is not BitmapImage or img.descriptor.type != E.IMAGE_TYPE_BITMAP:
                return False
            w, h = img.width, img.height
            if (area.bottom - area.top != bottom - top or area.right - area.left != right - left
                    or not (area.left >= 0 and area.right <= w and area.top >= 0
                            and area.bottom <= h)):
                return False
            if img.descriptor.flags & E.QXL_IMAGE_CACHE:
                hit = self.cache.get(_cache_key(img.descriptor.id, img.palette, img.format))
                if hit is None or hit.width != w or hit.height != h:
                    return False  # the general path decodes and keeps it
                tex = hit.texture
                if not same or b.src not in (None, tex):
                    b = self._begin("blit", surf, _Source(tex, w, h, hit.has_alpha), None)
                b.src = tex
                b.data += (left, top, right, bottom, hit.x + area.left - left,
                           hit.y + area.top - top, 0, BLIT_COPY)
                b.kinds |= 1 << BLIT_COPY
                self._note_damage(surf, ((left, top, right, bottom),))
                return True
            stride = img.stride
            if (img.format not in _FORMATS_32_BITMAP or not img.top_down or stride < w * 4
                    or stride & 3 or w > px.MAX_DIM or h > px.MAX_DIM
                    or len(img.data) < h * stride):
                return False
            size = h * stride
            if size > MAX_STAGING_BYTES:
                return False
            if self._staged + size > MAX_STAGING_BYTES:
                self.flush()
                self._staged = self._op_stage_start = 0
                same = False
            if not same:
                b = self._begin("blit", surf, None, None)
            pos = self._staged
            self._staging[pos : pos + size] = img.data if len(img.data) == size \
                else memoryview(img.data)[:size]
            self._staged = pos + size
            base = pos >> 2
            sp = stride >> 2
            b.data += (left, top, right, bottom,
                       base + (area.top - top) * sp + (area.left - left), sp, 0, BLIT_STAGED)
            b.kinds |= 1 << BLIT_STAGED
        self._note_damage(surf, ((left, top, right, bottom),))
        return True

    def read_area(self, surface_id: int, area: QRect) -> list[tuple[QRect, np.ndarray]]:
        """The parts of `area` drawn since guest memory last got them (see the protocol)."""
        surf = self._get_surface(surface_id)
        x0, y0, x1, y1 = check_rect(area, "update area")
        box = intersect((x0, y0, x1, y1), (0, 0, surf.width, surf.height))
        if box != (x0, y0, x1, y1):
            raise RenderError(f"update area {tuple(area)} outside surface {surface_id}")
        inside, outside = [], []
        for r in surf.unsynced:
            part = intersect(r, box)
            if part is None:
                outside.append(r)
            else:
                inside.append(part)
                outside.extend(_subtract(r, box))
        # (parts close together go as their bounding box, with pixels memory holds already)
        pieces = [(QRect(r[1], r[0], r[3], r[2]), px.to_memory(self._read(surf, r), surf.fmt))
                  for r in _merge_reads(inside)]
        surf.unsynced = _add_rects([], outside)  # only once they are read back
        return pieces

    def reset(self) -> None:
        self._drop_batch()
        for sid in list(self._surfaces):
            self._destroy(sid)
        self.cache.clear()
        self._pending_release.extend(self._op_textures)
        self._op_textures.clear()
        self._drop_batch()  # frees the cache's textures
        if self._cache_tex is not None:
            self._cache_tex.release()
            self._cache_tex = None
        self._slots = SlotAtlas()
        self._damage = []

    def reset_3d(self) -> None:
        if self.gl3d is not None:
            self.gl3d.reset()

    # --- beyond the protocol ----------------------------------------------------------

    def surface_ids(self) -> list[int]:
        return sorted(self._surfaces)

    def read_pixels(self, surface_id: int, box: Box | None = None) -> np.ndarray:
        """A surface's rendered pixels as (h, w, 4) uint8 channels (B, G, R, A), top-down."""
        surf = self._get_surface(surface_id)
        box = box or (0, 0, surf.width, surf.height)
        if intersect(box, (0, 0, surf.width, surf.height)) != box:
            raise RenderError("read outside the surface")
        return self._read(surf, box).copy()

    def snapshot(self) -> Frame | None:
        """The primary as a new immutable Frame with the damage since the previous snapshot,
        or None when nothing changed (or there is no primary). Reads back only the damage."""
        surf = self._surfaces.get(PRIMARY)
        if surf is None or not self._damage:
            return None
        pixels = self._read(surf, (0, 0, surf.width, surf.height)).copy()
        damage = tuple(self._damage)
        self._damage = []
        pixels.setflags(write=False)
        self._frame_serial += 1
        return Frame(self._frame_serial, self._surface_serial, pixels, damage,
                     has_alpha=surf.fmt == E.SURFACE_FMT_32_ARGB)

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

    def close(self) -> None:
        """Frees every GL object (and the context if this renderer made it)."""
        self.reset()
        if self.gl3d is not None:
            self.gl3d.close()
            self.gl3d = None
        for prog, vao in self._blit_variants.values():
            vao.release()
            prog.release()
        for variants in (self._draw_variants, self._comp_variants):
            for prog, vao in variants.values():
                vao.release()
                prog.release()
        for obj in (self._blit_buf, self._staging_buf, self._draw_buf, self._corners,
                    self._dummy):
            obj.release()
        if self._owns_ctx:
            self.ctx.release()

    # --- surfaces ----------------------------------------------------------------------

    def _create(self, sid: int, width: int, height: int, stride: int, fmt: int,
                initial: np.ndarray | None) -> None:
        if not 0 <= sid < MAX_SURFACE_ID:
            raise RenderError(f"surface id {sid} out of range")
        if sid in self._surfaces:
            raise RenderError(f"surface {sid} exists already")
        if len(self._surfaces) >= MAX_SURFACES:
            raise RenderError("too many surfaces")
        px.check_surface_format(fmt)
        px.check_size(width, height, "surface")
        if abs(stride) < (width * px.SURFACE_BPP[fmt] + 7) // 8:
            raise RenderError(f"surface stride {stride} too small for width {width}")
        used = sum(s.width * s.height for s in self._surfaces.values())
        if used + width * height > MAX_SURFACE_PIXELS:
            raise RenderError(f"surfaces would exceed {MAX_SURFACE_PIXELS} pixels")
        data = None
        if initial is not None:
            data = px.from_memory(np.asarray(initial), fmt, width, height)
            px.quantize(data, fmt)
        try:
            tex = self.ctx.texture((width, height), 4,
                                   data.tobytes() if data is not None else None)
        except moderngl.Error as e:  # the GL is out of memory: the guest asked too much
            raise RenderError(f"cannot allocate a {width}x{height} surface: {e}") from None
        tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        fbo = self.ctx.framebuffer(color_attachments=[tex])
        if data is None:
            fbo.clear(0.0, 0.0, 0.0, 0.0 if fmt != E.SURFACE_FMT_16_555
                      and fmt != E.SURFACE_FMT_16_565 else 1.0)
        # guest memory holds the initial content, or anything but these zeros
        self._surfaces[sid] = _Surface(sid, width, height, fmt, tex, fbo, unsynced=[] if
                                       data is not None else [(0, 0, width, height)])

    def _destroy(self, sid: int) -> None:
        surf = self._get_surface(sid)
        b = self._batch
        if b.target is surf or surf.tex in (b.src, b.pat):
            self.flush()
        del self._surfaces[sid]
        if self.ctx.fbo in surf.framebuffers():
            self._parking.use()
        surf.release()

    def _get_surface(self, sid: int) -> _Surface:
        surf = self._surfaces.get(sid)
        if surf is None:
            raise RenderError(f"surface {sid} does not exist")
        return surf

    def _read(self, surf: _Surface, box: Box) -> np.ndarray:
        """`box` of the surface's pixels: a read-only view of its host shadow, valid until
        the next operation (copy what you keep). Reads back from GL only what changed since
        the last read (the shadow keeps the rest)."""
        self.flush()
        if surf.shadow is None:
            surf.shadow = self._read_now(surf, (0, 0, surf.width, surf.height)).copy()
            surf.stale = []
        elif surf.stale:
            keep, hit = [], []
            for r in surf.stale:
                (hit if intersect(r, box) is not None else keep).append(r)
            for r in _merge_reads(hit):
                surf.shadow[r[1] : r[3], r[0] : r[2]] = self._read_now(surf, r)
            surf.stale = keep
        x0, y0, x1, y1 = box
        view = surf.shadow[y0:y1, x0:x1]
        view.flags.writeable = False
        return view

    def _read_now(self, surf: _Surface, box: Box) -> np.ndarray:
        x0, y0, x1, y1 = box
        if self.gl3d is not None:
            # 3D work (a guest's shader, as long as it likes) may be queued: wait for it
            # with the interpreter lock released; moderngl's read would keep it
            self.gl3d.wait_gl()
        data = surf.fbo.read(viewport=(x0, y0, x1 - x0, y1 - y0), components=4)
        return np.frombuffer(data, np.uint8).reshape(y1 - y0, x1 - x0, 4)

    def _scratch(self, surf: _Surface, attr: str
                 ) -> tuple[moderngl.Texture, moderngl.Framebuffer]:
        """The surface's scratch texture `attr` ("scratch" or "self_copy"), made on demand."""
        pair = getattr(surf, attr)
        if pair is None:
            tex = self.ctx.texture((surf.width, surf.height), 4)
            tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
            pair = (tex, self.ctx.framebuffer(color_attachments=[tex]))
            setattr(surf, attr, pair)
        return pair

    # --- images --------------------------------------------------------------------------

    def _image(self, image: Image, target: _Surface, *, own_texture: bool = False) -> _Source:
        """Checks and decodes an image into something the GL path can sample. Bitmaps go into
        the staging buffer (small, uncached), the cache (QXL_IMAGE_CACHE) or a texture."""
        if isinstance(image, SurfaceImage):
            src = self._get_surface(image.surface_id)
            tex = src.tex
            if src is target:
                tex = None  # resolved at queue time: a copy taken before the draw
            return _Source(tex, src.width, src.height, src.fmt in _ALPHA_FORMATS, surface=src)
        if not isinstance(image, BitmapImage):
            d = image.descriptor
            if d.flags & E.QXL_IMAGE_CACHE and not own_texture:
                # a hit needs no decoding: its key comes from the stream's header
                hit = self._cached(_cache_key(d.id, None, px.quic_format(image)), d.width,
                                   d.height)
                if hit is not None:
                    return hit
            image = px.quic_bitmap(image)  # the bitmap it stands for; RenderError if none
        if image.descriptor.type != E.IMAGE_TYPE_BITMAP:
            raise RenderError(f"bitmap with image type {image.descriptor.type}")
        # own_texture (patterns, filtered scaling) wants a texture of exactly the image, which
        # a cached image in the shared texture is not: those decode afresh
        cache = bool(image.descriptor.flags & E.QXL_IMAGE_CACHE) and not own_texture
        key = _cache_key(image.descriptor.id, image.palette, image.format)
        if cache:
            hit = self._cached(key, image.width, image.height)
            if hit is not None:
                return hit
        w, h, stride = image.width, image.height, image.stride
        if (not cache and not own_texture and image.format in _FORMATS_32_BITMAP
                and 0 < w <= STAGE_MAX_IMAGE and 0 < h <= STAGE_MAX_IMAGE
                and stride >= w * 4 and not stride & 3 and len(image.data) >= h * stride
                and h * stride <= MAX_STAGING_BYTES // 2):
            # 32-bit pixels are used as they are: stage the guest's rows without decoding
            size = h * stride
            base = self._stage(image.data if len(image.data) == size
                               else memoryview(image.data)[:size]) >> 2
            sp = stride >> 2
            staged = (base, sp) if image.top_down else (base + (h - 1) * sp, -sp)
            return _Source(None, w, h, image.format == E.BITMAP_FMT_RGBA, staged=staged)
        data, has_alpha = px.decode_bitmap(image)
        h, w = data.shape[:2]
        if cache:
            return self._cache_put(key, np.ascontiguousarray(data), has_alpha)
        if (own_texture or w > STAGE_MAX_IMAGE or h > STAGE_MAX_IMAGE
                or data.nbytes > MAX_STAGING_BYTES // 2):
            tex = self.ctx.texture((w, h), 4, np.ascontiguousarray(data).tobytes())
            tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
            self._op_textures.append(tex)
            return _Source(tex, w, h, has_alpha)
        base = self._stage(np.ascontiguousarray(data))
        return _Source(None, w, h, has_alpha, staged=(base >> 2, w))

    def _cached(self, key: Any, width: int, height: int) -> _Source | None:
        """The cache's image under `key`, if it has this size (a guest may reuse an id)."""
        hit = self.cache.get(key)
        if hit is None or (hit.width, hit.height) != (width, height):
            return None
        return _Source(hit.texture, hit.width, hit.height, hit.has_alpha, x=hit.x, y=hit.y)

    def _cache_put(self, key: Any, data: np.ndarray, has_alpha: bool) -> _Source:
        """Keeps a decoded image: small ones in a slot of the shared texture (evicting the
        least recently used images while no slot is free), larger ones in a texture each."""
        h, w = data.shape[:2]
        cls = SlotAtlas.size_class(w, h)
        at = None
        if cls is not None:
            at = self._slots.alloc(cls)
            while at is None and self.cache.evict_oldest():
                at = self._slots.alloc(cls)
        if at is None or cls is None:
            tex = self.ctx.texture((w, h), 4, data.tobytes())
            tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
            self.cache.put(key, CachedImage(tex, 0, 0, w, h, has_alpha))
            return _Source(tex, w, h, has_alpha)
        if self._cache_tex is None:
            self._cache_tex = self.ctx.texture((SLOT_ATLAS_SIDE, SLOT_ATLAS_SIDE), 4)
            self._cache_tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        tex = self._cache_tex
        if tex in (self._batch.src, self._batch.pat):
            self.flush()  # the slot may have held what a queued draw still samples
        tex.write(data, viewport=(at[0], at[1], w, h))
        self.cache.put(key, CachedImage(tex, at[0], at[1], w, h, has_alpha, slot=(cls, at)))
        return _Source(tex, w, h, has_alpha, x=at[0], y=at[1])

    def _cache_release(self, entry: CachedImage) -> None:
        if entry.slot is not None:
            self._slots.free(*entry.slot)  # rewritten only after a flush (see _cache_put)
        else:
            self._op_textures.append(entry.texture)  # freed after the batch that samples it

    def _stage(self, data: Any) -> int:
        """Appends bytes to the staging buffer at a 4-byte boundary; returns their offset."""
        view = memoryview(data).cast("B")
        pos = self._staged  # kept 4-aligned: pixels are read as 32-bit words
        end = pos + len(view)
        if end > MAX_STAGING_BYTES:
            raise _StagingFull
        self._staging[pos:end] = view
        self._staged = (end + 3) & ~3
        return pos

    def _stage_mask(self, mask: np.ndarray, box: Box) -> tuple[int, int]:
        """A bool/coverage (h, w) array covering `box` into the staging buffer; returns (a, s)
        such that the byte of destination pixel (x, y) is at a + y * s + x."""
        w = mask.shape[1]
        data = mask if mask.dtype == np.uint8 else mask.astype(np.uint8) * np.uint8(255)
        base = self._stage(np.ascontiguousarray(data))
        return base - box[1] * w - box[0], w

    def _qmask(self, mask: QMask, bbox: Box, rects: list[Box]
               ) -> tuple[list[Box], np.ndarray | None]:
        """The rects limited to a QMask's extent, and the mask over their bounding box (None
        when there is no mask). The software canvas turns the mask into a region."""
        if mask.bitmap is None:
            return rects, None
        invert = bool(mask.flags & E.MASK_FLAGS_INVERS)
        if isinstance(mask.bitmap, SurfaceImage):
            ms = self._get_surface(mask.bitmap.surface_id)
            bits = self._read(ms, (0, 0, ms.width, ms.height))[..., 3] >= 128
            bits = ~bits if invert else bits
        elif isinstance(mask.bitmap, BitmapImage):
            bits = px.decode_mask(mask.bitmap, invert)
        else:
            raise RenderError("mask image type not supported")
        ox, oy = bbox[0] - mask.pos.x, bbox[1] - mask.pos.y
        ext = (ox, oy, ox + bits.shape[1], oy + bits.shape[0])
        clipped = [r for r in (intersect(r, ext) for r in rects) if r is not None]
        if not clipped:
            return [], None
        bx0, by0, bx1, by1 = _bounds(clipped)
        return clipped, bits[by0 - oy : by1 - oy, bx0 - ox : bx1 - ox]

    def _brush(self, brush: Brush, target: _Surface) -> tuple[int, _Source | None]:
        """(packed colour in the target's channel form, pattern source or None)."""
        if brush is None:
            return 0, None
        if isinstance(brush, SolidBrush):
            return _pack(px.color_to_pixel(brush.color, target.fmt)), None
        if isinstance(brush, PatternBrush):
            # patterns tile by texel wrap-around, so they need a texture of their own size
            return 0, self._image(brush.pat, target, own_texture=True)
        raise RenderError("unknown brush type")

    # --- queueing --------------------------------------------------------------------------

    def _begin(self, kind: str, target: _Surface, src: _Source | None, pat: _Source | None,
               extra: tuple[Any, ...] = ()) -> _Batch:
        """The batch to append to: the current one if this operation can share its draw call
        (same program, target and settings; a source or pattern it lacks it may bring), else
        a new one after flushing."""
        src_tex = self._resolve(src, target)
        pat_tex = self._resolve(pat, target)
        b = self._batch
        limit = MAX_BATCH * (_BLIT_INTS if kind == "blit" else _DRAW_INTS)
        if (b.kind == kind and b.target is target and b.extra == extra and len(b.data) < limit
                and "self" not in (src_tex, pat_tex, b.src, b.pat)
                and (src_tex is None or b.src is None or b.src is src_tex)
                and (pat_tex is None or b.pat is None or b.pat is pat_tex)):
            if b.src is None and src is not None:
                b.src = src_tex
            if b.pat is None:
                b.pat = pat_tex
            return b
        self.flush()
        b = self._batch
        b.kind, b.target, b.src, b.pat, b.extra = kind, target, src_tex, pat_tex, extra
        b.stage_start = self._op_stage_start
        return b

    def _resolve(self, src: _Source | None, target: _Surface) -> Any:
        if src is None:
            return None
        if src.surface is not None and src.surface is target:
            return "self"
        return src.tex if src.tex is not None else "staged"

    def _queue_fill(self, target: _Surface, rects: list[Box], color: int) -> None:
        b = self._begin("blit", target, None, None)
        b.kinds |= 1 << BLIT_FILL
        for x0, y0, x1, y1 in rects:
            b.data += (x0, y0, x1, y1, 0, 0, color, BLIT_FILL)

    def _queue_copy(self, target: _Surface, rects: list[Box], src: _Source, dx: int,
                    dy: int) -> None:
        """Copies source texel (x - dx, y - dy) of the image to each destination pixel."""
        src_tex = self._resolve(src, target)
        b = self._begin("blit", target, src, None)  # a self-read always starts a batch
        if src_tex == "self":
            b.reads.extend((x0 - dx, y0 - dy, x1 - dx, y1 - dy) for x0, y0, x1, y1 in rects)
        if src.staged is not None:
            base, stride = src.staged
            b.kinds |= 1 << BLIT_STAGED
            for x0, y0, x1, y1 in rects:
                b.data += (x0, y0, x1, y1, base - dy * stride - dx, stride, 0, BLIT_STAGED)
        else:
            b.kinds |= 1 << BLIT_COPY
            for x0, y0, x1, y1 in rects:
                b.data += (x0, y0, x1, y1, src.x - dx, src.y - dy, 0, BLIT_COPY)
        if src_tex == "self":
            self.flush()

    def _queue_draw(self, target: _Surface, rects: list[Box], mode: int, *,
                    src: _Source | None = None, src_map: SourceMap = UNSCALED,
                    pat: _Source | None = None, color: int = 0,
                    aux: tuple[int, int] = (0, 0), pat_pos: tuple[int, int] = (0, 0),
                    src_reads: list[Box] | None = None) -> None:
        """Queues a destination-reading draw over `rects` (disjoint). src_map: see
        `_src_map`; aux: (a, s) from _stage_mask for the mask/coverage."""
        if src is not None:
            mode |= MODE_SRC
        if pat is not None:
            mode |= MODE_PATTERN
        bilinear = bool(mode & MODE_BILINEAR)
        src_self = self._resolve(src, target) == "self"
        pat_self = self._resolve(pat, target) == "self"
        b = self._begin("draw", target, src, pat, (bilinear,))
        if not self.fetch and not _claim(b.cells, rects):
            self.flush()
            b = self._begin("draw", target, src, pat, (bilinear,))
            _claim(b.cells, rects)
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
        self._batch = _Batch()
        for tex in self._pending_release:
            tex.release()
        self._pending_release.clear()

    def _submit(self, b: _Batch) -> None:
        target = b.target
        assert target is not None
        if self._staged > b.stage_start:
            _fill_buffer(self._staging_buf,
                         memoryview(self._staging)[b.stage_start : self._staged])
            self._staging_buf.bind_to_storage_buffer(0)
        src = self._sample_tex(b.src, target, b.reads)
        pat = self._sample_tex(b.pat, target, b.reads)
        # fields are 32-bit words; colours and modes above 2**31 keep their bits
        data = np.array(b.data, np.int64).astype(np.int32)
        if b.kind == "blit":
            n = len(data) // _BLIT_INTS
            _fill_buffer(self._blit_buf, data.tobytes())
            self._blit_draw(b.kinds, src, target, target.fmt, n, stage_base=b.stage_start)
            self.draw_calls += 1
            return
        data = data.reshape(-1, _DRAW_INTS)
        n = len(data)
        if not self.fetch:
            self._copy_rects(target, "scratch", data[:, :4]).use(0)
        _fill_buffer(self._draw_buf, data.tobytes())
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

    def _blit_draw(self, kinds: int, src: moderngl.Texture, target: _Surface, fmt: int, n: int,
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

    def _sample_tex(self, which: Any, target: _Surface, reads: list[Box]) -> moderngl.Texture:
        """The texture to bind for a batch's source or pattern (`_resolve`'s value); when
        that is the target itself, a copy of the `reads` rects taken before drawing."""
        if which is None or which == "staged":
            return self._dummy
        if which == "self":
            return self._copy_rects(target, "self_copy", reads)
        return which

    def _copy_rects(self, surf: _Surface, attr: str, boxes: list[Box] | np.ndarray
                    ) -> moderngl.Texture:
        """Copies `boxes` (x0, y0, x1, y1 rows) of the surface into its scratch texture
        `attr` (same coordinates)."""
        tex, fbo = self._scratch(surf, attr)
        w, h = surf.width, surf.height
        rects = np.clip(np.asarray(boxes, np.int32).reshape(-1, 4), 0, (w, h, w, h))
        rects = rects[(rects[:, 0] < rects[:, 2]) & (rects[:, 1] < rects[:, 3])]
        for i in range(0, len(rects), MAX_BATCH):
            part = rects[i : i + MAX_BATCH]
            data = np.zeros((len(part), _BLIT_INTS), np.int32)
            data[:, :4] = part
            data[:, 7] = BLIT_COPY
            _fill_buffer(self._blit_buf, data.tobytes())
            self._blit_draw(1 << BLIT_COPY, surf.tex, surf, E.SURFACE_FMT_32_ARGB, len(part), fbo)
            self.draw_calls += 1
        return tex

    # --- operations -------------------------------------------------------------------------

    def _fill(self, surf: _Surface, bbox: Box, rects: list[Box], op: Fill) -> list[Box]:
        code = rops.brush_dest_rop3(op.rop_descriptor)
        color, pat = self._brush(op.brush, surf)
        rects, mask = self._qmask(op.mask, bbox, rects)
        if code == rops.ROP3_NOOP or not rects:
            return []
        self._brush_rop(surf, rects, code, color, pat, mask, op.brush)
        return rects

    def _brush_rop(self, surf: _Surface, rects: list[Box], code: int, color: int,
                   pat: _Source | None, mask: np.ndarray | None, brush: Brush) -> None:
        """The brush (solid colour or pattern) combined with the destination by ROP3 `code`
        over `rects`, through an optional mask covering their bounding box."""
        if mask is None and pat is None and code in (rops.ROP3_PATCOPY, rops.ROP3_BLACKNESS,
                                                     rops.ROP3_WHITENESS):
            value = {rops.ROP3_PATCOPY: color, rops.ROP3_BLACKNESS: 0,
                     rops.ROP3_WHITENESS: 0xFFFFFFFF}[code]
            self._queue_fill(surf, rects, _pack(px.quantize_pixel(_unpack(value), surf.fmt)))
            return
        aux = (0, 0)
        mode = code | (KIND_ROP3 << 8)
        if mask is not None:
            aux = self._stage_mask(mask, _bounds(rects))
            mode |= MODE_MASK
        pat_pos = (0, 0)
        if isinstance(brush, PatternBrush):
            pat_pos = (brush.pos.x, brush.pos.y)
        self._queue_draw(surf, rects, mode, pat=pat, color=color, aux=aux, pat_pos=pat_pos)

    def _const_fill(self, surf: _Surface, bbox: Box, rects: list[Box],
                    op: Blackness | Whiteness | Invers) -> list[Box]:
        code = {Blackness: rops.ROP3_BLACKNESS, Whiteness: rops.ROP3_WHITENESS,
                Invers: rops.ROP3_DSTINVERT}[type(op)]
        rects, mask = self._qmask(op.mask, bbox, rects)
        if not rects:
            return []
        self._brush_rop(surf, rects, code, 0, None, mask, None)
        return rects

    def _src_map(self, bbox: Box, area: Box, scale_mode: int, *, rop3: bool = False
                 ) -> tuple[SourceMap, bool]:
        """Where destination pixel (x, y) of an operation reads its source, as pixman does for
        the software canvas: position v = (fx * x + cx, fy * y + cy) in 16.16 fixed point, in
        image coordinates (see draw.glsl); and whether the operation scales. COPY, BLEND,
        OPAQUE, TRANSPARENT and ALPHA_BLEND scale with an integer ratio anchored at src_area
        (sw_canvas's __scale_image); ROP3 (`rop3`) through canvas_scale_surface, with a
        ratio in doubles and the source offset rounded in destination space."""
        bw, bh = bbox[2] - bbox[0], bbox[3] - bbox[1]
        aw, ah = area[2] - area[0], area[3] - area[1]
        if (aw, ah) == (bw, bh):
            return (1 << 16, 1 << 16, ((area[0] - bbox[0]) << 16) + 0x8000,
                    ((area[1] - bbox[1]) << 16) + 0x8000), False
        if scale_mode not in (E.SCALE_MODE_INTERPOLATE, E.SCALE_MODE_NEAREST):
            raise RenderError(f"unknown scale mode {scale_mode}")
        fx, cx = _scale_axis(area[0], aw, bbox[0], bw, rop3)
        fy, cy = _scale_axis(area[1], ah, bbox[1], bh, rop3)
        return (fx, fy, cx, cy), True

    def _scaled_source(self, src: _Source, image: Image, target: _Surface) -> _Source:
        """A scaled read's source as a texture of exactly the image: scaling reads past the
        source area, up to the image's edges and beyond (as zero), so neither staged rows
        nor a slot of the shared cache texture will do."""
        if src.surface is None and (src.tex is None or src.tex is self._cache_tex):
            return self._image(image, target, own_texture=True)
        return src

    def _check_area(self, src: _Source, area: QRect) -> Box:
        box = check_rect(area, "src_area")
        if intersect(box, (0, 0, src.width, src.height)) != box:
            raise RenderError(f"src_area {tuple(area)} outside the {src.width}x{src.height} "
                              "source")
        return box

    def _image_op(self, surf: _Surface, bbox: Box, rects: list[Box], image: Image,
                  area_q: QRect, scale_mode: int, code: int, mask_q: QMask | None,
                  brush: Brush = None, *, rop3: bool = False) -> list[Box]:
        """COPY, BLEND, OPAQUE, ROP3: ROP3 `code` over (brush, source, destination)."""
        src = self._image(image, surf)
        area = self._check_area(src, area_q)
        src_map, scaled = self._src_map(bbox, area, scale_mode, rop3=rop3)
        color, pat = self._brush(brush, surf)
        mask = None
        if mask_q is not None:
            rects, mask = self._qmask(mask_q, bbox, rects)
        if code == rops.ROP3_NOOP or not rects:
            return []
        if code == rops.ROP3_SRCCOPY and not scaled and mask is None:
            self._queue_copy(surf, rects, src, bbox[0] - area[0], bbox[1] - area[1])
            return rects
        if not rops.uses(code, rops.S):  # the source does not matter: a brush operation
            self._brush_rop(surf, rects, code, color, pat, mask, brush)
            return rects
        mode = code | (KIND_ROP3 << 8)
        if scaled:
            src = self._scaled_source(src, image, surf)
            if scale_mode == E.SCALE_MODE_INTERPOLATE:
                mode |= MODE_BILINEAR
            if code == rops.ROP3_SRCCOPY and not src.has_alpha:
                # the canvas composes it as an x8r8g8b8 image (__scale_image): alpha 255
                # inside it, whatever its 4th byte holds
                mode |= MODE_SRC_OPAQUE
        aux = (0, 0)
        if mask is not None:
            aux = self._stage_mask(mask, _bounds(rects))
            mode |= MODE_MASK
        pat_pos = (brush.pos.x, brush.pos.y) if isinstance(brush, PatternBrush) else (0, 0)
        self._queue_draw(surf, rects, mode, src=src, src_map=src_map, pat=pat, color=color,
                         aux=aux, pat_pos=pat_pos, src_reads=_self_reads(src, surf, area))
        return rects

    def _copy(self, surf: _Surface, bbox: Box, rects: list[Box], op: Copy) -> list[Box]:
        return self._image_op(surf, bbox, rects, op.src_bitmap, op.src_area, op.scale_mode,
                              rops.src_dest_rop3(op.rop_descriptor), op.mask)

    def _blend(self, surf: _Surface, bbox: Box, rects: list[Box], op: Blend) -> list[Box]:
        return self._image_op(surf, bbox, rects, op.src_bitmap, op.src_area, op.scale_mode,
                              rops.src_dest_rop3(op.rop_descriptor), op.mask)

    def _opaque(self, surf: _Surface, bbox: Box, rects: list[Box], op: Opaque) -> list[Box]:
        return self._image_op(surf, bbox, rects, op.src_bitmap, op.src_area, op.scale_mode,
                              rops.brush_src_rop3(op.rop_descriptor), op.mask, op.brush)

    def _rop3(self, surf: _Surface, bbox: Box, rects: list[Box], op: Rop3) -> list[Box]:
        if not 0 <= op.rop3 <= 255:
            raise RenderError(f"rop3 code {op.rop3} out of range")
        brush = op.brush
        if brush is not None and not isinstance(brush, SolidBrush | PatternBrush):
            raise RenderError("unknown brush type")
        return self._image_op(surf, bbox, rects, op.src_bitmap, op.src_area, op.scale_mode,
                              op.rop3, op.mask, brush, rop3=True)

    def _transparent(self, surf: _Surface, bbox: Box, rects: list[Box],
                     op: Transparent) -> list[Box]:
        src = self._image(op.src_bitmap, surf)
        area = self._check_area(src, op.src_area)
        src_map, scaled = self._src_map(bbox, area, E.SCALE_MODE_NEAREST)
        if scaled:
            src = self._scaled_source(src, op.src_bitmap, surf)
        if surf.fmt in (E.SURFACE_FMT_16_555, E.SURFACE_FMT_16_565):
            key = _pack(px.quantize_pixel(_unpack(op.true_color), surf.fmt))
        elif surf.fmt in (E.SURFACE_FMT_32_xRGB, E.SURFACE_FMT_32_ARGB):
            key = op.true_color & 0xFFFFFF
        else:
            key = 0
        self._queue_draw(surf, rects, KIND_COLORKEY << 8, src=src, src_map=src_map, color=key,
                         src_reads=_self_reads(src, surf, area))
        return rects

    def _alpha_blend(self, surf: _Surface, bbox: Box, rects: list[Box],
                     op: AlphaBlend) -> list[Box]:
        if not 0 <= op.alpha <= 255:
            raise RenderError(f"alpha {op.alpha} out of range")
        src = self._image(op.src_bitmap, surf)
        area = self._check_area(src, op.src_area)
        src_map, scaled = self._src_map(bbox, area, E.SCALE_MODE_NEAREST)
        if op.alpha == 0:
            return []
        if scaled:
            src = self._scaled_source(src, op.src_bitmap, surf)
        mode = (KIND_ALPHA << 8) | (op.alpha << 24)
        # the canvas reads an xRGB surface's fourth byte as alpha only when the flag says
        # so; an ARGB surface's alpha always counts (canvas_get_as_surface)
        has_alpha = src.has_alpha if src.surface is None else bool(
            op.alpha_flags & E.ALPHA_FLAGS_SRC_SURFACE_HAS_ALPHA
            or src.surface.fmt == E.SURFACE_FMT_32_ARGB)
        if has_alpha:
            mode |= MODE_SRC_ALPHA
        if op.alpha_flags & E.ALPHA_FLAGS_DEST_HAS_ALPHA or surf.fmt == E.SURFACE_FMT_32_ARGB:
            mode |= MODE_DST_ALPHA
        self._queue_draw(surf, rects, mode, src=src, src_map=src_map,
                         src_reads=_self_reads(src, surf, area))
        return rects

    def _text(self, surf: _Surface, bbox: Box, rects: list[Box], op: Text) -> list[Box]:
        back_color, back_pat = self._brush(op.back_brush, surf)
        ba = op.back_area
        back: list[Box] = []
        if ba.right > ba.left and ba.bottom > ba.top:
            if op.fore_mode != E.ROPD_OP_PUT:
                return []  # the software canvas refuses this combination and draws nothing
            bbox_back = check_rect(ba, "back_area")
            back = [c for c in (intersect(r, bbox_back) for r in rects) if c is not None]
        if op.str.flags & E.STRING_FLAGS_RASTER_A1 and type(op.fore_brush) is SolidBrush:
            return self._text_a1(surf, rects, op, back, back_color, back_pat)
        left, top, cov = px.glyph_mask(op.str)
        fore_color, fore_pat = self._brush(op.fore_brush, surf)
        gbox = (left, top, left + cov.shape[1], top + cov.shape[0])
        fore = ([c for c in (intersect(r, gbox) for r in rects) if c is not None]
                if op.fore_brush is not None else [])
        if fore:
            fx0, fy0, fx1, fy1 = _bounds(fore)
            aux = self._stage_mask(cov[fy0 - top : fy1 - top, fx0 - left : fx1 - left],
                                   (fx0, fy0, fx1, fy1))
        if back:
            self._brush_rop(surf, back, rops.ROP3_PATCOPY, back_color, back_pat, None,
                            op.back_brush)
        if fore:
            # the canvas composites the pattern from the string mask's corner, so the
            # pattern's origin is that corner moved by the brush's position
            pat_pos = ((left + op.fore_brush.pos.x, top + op.fore_brush.pos.y)
                       if isinstance(op.fore_brush, PatternBrush) else (0, 0))
            # an RGBA pattern goes OVER with its own alpha, as pixman composites it
            mode = KIND_COVERAGE << 8
            if fore_pat is not None and fore_pat.has_alpha:
                mode |= MODE_SRC_ALPHA
            self._queue_draw(surf, fore, mode, pat=fore_pat, color=fore_color,
                             aux=aux, pat_pos=pat_pos)
        return back + fore

    def _text_a1(self, surf: _Surface, rects: list[Box], op: Text, back: list[Box],
                 back_color: int, back_pat: _Source | None) -> list[Box]:
        """1-bit glyphs in a solid colour: coverage is all or nothing, so OVER is a copy of
        the colour where a bit is set; the glyphs' own bytes are staged and each glyph is one
        instance of the blit program, no destination read."""
        _, boxes, gbox = px.glyph_boxes(op.str)
        glyphs = op.str.glyphs
        fore = [c for c in (intersect(r, gbox) for r in rects) if c is not None]
        assert isinstance(op.fore_brush, SolidBrush)
        b, g, r, _ = px.color_to_pixel(op.fore_brush.color, surf.fmt)
        color = _pack(px.quantize_pixel((b, g, r, 255), surf.fmt))
        # all glyphs' rows staged in one piece (the shader reads them bytewise, unaligned)
        sizes = [((g.width + 7) >> 3) * g.height for g in glyphs]
        at = self._stage(b"".join([g.data[:n] for g, n in zip(glyphs, sizes, strict=True)]))
        # the usual case, one unclipped rect holding the whole string, needs no intersecting
        whole = len(fore) == 1 and fore[0] == gbox
        queued: list[int] = []
        for glyph, box, size in zip(glyphs, boxes, sizes, strict=True):
            base, at = at, at + size
            x0, y0, x1, y1 = box
            if whole:
                parts = [box] if x0 < x1 and y0 < y1 else []
            else:
                parts = [c for c in (intersect(f, box) for f in fore) if c is not None]
            if not parts:
                continue
            stride = (glyph.width + 7) >> 3
            # rows bottom-up whatever the TOP_DOWN flag says, as the real canvas reads them
            ox, oy = base + (glyph.height - 1 + y0) * stride, -stride
            kind = (BLIT_GLYPH | (x0 & 0xFFFFFF) << 8) & 0xFFFFFFFF
            for part in parts:
                queued += (*part, ox, oy, color, kind)
        if back:
            self._brush_rop(surf, back, rops.ROP3_PATCOPY, back_color, back_pat, None,
                            op.back_brush)
        if not queued:
            return back
        batch = self._begin("blit", surf, None, None)
        batch.kinds |= 1 << BLIT_GLYPH
        batch.data += queued
        return back + fore

    def _stroke(self, surf: _Surface, bbox: Box, rects: list[Box], op: Stroke) -> list[Box]:
        code = rops.brush_dest_rop3(op.fore_mode)
        rops.brush_dest_rop3(op.back_mode)  # checked, though only dashes are drawn
        color, pat = self._brush(op.brush, surf)
        area = _bounds(rects)
        counts = stroke_mask(op.path, op.attr, area)
        if counts is None or code == rops.ROP3_NOOP:
            return []
        region = np.zeros(counts.shape, bool)
        for x0, y0, x1, y1 in rects:
            region[y0 - area[1] : y1 - area[1], x0 - area[0] : x1 - area[0]] = True
        mask = (counts > 0) & region
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return []
        tight = (area[0] + int(xs.min()), area[1] + int(ys.min()),
                 area[0] + int(xs.max()) + 1, area[1] + int(ys.max()) + 1)
        window = (slice(tight[1] - area[1], tight[3] - area[1]),
                  slice(tight[0] - area[0], tight[2] - area[0]))
        sub, odd = mask[window], (counts[window] & 1).astype(bool)
        # pixels covered an even number of times got the operation twice
        twice = rops.twice(code)
        if twice == code or not (sub & ~odd).any():
            self._brush_rop(surf, [tight], code, color, pat, sub, op.brush)
        else:
            self._brush_rop(surf, [tight], code, color, pat, sub & odd, op.brush)
            self._brush_rop(surf, [tight], twice, color, pat, sub & ~odd, op.brush)
        return [tight]

    def _copy_bits(self, surf: _Surface, bbox: Box, rects: list[Box], op: CopyBits) -> list[Box]:
        dx, dy = bbox[0] - op.src_pos.x, bbox[1] - op.src_pos.y
        if dx == 0 and dy == 0:
            return []
        # only what lies inside the surface at the source position can be copied
        src_box = (dx, dy, dx + surf.width, dy + surf.height)
        rects = [c for c in (intersect(r, src_box) for r in rects) if c is not None]
        if not rects:
            return []
        src = _Source(None, surf.width, surf.height, False, surf)
        self._queue_copy(surf, rects, src, dx, dy)
        return rects

    def _composite(self, surf: _Surface, bbox: Box, rects: list[Box],
                   op: Composite) -> list[Box]:
        src = self._image(op.src, surf, own_texture=True)
        mask = self._image(op.mask, surf, own_texture=True) if op.mask is not None else None
        setup = composite_setup(op, surf.fmt, bbox,
                                ImageShape(src.width, src.height, src.has_alpha,
                                           isinstance(op.src, SurfaceImage)),
                                ImageShape(mask.width, mask.height, mask.has_alpha)
                                if mask is not None else None)
        if setup is None:  # pixman composites nothing: its positions would overflow
            return []
        self.flush()
        # a composite reading its own target copies all of it (the transform reaches anywhere)
        whole = [(0, 0, surf.width, surf.height)]
        src_tex = self._sample_tex(self._resolve(src, surf), surf, whole)
        mask_tex = (self._sample_tex(self._resolve(mask, surf), surf, whole)
                    if mask is not None else self._dummy)
        if not self.fetch:
            self._copy_rects(surf, "scratch", rects).use(0)
        key = tuple(setup.defines.values())
        variant = self._comp_variants.get(key)
        if variant is None:
            prog = load_program(self.ctx, "composite", **setup.defines, FETCH=int(self.fetch))
            variant = (prog, self.ctx.vertex_array(prog, [(self._corners, "2f", "corner")],
                                                   mode=moderngl.TRIANGLE_STRIP))
            self._comp_variants[key] = variant
        prog, vao = variant
        for name, value in (("u_dst", 0), ("u_src", 1), ("u_mask", 2)):
            if name in prog:
                prog[name] = value
        for name, value in setup.uniforms.items():
            if name in prog:
                prog[name] = value
        prog["u_size"] = (surf.width, surf.height)
        prog["u_fmt"] = surf.fmt
        src_tex.use(1)
        mask_tex.use(2)
        surf.fbo.use()
        for x0, y0, x1, y1 in rects:
            prog["u_rect"] = (x0, y0, x1, y1)
            vao.render()
            self.draw_calls += 1
        self._gl_flush()
        self._drop_batch()
        return rects


def _fill_buffer(buf: moderngl.Buffer, data: bytes | bytearray | memoryview) -> None:
    """Replaces a buffer's content: large data in place when it fits (REFILL_IN_PLACE_BYTES),
    otherwise in fresh storage (orphaning: no wait for draws still reading the old one), sized
    to the data rounded up to 64 KiB so sizes repeat."""
    if not REFILL_IN_PLACE_BYTES <= len(data) <= buf.size:
        buf.orphan(max(len(data) + 0xFFFF & ~0xFFFF, 0x10000))
    buf.write(data)


def _scale_axis(src0: int, src_len: int, dst0: int, dst_len: int, rop3: bool
                ) -> tuple[int, int]:
    """(f, c) such that source position (16.16) = f * x + c for destination pixel x: the
    scale transform pixman evaluates at pixel centres, rounding f * 0.5 as
    pixman_transform_point_3d does."""
    if rop3:  # canvas_scale_surface: ratio as a double, offset ROUND(src0 / ratio)
        ratio = src_len / dst_len
        f = int(ratio * 65536.0)
        offset = math.floor(src0 / ratio + 0.5)
        return f, f * (offset - dst0) + ((f * 0x8000 + 0x8000) >> 16)
    f = (src_len << 16) // dst_len
    return f, (src0 << 16) - f * dst0 + ((f * 0x8000 + 0x8000) >> 16)


def _self_reads(src: _Source, target: _Surface, area: Box) -> list[Box] | None:
    """What an operation reading its own target reads of it: the source area and the pixel
    around it that scaling may reach."""
    if src.surface is not target:
        return None
    return [(max(area[0] - 1, 0), max(area[1] - 1, 0), min(area[2] + 1, target.width),
             min(area[3] + 1, target.height))]


def _add_rects(rects: list[Box], more: list[Box] | tuple[Box, ...]) -> list[Box]:
    """`rects` (extended in place) with `more` added; past MAX_DAMAGE_RECTS, their bounding
    box instead."""
    rects.extend(more)
    return [_bounds(rects)] if len(rects) > MAX_DAMAGE_RECTS else rects


def _merge_reads(rects: list[Box]) -> list[Box]:
    """Rects to read back (or write back), as one bounding box where that is cheaper
    (READ_MERGE_AREA, READ_MERGE_COUNT)."""
    if len(rects) > 1:
        whole = _bounds(rects)
        area = sum((r[2] - r[0]) * (r[3] - r[1]) for r in rects)
        if ((whole[2] - whole[0]) * (whole[3] - whole[1]) <= READ_MERGE_AREA * area
                or len(rects) > READ_MERGE_COUNT):
            return [whole]
    return rects


def _subtract(r: Box, hole: Box) -> list[Box]:
    """The parts of r outside `hole` (which overlaps it): up to four rects."""
    out = []
    if r[1] < hole[1]:
        out.append((r[0], r[1], r[2], hole[1]))
    if hole[3] < r[3]:
        out.append((r[0], hole[3], r[2], r[3]))
    y0, y1 = max(r[1], hole[1]), min(r[3], hole[3])
    if r[0] < hole[0]:
        out.append((r[0], y0, hole[0], y1))
    if hole[2] < r[2]:
        out.append((hole[2], y0, r[2], y1))
    return out


def _claim(cells: dict[int, int], rects: list[Box]) -> bool:
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


def _cache_key(image_id: int, palette: Palette | None, fmt: int) -> tuple[Any, ...]:
    """What a cached image is kept under: the guest's id, and the palette and bitmap format
    it was decoded with (one id has been sent with two palettes, a blinking cursor)."""
    return image_id, px.palette_key(palette), fmt


def _pack(c: Any) -> int:
    b, g, r, a = (int(v) for v in c)
    return b | g << 8 | r << 16 | a << 24


def _unpack(v: int) -> tuple[int, int, int, int]:
    v &= 0xFFFFFFFF
    return v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24


def _bounds(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))
