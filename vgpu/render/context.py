"""The renderer's GL context and what it owns on it: the context itself, the shader programs,
the QXL surfaces (a texture and framebuffer each, scratch copies on demand) and the GL state
the 2D path and the 3D executor (`vgpu.render.gl3d`) share.

Pixels live in RGBA8 textures whose four channels are the surface's memory bytes (see
`vgpu.render.pixels`), rows top-down: texture row y is surface row y, so the framebuffer's y
axis needs no flipping and readback is in memory order.

The GL state contract of the 2D path (the 3D executor's side, what it saves and restores, is
in `vgpu.render.gl3d`):

- What the 2D path sets before each draw: the target framebuffer with its viewport
  (`fbo.use()`), program and vertex array (`vao.render`), the textures it samples on units
  0-2 (`Texture.use`), its instance/staging buffers (written through GL_ARRAY_BUFFER, the
  staging buffer at shader storage binding 0), UNPACK/PACK_ALIGNMENT for uploads and reads
  (moderngl writes those itself, through its last texture unit).
- What it relies on and never sets per draw: blending, depth test and culling off (set once
  by `GlContext`, cached by moderngl), scissor/stencil/rasterizer-discard off, the colour
  mask, every other pixel store value at 0, no PIXEL_PACK/UNPACK buffer bound, and
  moderngl's cached framebuffer binding (`ctx.fbo`, rebound after reads).
- Who owns what: the renderer owns its surfaces' textures, framebuffers, scratch copies and
  programs; the 3D executor owns its drawables and present program.
- When: a 3D batch may end with a guest context's state still on the GL, for the next batch,
  and with presents it ran not yet noted (`GlContext._3d_pending`); each entry point of the
  renderer settles those first (`_settle_3d`), before it uses the GL or reads damage.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import moderngl
import numpy as np

from vgpu.display import Move, Placement, Present
from vgpu.render import enums as E
from vgpu.render import pixels as px
from vgpu.render.errors import RenderError
from vgpu.render.region import Box

SHADER_DIR = Path(__file__).resolve().parents[2] / "shaders"

PRIMARY = 0

GL_REQUIRED = 430
"""OpenGL 4.3: the staging buffer is a shader storage buffer (std430). llvmpipe gives 4.5,
every desktop GPU driver of the last decade 4.3 or more."""

FRAMEBUFFER_FETCH = "GL_EXT_shader_framebuffer_fetch"

MAX_SURFACES = 4096
"""Live surfaces at once: QXL's ROM offers 1024 surface ids by default (QEMU's n_surfaces);
room for larger configurations, while bounding what a guest can make us allocate."""

MAX_SURFACE_PIXELS = 256 << 20
"""Pixels of all live surfaces together (1 GiB of RGBA8, up to 3 GiB with the scratch copies a
surface may get): several 4K heads plus the off-screen surfaces a desktop keeps, while a guest
that asks for more cannot exhaust the host GPU's memory."""

MAX_SURFACE_ID = 1 << 20
"""Surface ids accepted: QXL ids index a table the device sizes, far below this."""


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
class Surface:
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
    # the shadow is a published frame's pixels too (snapshot shares it rather than copy
    # it): the next write into it first gets an array of its own (writable_shadow)
    shadow_published: bool = False
    # what guest memory lacks: drawn since the last UPDATE_AREA write-back covering it
    unsynced: list[Box] = field(default_factory=list)
    # newer in `shadow` than in `tex` (3D presents by copy write the host copy only): put
    # into the texture before the GL next draws on it, samples it or reads it
    ahead: list[Box] = field(default_factory=list)
    # 3D presents by copy whose pixels are in `staging` only (a GL-side copy, rows in GL's
    # order, each at its place in the surface): read into `shadow` (then `ahead`) before
    # anything reads the host copy or the GL next uses the surface (Renderer._land)
    staged: list[Box] = field(default_factory=list)
    staging: tuple[moderngl.Texture, moderngl.Framebuffer] | None = None
    # guest images drawn whole here and not drawn over since (hints for the SPICE cache)
    placements: list[Placement] = field(default_factory=list)
    # the guest's latest copies within the primary (hints for the SPICE COPY_BITS)
    moves: list[Move] = field(default_factory=list)
    # the latest 3D presents' destinations on the primary (hints for the stream planner)
    presents: list[Present] = field(default_factory=list)

    def writable_shadow(self, whole: bool) -> np.ndarray:
        """The shadow, to write into. Where a published frame shares it: a copy, or a new
        array where the write covers all of the surface (`whole`; a part it fails to
        write stays in `stale`, to be read back from the GL before any use)."""
        assert self.shadow is not None
        if self.shadow_published:
            self.shadow = np.empty_like(self.shadow) if whole else self.shadow.copy()
            self.shadow_published = False
        return self.shadow

    def framebuffers(self) -> list[moderngl.Framebuffer]:
        return [self.fbo] + [pair[1] for pair in (self.scratch, self.self_copy, self.staging)
                             if pair]

    def release(self) -> None:
        for pair in (self.scratch, self.self_copy, self.staging):
            if pair is not None:
                pair[1].release()
                pair[0].release()
        self.fbo.release()
        self.tex.release()


class GlContext:
    """The context, the objects every draw shares and the table of surfaces: the first of the
    renderer's layers (context, `vgpu.render.batch`, `vgpu.render.readback`,
    `vgpu.render.ops2d`, `vgpu.render.gl.Renderer`), each a subclass of the one before."""

    def __init__(self, ctx: moderngl.Context | None, framebuffer_fetch: bool | None) -> None:
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
        self._corners = self.ctx.buffer(np.array([0, 0, 1, 0, 0, 1, 1, 1], "f4").tobytes())
        self._dummy = self.ctx.texture((1, 1), 4, b"\0\0\0\0")
        # the default framebuffer (name 0, never freed), bound instead of a surface's that is
        # being freed: moderngl binds its last framebuffer again after making a new one, and
        # a freed name is a GL error, in this renderer or the next one on the context
        self._parking = self.ctx.detect_framebuffer(0)
        self._surfaces: dict[int, Surface] = {}
        self._ahead: set[Surface] = set()  # surfaces whose `ahead` is not empty
        self._staged_surfaces: set[Surface] = set()  # surfaces whose `staged` is not empty
        self._3d_pending: Callable[[], None] | None = None
        """Set by the 3D executor when a batch leaves a guest context's GL state on or
        presents unnoted (so a guest drawing frame after frame pays neither a state switch
        nor the noting each frame): notes them and puts the 2D path's GL state back, once
        (`_settle_3d`)."""

    def _settle_3d(self) -> None:
        """Settles what 3D batches left (see `_3d_pending`): the first thing each entry
        point does that uses the GL or reads damage."""
        settle = self._3d_pending
        if settle is not None:
            self._3d_pending = None
            settle()

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

    def _create(self, sid: int, width: int, height: int, stride: int, fmt: int,
                initial: np.ndarray | None) -> None:
        self._settle_3d()
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
        self._surfaces[sid] = Surface(sid, width, height, fmt, tex, fbo, unsynced=[] if
                                      data is not None else [(0, 0, width, height)])

    def _release_surface(self, surf: Surface) -> None:
        """Frees a surface nothing queued refers to any more."""
        del self._surfaces[surf.id]
        self._ahead.discard(surf)
        self._staged_surfaces.discard(surf)
        if self.ctx.fbo in surf.framebuffers():
            self._parking.use()
        surf.release()

    def _get_surface(self, sid: int) -> Surface:
        surf = self._surfaces.get(sid)
        if surf is None:
            raise RenderError(f"surface {sid} does not exist")
        return surf

    def _scratch(self, surf: Surface, attr: str
                 ) -> tuple[moderngl.Texture, moderngl.Framebuffer]:
        """The surface's scratch texture `attr` ("scratch" or "self_copy"), made on demand."""
        pair = getattr(surf, attr)
        if pair is None:
            tex = self.ctx.texture((surf.width, surf.height), 4)
            tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
            pair = (tex, self.ctx.framebuffer(color_attachments=[tex]))
            setattr(surf, attr, pair)
        return pair

    def close(self) -> None:
        """Frees the shared objects (and the context if this renderer made it); the layers
        above free theirs first."""
        self._corners.release()
        self._dummy.release()
        if self._owns_ctx:
            self.ctx.release()
