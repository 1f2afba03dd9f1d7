"""A moderngl-shaped 3D API for guests: every call becomes commands on the 3D ring.

`create_context(driver, size)` gives a `Context` with moderngl's names and shapes
(`ctx.buffer`, `ctx.texture`, `ctx.program`, `ctx.vertex_array`, `ctx.framebuffer`,
`vao.render`, `ctx.clear`, `fbo.read`, ...), so a moderngl program runs as a guest with
small changes, plus `ctx.present(...)` onto a QXL surface and fences. It encodes GL ES 3.0
commands into batches (docs/3d-ring.md, through `vgpu.guest.glenc`, which the command table
drives) and never calls GL.

The guest names its objects and answers what it knows itself (sizes, formats, bindings,
uniform values, the viewport); only readback, compile and link status and logs, glGetError
and the uniform/attribute introspection done once per program link wait on a fence. Back-
pressure is the guest's: at most `MAX_PRESENTS_IN_FLIGHT` presents whose fences have not
completed.

The transport is the guest driver's 3D primitives (`vgpu.guest.driver`): gl_submit,
gl_submit_fence, gl_wait_fence, gl_reply and gl_data, in-process or over the unix socket
alike.
One thread uses a context, as with GL.
"""

from __future__ import annotations

import re
import struct
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from vgpu.device import glwire
from vgpu.device.abi import lib
from vgpu.guest.glenc import Encoder

GL = glwire.enums()
"""GL enum values by name, from Khronos' registry."""

MAX_PRESENTS_IN_FLIGHT = 2
"""Presents whose fences have not completed (docs/3d-ring.md, "Back-pressure"): two lets the
guest build a frame while the host draws the previous one, and bounds display latency."""

BATCH_FLUSH_BYTES = 1 << 20
"""A batch is submitted once it holds this much, besides at every fence: a quarter of the
device's 4 MiB gl_max_batch, so one largest command (a 256 KiB body) always fits after it,
and the host starts on a long frame before the guest has finished encoding it."""

FENCE_TIMEOUT_S = 10.0
"""Seconds to wait for a fence before reporting the device stuck: far beyond any frame
(llvmpipe draws 1000 calls at 1080p in about 16 ms); the device's watchdog acts sooner."""

INFO_LOG_CAPACITY = 16 << 10
"""Bytes read back of a compile or link log: Mesa's longest logs are a few KiB."""

NAME_CAPACITY = 256
"""Bytes read back of an active uniform's or attribute's name, NUL included."""

DEFAULT_TEXTURE_UNIT = 15
"""Unit that object creation and uploads bind to, as moderngl keeps its last unit for them so
that `texture.use(n)` bindings survive: GL ES 3.0's minimum MAX_TEXTURE_IMAGE_UNITS is 16."""

MAX_CACHED_DRAWS = 64
"""Encoded draw commands a vertex array keeps for reuse (a frame repeats a few shapes)."""

MAX_NAME = 65536
"""Names per object table (docs/3d-ring.md, quotas): the guest reuses freed names."""

# moderngl's enable flags and constants (moderngl.Context), so moderngl code runs unchanged.
NOTHING, BLEND, DEPTH_TEST, CULL_FACE, RASTERIZER_DISCARD, PROGRAM_POINT_SIZE = 0, 1, 2, 4, 8, 16
POINTS, LINES, LINE_LOOP, LINE_STRIP, TRIANGLES, TRIANGLE_STRIP, TRIANGLE_FAN = range(7)
NEAREST, LINEAR = GL["GL_NEAREST"], GL["GL_LINEAR"]
NEAREST_MIPMAP_NEAREST, LINEAR_MIPMAP_NEAREST = 0x2700, 0x2701
NEAREST_MIPMAP_LINEAR, LINEAR_MIPMAP_LINEAR = 0x2702, 0x2703
ZERO, ONE, SRC_COLOR, ONE_MINUS_SRC_COLOR = 0, 1, 0x0300, 0x0301
SRC_ALPHA, ONE_MINUS_SRC_ALPHA, DST_ALPHA, ONE_MINUS_DST_ALPHA = 0x0302, 0x0303, 0x0304, 0x0305
DST_COLOR, ONE_MINUS_DST_COLOR = 0x0306, 0x0307
DEFAULT_BLENDING = (SRC_ALPHA, ONE_MINUS_SRC_ALPHA)
ADDITIVE_BLENDING = (ONE, ONE)
PREMULTIPLIED_ALPHA = (SRC_ALPHA, ONE)
FUNC_ADD, FUNC_SUBTRACT, FUNC_REVERSE_SUBTRACT, MIN, MAX = 0x8006, 0x800A, 0x800B, 0x8007, 0x8008

_CAPS = ((BLEND, GL["GL_BLEND"]), (DEPTH_TEST, GL["GL_DEPTH_TEST"]),
         (CULL_FACE, GL["GL_CULL_FACE"]), (RASTERIZER_DISCARD, GL["GL_RASTERIZER_DISCARD"]))
"""moderngl flag -> GL ES capability. PROGRAM_POINT_SIZE has none: ES always takes
gl_PointSize from the shader."""

_DEPTH_FUNCS = {"<=": "GL_LEQUAL", "<": "GL_LESS", ">=": "GL_GEQUAL", ">": "GL_GREATER",
                "==": "GL_EQUAL", "!=": "GL_NOTEQUAL", "0": "GL_NEVER", "1": "GL_ALWAYS"}

# dtype -> (GL type, bytes per component, internal formats by component count, base formats)
_BASE = ("GL_RED", "GL_RG", "GL_RGB", "GL_RGBA")
_IBASE = ("GL_RED_INTEGER", "GL_RG_INTEGER", "GL_RGB_INTEGER", "GL_RGBA_INTEGER")
_DTYPES: dict[str, tuple[str, int, tuple[str, ...], tuple[str, ...]]] = {
    "f1": ("GL_UNSIGNED_BYTE", 1, ("GL_R8", "GL_RG8", "GL_RGB8", "GL_RGBA8"), _BASE),
    "f2": ("GL_HALF_FLOAT", 2, ("GL_R16F", "GL_RG16F", "GL_RGB16F", "GL_RGBA16F"), _BASE),
    "f4": ("GL_FLOAT", 4, ("GL_R32F", "GL_RG32F", "GL_RGB32F", "GL_RGBA32F"), _BASE),
    "u1": ("GL_UNSIGNED_BYTE", 1, ("GL_R8UI", "GL_RG8UI", "GL_RGB8UI", "GL_RGBA8UI"), _IBASE),
    "u2": ("GL_UNSIGNED_SHORT", 2, ("GL_R16UI", "GL_RG16UI", "GL_RGB16UI", "GL_RGBA16UI"),
           _IBASE),
    "u4": ("GL_UNSIGNED_INT", 4, ("GL_R32UI", "GL_RG32UI", "GL_RGB32UI", "GL_RGBA32UI"), _IBASE),
    "i1": ("GL_BYTE", 1, ("GL_R8I", "GL_RG8I", "GL_RGB8I", "GL_RGBA8I"), _IBASE),
    "i2": ("GL_SHORT", 2, ("GL_R16I", "GL_RG16I", "GL_RGB16I", "GL_RGBA16I"), _IBASE),
    "i4": ("GL_INT", 4, ("GL_R32I", "GL_RG32I", "GL_RGB32I", "GL_RGBA32I"), _IBASE),
}

# Uniform and attribute types: GL type -> (components, element kind, matrix columns or 0).
_TYPES: dict[int, tuple[int, str, int]] = {}
for _scalar, _vector, _kind in (("GL_FLOAT", "GL_FLOAT_VEC", "f"), ("GL_INT", "GL_INT_VEC", "i"),
                                ("GL_UNSIGNED_INT", "GL_UNSIGNED_INT_VEC", "u"),
                                ("GL_BOOL", "GL_BOOL_VEC", "i")):
    _TYPES[GL[_scalar]] = (1, _kind, 0)
    for _i in (2, 3, 4):
        _TYPES[GL[f"{_vector}{_i}"]] = (_i, _kind, 0)
for _c in (2, 3, 4):
    for _r in (2, 3, 4):
        _mat = f"GL_FLOAT_MAT{_c}" if _c == _r else f"GL_FLOAT_MAT{_c}x{_r}"
        _TYPES[GL[_mat]] = (_c * _r, "f", _c)
_UNIFORM_CALLS = {("f", 0): "glUniform{n}fv", ("i", 0): "glUniform{n}iv",
                  ("u", 0): "glUniform{n}uiv"}
_U32, _I32 = struct.Struct("<I"), struct.Struct("<i")
_ERRORS = {GL[n]: n for n in ("GL_NO_ERROR", "GL_INVALID_ENUM", "GL_INVALID_VALUE",
                              "GL_INVALID_OPERATION", "GL_OUT_OF_MEMORY",
                              "GL_INVALID_FRAMEBUFFER_OPERATION", "GL_CONTEXT_LOST")}

_ATTRIB_TYPES = {  # vertex format letter and size -> (GL type, normalized, integer attribute)
    ("f", 4): ("GL_FLOAT", False, False), ("f", 2): ("GL_HALF_FLOAT", False, False),
    ("f", 1): ("GL_UNSIGNED_BYTE", True, False),
    ("i", 4): ("GL_INT", False, True), ("i", 2): ("GL_SHORT", False, True),
    ("i", 1): ("GL_BYTE", False, True),
    ("u", 4): ("GL_UNSIGNED_INT", False, True), ("u", 2): ("GL_UNSIGNED_SHORT", False, True),
    ("u", 1): ("GL_UNSIGNED_BYTE", False, True),
}
_FORMAT_TOKEN = re.compile(r"^(\d*)([fiux])(\d?)$")
_DIVISORS = {"v": 0, "i": 1, "r": 0x7FFFFFFF}
_INDEX_TYPES = {1: "GL_UNSIGNED_BYTE", 2: "GL_UNSIGNED_SHORT", 4: "GL_UNSIGNED_INT"}


class Error(Exception):
    """What moderngl raises as moderngl.Error: a compile or link failure, a bad argument."""


class Transport(Protocol):
    """The guest driver's 3D primitives (GL3D interfaces; `vgpu.guest.driver.GuestDriver`)."""

    def gl_submit(self, batch: bytes | memoryview) -> None: ...

    def gl_submit_fence(self, batch: bytes | memoryview, interrupt: bool = True) -> int: ...

    def gl_wait_fence(self, value: int, timeout: float | None = None, *,
                      paced: bool = False) -> bool: ...

    def gl_reply(self, nbytes: int) -> tuple[int, memoryview]: ...

    def gl_data(self, data: bytes) -> int: ...


class _Ids:
    """Ids the guest chooses for contexts and surfaces, per transport (device-wide)."""

    def __init__(self) -> None:
        self.contexts: set[int] = set()
        self.surfaces: set[int] = set()
        self.current = 0  # the context the device runs GL commands on after our batches

    @staticmethod
    def take(used: set[int], limit: int) -> int:
        for i in range(1, limit + 1):
            if i not in used:
                used.add(i)
                return i
        raise Error("no free id left")


_IDS: weakref.WeakKeyDictionary[Any, _Ids] = weakref.WeakKeyDictionary()


class _Names:
    """Guest-chosen names of one object table, freed names reused first."""

    def __init__(self) -> None:
        self._next = 1
        self._free: list[int] = []

    def new(self) -> int:
        if self._free:
            return self._free.pop()
        if self._next >= MAX_NAME:
            raise Error("out of object names (docs/3d-ring.md quota)")
        self._next += 1
        return self._next - 1

    def free(self, name: int) -> None:
        self._free.append(name)


def create_context(driver: Transport, size: tuple[int, int] = (640, 480), *, samples: int = 0,
                   depth: bool = True, share: Context | None = None) -> Context:
    """A GL ES 3 context on the 3D ring with its own surface (the default framebuffer,
    `ctx.screen`) of `size`, as EGL's window surface is."""
    return Context(driver, size, samples=samples, depth=depth, share=share)


class Context:
    NOTHING, BLEND, DEPTH_TEST, CULL_FACE = NOTHING, BLEND, DEPTH_TEST, CULL_FACE
    RASTERIZER_DISCARD, PROGRAM_POINT_SIZE = RASTERIZER_DISCARD, PROGRAM_POINT_SIZE
    POINTS, LINES, LINE_LOOP, LINE_STRIP = POINTS, LINES, LINE_LOOP, LINE_STRIP
    TRIANGLES, TRIANGLE_STRIP, TRIANGLE_FAN = TRIANGLES, TRIANGLE_STRIP, TRIANGLE_FAN
    NEAREST, LINEAR = NEAREST, LINEAR
    NEAREST_MIPMAP_NEAREST, LINEAR_MIPMAP_NEAREST = NEAREST_MIPMAP_NEAREST, LINEAR_MIPMAP_NEAREST
    NEAREST_MIPMAP_LINEAR, LINEAR_MIPMAP_LINEAR = NEAREST_MIPMAP_LINEAR, LINEAR_MIPMAP_LINEAR
    ZERO, ONE, SRC_COLOR, ONE_MINUS_SRC_COLOR = ZERO, ONE, SRC_COLOR, ONE_MINUS_SRC_COLOR
    SRC_ALPHA, ONE_MINUS_SRC_ALPHA = SRC_ALPHA, ONE_MINUS_SRC_ALPHA
    DST_ALPHA, ONE_MINUS_DST_ALPHA = DST_ALPHA, ONE_MINUS_DST_ALPHA
    DST_COLOR, ONE_MINUS_DST_COLOR = DST_COLOR, ONE_MINUS_DST_COLOR
    DEFAULT_BLENDING, ADDITIVE_BLENDING = DEFAULT_BLENDING, ADDITIVE_BLENDING
    PREMULTIPLIED_ALPHA = PREMULTIPLIED_ALPHA
    FUNC_ADD, FUNC_SUBTRACT, FUNC_REVERSE_SUBTRACT = FUNC_ADD, FUNC_SUBTRACT, FUNC_REVERSE_SUBTRACT
    MIN, MAX = MIN, MAX

    def __init__(self, driver: Transport, size: tuple[int, int], *, samples: int = 0,
                 depth: bool = True, share: Context | None = None) -> None:
        self.driver = driver
        self.max_contexts = int(getattr(driver, "gl_max_contexts", 64))
        self._ids = _IDS.setdefault(driver, _Ids())
        self.ctx_id = _Ids.take(self._ids.contexts, self.max_contexts)
        self.surface_id = _Ids.take(self._ids.surfaces, 1 << 30)
        self._by_reference = False
        self.enc = Encoder(self._data)
        self.gl = self.enc.gl
        self._names = {t: _Names() for t in set(glwire.OBJECT_TABLES.values())}
        if share is not None:  # shared tables are one namespace
            for t in glwire.SHARED_TABLES:
                self._names[t] = share._names[t]
        self.presents: deque[int] = deque()
        self.last_fence = 0
        self.released = False
        # What the guest knows of its own GL state, to answer and to skip redundant calls.
        self._program = 0
        self._vao = 0
        self._active_unit = -1
        self._caps = 0
        self._viewport = (0, 0, *size)
        flags = lib.VGPU_3D_SURFACE_DEPTH if depth else 0
        self.enc.vgpu("CONTEXT_CREATE", self.ctx_id, 3, share.ctx_id if share else 0)
        self.enc.vgpu("SURFACE_CREATE", self.surface_id, size[0], size[1], flags, samples)
        self.enc.vgpu("MAKE_CURRENT", self.ctx_id, self.surface_id)
        self._current_in_batch = True
        self.screen = Framebuffer(self, 0, size, [], None, samples)
        self.fbo = self.screen
        # moderngl's context defaults, so the same program draws the same pixels.
        self.gl("glBlendFunc", SRC_ALPHA, ONE_MINUS_SRC_ALPHA)
        self.gl("glEnable", GL["GL_PRIMITIVE_RESTART_FIXED_INDEX"])
        self.gl("glViewport", *self._viewport)

    # --- the batch and fences -----------------------------------------------------------

    def _data(self, data: bytes) -> int:
        self._by_reference = True
        return self.driver.gl_data(data)

    def _name(self, table: str) -> int:
        return self._names[table].new()

    def _gen(self, table: str, call: str) -> int:
        """A new object's name, chosen here and announced with its glGen* call."""
        name = self._names[table].new()
        self.gl(call, 1, [name])
        return name

    def _delete(self, table: str, call: str, name: int) -> None:
        self.gl(call, 1, [name])
        self._names[table].free(name)

    def _after_upload(self) -> None:
        """A blob placed by reference stays valid only until the next fence completes; this
        context's batch goes now, so no other fence can pass it."""
        if self._by_reference or len(self.enc) >= BATCH_FLUSH_BYTES:
            self.flush()

    def _take(self) -> bytes:
        """What is encoded, as a batch (empty if nothing is). A batch after another
        context's starts by making this one current again."""
        self._by_reference = False
        if not len(self.enc):
            return b""
        batch = self.enc.take()
        if not self._current_in_batch and self._ids.current != self.ctx_id:
            batch = self.enc.encode_vgpu("MAKE_CURRENT", self.ctx_id, self.surface_id) + batch
        self._current_in_batch = False
        self._ids.current = self.ctx_id
        return batch

    def flush(self) -> None:
        """Submits what is encoded (moderngl has no such call: GL flushes on its own)."""
        batch = self._take()
        if batch:
            self.driver.gl_submit(batch)

    def fence(self, interrupt: bool = True) -> int:
        """Submits the batch with a FENCE at its end, one ring item; returns the fence's
        value."""
        self.last_fence = self.driver.gl_submit_fence(self._take(), interrupt)
        return self.last_fence

    def wait(self, value: int, timeout: float = FENCE_TIMEOUT_S) -> None:
        self._wait(value, timeout, paced=False)

    def _wait(self, value: int, timeout: float, *, paced: bool) -> None:
        if not self.driver.gl_wait_fence(value, timeout, paced=paced):
            raise TimeoutError(f"3D fence {value} did not complete within {timeout} s")

    def finish(self) -> None:
        """Waits until everything sent so far has run (glFinish)."""
        self.wait(self.fence())

    def _reply(self, nbytes: int) -> tuple[tuple[int, int], memoryview]:
        addr, view = self.driver.gl_reply(nbytes)
        return (addr, nbytes), view

    # --- presenting -----------------------------------------------------------------------

    def present(self, fb: Framebuffer | None = None, rect: tuple[int, int, int, int] | None = None,
                dst: tuple[int, int] = (0, 0), *, qxl_surface: int = 0,
                damage: Iterable[tuple[int, int, int, int]] = ()) -> int:
        """Copies `rect` (x, y, w, h in GL's bottom-left coordinates; all of `fb` by default)
        of `fb` (the screen by default) onto QXL surface `qxl_surface` with its top-left at
        `dst`, upright. `damage`: changed rectangles in destination coordinates (none: all
        of it). Returns the present's fence; waits first while two are in flight."""
        fb = self.screen if fb is None else fb
        x, y, w, h = rect if rect is not None else (0, 0, *fb.size)
        rects = [v for r in damage for v in r]
        while len(self.presents) >= MAX_PRESENTS_IN_FLIGHT:
            # the host is busy with the later ones: a wait that naps (driver.PACE_SPIN_S)
            self._wait(self.presents.popleft(), FENCE_TIMEOUT_S, paced=True)
        self.enc.vgpu("PRESENT", fb.name, x, y, w, h, qxl_surface, dst[0], dst[1],
                      len(rects) // 4, rects=rects)
        value = self.fence()
        self.presents.append(value)
        return value

    # --- state the guest keeps ------------------------------------------------------------

    def _use_program(self, name: int) -> None:
        if self._program != name:
            self.gl("glUseProgram", name)
            self._program = name

    def _bind_vao(self, name: int) -> None:
        if self._vao != name:
            self.gl("glBindVertexArray", name)
            self._vao = name

    def _unit(self, unit: int) -> None:
        if self._active_unit != unit:
            self.gl("glActiveTexture", GL["GL_TEXTURE0"] + unit)
            self._active_unit = unit

    def _bind_fb(self, fb: Framebuffer) -> None:
        if self.fbo is not fb:
            self.gl("glBindFramebuffer", GL["GL_FRAMEBUFFER"], fb.name)
            self.fbo = fb

    def _set_caps(self, flags: int) -> None:
        for flag, cap in _CAPS:
            if (flags ^ self._caps) & flag:
                self.gl("glEnable" if flags & flag else "glDisable", cap)
        self._caps = flags

    def enable(self, flags: int) -> None:
        self._set_caps(self._caps | flags)

    def disable(self, flags: int) -> None:
        self._set_caps(self._caps & ~flags)

    def enable_only(self, flags: int) -> None:
        self._set_caps(flags)

    @property
    def viewport(self) -> tuple[int, int, int, int]:
        return self._viewport

    @viewport.setter
    def viewport(self, value: tuple[int, int, int, int]) -> None:
        self._viewport = tuple(value)  # type: ignore[assignment]
        self.gl("glViewport", *value)

    @property
    def blend_func(self) -> tuple[int, ...]:
        raise AttributeError("blend_func is write-only, as in moderngl")

    @blend_func.setter
    def blend_func(self, value: Sequence[int]) -> None:
        if len(value) == 2:
            self.gl("glBlendFunc", *value)
        else:
            self.gl("glBlendFuncSeparate", *value)

    @property
    def blend_equation(self) -> tuple[int, ...]:
        raise AttributeError("blend_equation is write-only, as in moderngl")

    @blend_equation.setter
    def blend_equation(self, value: int | Sequence[int]) -> None:
        if isinstance(value, int):
            self.gl("glBlendEquation", value)
        elif len(value) == 1:
            self.gl("glBlendEquation", value[0])
        else:
            self.gl("glBlendEquationSeparate", *value)

    @property
    def depth_func(self) -> str:
        raise AttributeError("depth_func is write-only, as in moderngl")

    @depth_func.setter
    def depth_func(self, value: str) -> None:
        self.gl("glDepthFunc", GL[_DEPTH_FUNCS[value]])

    @property
    def error(self) -> str:
        """glGetError through the ring (one round trip), named as moderngl names it."""
        out, view = self._reply(4)
        self.gl("glGetError", out)
        self.finish()
        code = _U32.unpack_from(view)[0]
        return _ERRORS.get(code, f"GL_UNKNOWN_ERROR({code:#x})")

    # --- clearing and copying -------------------------------------------------------------

    def clear(self, red: float = 0.0, green: float = 0.0, blue: float = 0.0, alpha: float = 0.0,
              depth: float = 1.0, *, viewport: tuple[int, ...] | None = None,
              color: Sequence[float] | None = None) -> None:
        self.fbo.clear(red, green, blue, alpha, depth, viewport=viewport, color=color)

    def copy_framebuffer(self, dst: Framebuffer | Texture, src: Framebuffer) -> None:
        """Blits src's first colour buffer onto dst (resolving a multisampled src), or copies
        it into a texture; the current framebuffer stays bound."""
        w = min(src.size[0], dst.size[0])
        h = min(src.size[1], dst.size[1])
        self.gl("glBindFramebuffer", GL["GL_READ_FRAMEBUFFER"], src.name)
        if isinstance(dst, Framebuffer):
            self.gl("glBindFramebuffer", GL["GL_DRAW_FRAMEBUFFER"], dst.name)
            self.gl("glBlitFramebuffer", 0, 0, w, h, 0, 0, w, h, GL["GL_COLOR_BUFFER_BIT"],
                    GL["GL_NEAREST"])
        else:
            dst._bind()
            self.gl("glCopyTexSubImage2D", GL["GL_TEXTURE_2D"], 0, 0, 0, 0, 0, w, h)
        self.gl("glBindFramebuffer", GL["GL_FRAMEBUFFER"], self.fbo.name)

    # --- objects --------------------------------------------------------------------------

    def buffer(self, data: Any = None, *, reserve: int = 0, dynamic: bool = False) -> Buffer:
        return Buffer(self, data, reserve, dynamic)

    def texture(self, size: tuple[int, int], components: int, data: Any = None, *,
                samples: int = 0, alignment: int = 1, dtype: str = "f1") -> Texture:
        if samples:
            raise Error("GL ES 3.0 has no multisampled textures: use a renderbuffer")
        return Texture(self, size, components, data, alignment, dtype)

    def texture_cube(self, size: tuple[int, int], components: int, data: Any = None, *,
                     alignment: int = 1, dtype: str = "f1") -> TextureCube:
        return TextureCube(self, size, components, data, alignment, dtype)

    def depth_texture(self, size: tuple[int, int], data: Any = None, *, samples: int = 0,
                      alignment: int = 4) -> Texture:
        if samples:
            raise Error("GL ES 3.0 has no multisampled textures: use a renderbuffer")
        return Texture(self, size, 1, data, alignment, "f4", depth=True)

    def renderbuffer(self, size: tuple[int, int], components: int = 4, *, samples: int = 0,
                     dtype: str = "f1") -> Renderbuffer:
        return Renderbuffer(self, size, GL[_DTYPES[dtype][2][components - 1]], components,
                            samples, False)

    def depth_renderbuffer(self, size: tuple[int, int], *, samples: int = 0) -> Renderbuffer:
        return Renderbuffer(self, size, GL["GL_DEPTH_COMPONENT24"], 1, samples, True)

    def framebuffer(self, color_attachments: Any = (), depth_attachment: Any = None
                    ) -> Framebuffer:
        if not isinstance(color_attachments, (list, tuple)):
            color_attachments = [color_attachments]
        return Framebuffer.create(self, list(color_attachments), depth_attachment)

    def simple_framebuffer(self, size: tuple[int, int], components: int = 4, *,
                           samples: int = 0, dtype: str = "f1") -> Framebuffer:
        return self.framebuffer(self.renderbuffer(size, components, samples=samples,
                                                  dtype=dtype),
                                self.depth_renderbuffer(size, samples=samples))

    def program(self, vertex_shader: str, fragment_shader: str | None = None, *,
                geometry_shader: str | None = None, tess_control_shader: str | None = None,
                tess_evaluation_shader: str | None = None, varyings: Sequence[str] = ()
                ) -> Program:
        if geometry_shader or tess_control_shader or tess_evaluation_shader:
            raise Error("GL ES 3.0 has vertex and fragment shaders only")
        return Program(self, vertex_shader, fragment_shader, tuple(varyings))

    def vertex_array(self, program: Program, content: Sequence[tuple[Any, ...]],
                     index_buffer: Buffer | None = None, index_element_size: int = 4
                     ) -> VertexArray:
        return VertexArray(self, program, content, index_buffer, index_element_size)

    def release(self) -> None:
        """Destroys the context and its surface on the device (moderngl's ctx.release)."""
        if self.released:
            return
        self.released = True
        self.enc.vgpu("CONTEXT_DESTROY", self.ctx_id)
        self.enc.vgpu("SURFACE_DESTROY", self.surface_id)
        self.finish()
        self._ids.current = 0  # destroying the current context leaves none current
        self._ids.contexts.discard(self.ctx_id)
        self._ids.surfaces.discard(self.surface_id)


def _bytes(data: Any) -> bytes:
    if data is None:
        return b""
    if hasattr(data, "tobytes"):
        return data.tobytes()
    return bytes(data)


class Buffer:
    def __init__(self, ctx: Context, data: Any, reserve: int, dynamic: bool) -> None:
        raw = _bytes(data) if data is not None else None
        if raw is None and not reserve:
            raise Error("a buffer needs data or reserve")
        self.ctx = ctx
        self.size = len(raw) if raw is not None else reserve
        self.dynamic = dynamic
        self.name = self.glo = ctx._gen("buffer", "glGenBuffers")
        target = GL["GL_ARRAY_BUFFER"]
        ctx.gl("glBindBuffer", target, self.name)
        ctx.gl("glBufferData", target, self.size, raw,
               GL["GL_DYNAMIC_DRAW" if dynamic else "GL_STATIC_DRAW"])
        ctx._after_upload()

    def write(self, data: Any, *, offset: int = 0) -> None:
        raw = _bytes(data)
        if offset < 0 or offset + len(raw) > self.size:
            raise Error("data out of the buffer's range")
        target = GL["GL_ARRAY_BUFFER"]
        self.ctx.gl("glBindBuffer", target, self.name)
        self.ctx.gl("glBufferSubData", target, offset, len(raw), raw)
        self.ctx._after_upload()

    def orphan(self, size: int = -1) -> None:
        self.size = self.size if size < 0 else size
        target = GL["GL_ARRAY_BUFFER"]
        self.ctx.gl("glBindBuffer", target, self.name)
        self.ctx.gl("glBufferData", target, self.size, None,
                    GL["GL_DYNAMIC_DRAW" if self.dynamic else "GL_STATIC_DRAW"])

    def release(self) -> None:
        self.ctx._delete("buffer", "glDeleteBuffers", self.name)


class Texture:
    target = GL["GL_TEXTURE_2D"]

    def __init__(self, ctx: Context, size: tuple[int, int], components: int, data: Any,
                 alignment: int, dtype: str, depth: bool = False) -> None:
        if not 1 <= components <= 4 or dtype not in _DTYPES:
            raise Error(f"unsupported texture: {components} components of {dtype}")
        self.ctx = ctx
        self.width, self.height = self.size = (size[0], size[1])
        self.components, self.dtype, self.depth = components, dtype, depth
        self._filter = (LINEAR, LINEAR)
        self._repeat = (not depth, not depth)
        self.name = self.glo = ctx._gen("texture", "glGenTextures")
        self._bind()
        self._image(data, alignment)
        self._params()
        ctx._after_upload()

    def _formats(self) -> tuple[int, int, int]:
        if self.depth:
            return (GL["GL_DEPTH_COMPONENT24"], GL["GL_DEPTH_COMPONENT"],
                    GL["GL_UNSIGNED_INT"])
        gltype, _, internal, base = _DTYPES[self.dtype]
        return GL[internal[self.components - 1]], GL[base[self.components - 1]], GL[gltype]

    def _image(self, data: Any, alignment: int) -> None:
        internal, fmt, gltype = self._formats()
        self.ctx.gl("glPixelStorei", GL["GL_UNPACK_ALIGNMENT"], alignment)
        raw = _bytes(data) if data is not None else None
        self.ctx.gl("glTexImage2D", self.target, 0, internal, self.width, self.height, 0, fmt,
                    gltype, raw)

    def _params(self) -> None:
        g = self.ctx.gl
        g("glTexParameteri", self.target, GL["GL_TEXTURE_MIN_FILTER"], self._filter[0])
        g("glTexParameteri", self.target, GL["GL_TEXTURE_MAG_FILTER"], self._filter[1])
        if self.depth:
            g("glTexParameteri", self.target, GL["GL_TEXTURE_WRAP_S"], GL["GL_CLAMP_TO_EDGE"])
            g("glTexParameteri", self.target, GL["GL_TEXTURE_WRAP_T"], GL["GL_CLAMP_TO_EDGE"])
            g("glTexParameteri", self.target, GL["GL_TEXTURE_COMPARE_MODE"],
              GL["GL_COMPARE_REF_TO_TEXTURE"])
            g("glTexParameteri", self.target, GL["GL_TEXTURE_COMPARE_FUNC"], GL["GL_LEQUAL"])

    def _bind(self) -> None:
        self.ctx._unit(DEFAULT_TEXTURE_UNIT)
        self.ctx.gl("glBindTexture", self.target, self.name)

    def use(self, location: int = 0) -> None:
        self.ctx._unit(location)
        self.ctx.gl("glBindTexture", self.target, self.name)

    def write(self, data: Any, viewport: tuple[int, ...] | None = None, *, level: int = 0,
              alignment: int = 1) -> None:
        x, y, w, h = (0, 0, self.width, self.height) if viewport is None else (
            (0, 0, *viewport) if len(viewport) == 2 else viewport)
        _, fmt, gltype = self._formats()
        self._bind()
        self.ctx.gl("glPixelStorei", GL["GL_UNPACK_ALIGNMENT"], alignment)
        self.ctx.gl("glTexSubImage2D", self.target, level, x, y, w, h, fmt, gltype, _bytes(data))
        self.ctx._after_upload()

    def read(self, *, level: int = 0, alignment: int = 1) -> bytes:
        """The texture's pixels (moderngl's texture.read): ES has no glGetTexImage, so a
        framebuffer borrows it for one glReadPixels, one round trip."""
        if self.depth or self.target != GL["GL_TEXTURE_2D"]:
            raise Error("only colour 2D textures can be read back")
        ctx, target = self.ctx, GL["GL_FRAMEBUFFER"]
        fb = Framebuffer(ctx, ctx._gen("framebuffer", "glGenFramebuffers"),
                         (max(1, self.width >> level), max(1, self.height >> level)), [self],
                         None, 0)
        ctx.gl("glBindFramebuffer", target, fb.name)
        ctx.gl("glFramebufferTexture2D", target, GL["GL_COLOR_ATTACHMENT0"], self.target,
               self.name, level)
        ctx.gl("glBindFramebuffer", target, ctx.fbo.name)
        try:
            return fb.read(components=self.components, alignment=alignment, dtype=self.dtype)
        finally:
            fb.release()

    def build_mipmaps(self, base: int = 0, max_level: int = 1000) -> None:
        g = self.ctx.gl
        self._bind()
        g("glTexParameteri", self.target, GL["GL_TEXTURE_BASE_LEVEL"], base)
        g("glTexParameteri", self.target, GL["GL_TEXTURE_MAX_LEVEL"], max_level)
        g("glGenerateMipmap", self.target)
        self._filter = (LINEAR_MIPMAP_LINEAR, LINEAR)
        self._params()

    @property
    def filter(self) -> tuple[int, int]:
        return self._filter

    @filter.setter
    def filter(self, value: tuple[int, int]) -> None:
        self._filter = (value[0], value[1])
        self._bind()
        self._params()

    def _wrap(self, pname: str, repeat: bool) -> None:
        self._bind()
        self.ctx.gl("glTexParameteri", self.target, GL[pname],
                    GL["GL_REPEAT" if repeat else "GL_CLAMP_TO_EDGE"])

    @property
    def repeat_x(self) -> bool:
        return self._repeat[0]

    @repeat_x.setter
    def repeat_x(self, value: bool) -> None:
        self._repeat = (bool(value), self._repeat[1])
        self._wrap("GL_TEXTURE_WRAP_S", value)

    @property
    def repeat_y(self) -> bool:
        return self._repeat[1]

    @repeat_y.setter
    def repeat_y(self, value: bool) -> None:
        self._repeat = (self._repeat[0], bool(value))
        self._wrap("GL_TEXTURE_WRAP_T", value)

    def release(self) -> None:
        self.ctx._delete("texture", "glDeleteTextures", self.name)


class TextureCube(Texture):
    target = GL["GL_TEXTURE_CUBE_MAP"]

    def _image(self, data: Any, alignment: int) -> None:
        internal, fmt, gltype = self._formats()
        self.ctx.gl("glPixelStorei", GL["GL_UNPACK_ALIGNMENT"], alignment)
        raw = _bytes(data) if data is not None else None
        face = len(raw) // 6 if raw is not None else 0
        if raw is not None and face * 6 != len(raw):
            raise Error("cube map data is not six equal faces")
        for i in range(6):
            self.ctx.gl("glTexImage2D", GL["GL_TEXTURE_CUBE_MAP_POSITIVE_X"] + i, 0, internal,
                        self.width, self.height, 0, fmt, gltype,
                        raw[i * face:(i + 1) * face] if raw is not None else None)


class Renderbuffer:
    def __init__(self, ctx: Context, size: tuple[int, int], internal: int, components: int,
                 samples: int, depth: bool) -> None:
        self.ctx = ctx
        self.width, self.height = self.size = (size[0], size[1])
        self.components, self.samples, self.depth = components, samples, depth
        self.name = self.glo = ctx._gen("renderbuffer", "glGenRenderbuffers")
        rb = GL["GL_RENDERBUFFER"]
        ctx.gl("glBindRenderbuffer", rb, self.name)
        if samples:
            ctx.gl("glRenderbufferStorageMultisample", rb, samples, internal, *size)
        else:
            ctx.gl("glRenderbufferStorage", rb, internal, *size)

    def release(self) -> None:
        self.ctx._delete("renderbuffer", "glDeleteRenderbuffers", self.name)


class Framebuffer:
    def __init__(self, ctx: Context, name: int, size: tuple[int, int], colors: list[Any],
                 depth: Any, samples: int) -> None:
        self.ctx = ctx
        self.name = name
        self.glo = name
        self.size = (size[0], size[1])
        self.width, self.height = self.size
        self.color_attachments = tuple(colors)
        self.depth_attachment = depth
        self.samples = samples
        self.viewport = (0, 0, *self.size)

    @classmethod
    def create(cls, ctx: Context, colors: list[Any], depth: Any) -> Framebuffer:
        first = colors[0] if colors else depth
        if first is None:
            raise Error("a framebuffer needs an attachment")
        if any(a.size != first.size for a in [*colors, *([depth] if depth else [])]):
            raise Error("the attachments differ in size")
        fb = cls(ctx, ctx._gen("framebuffer", "glGenFramebuffers"), first.size, colors, depth,
                 getattr(first, "samples", 0))
        target = GL["GL_FRAMEBUFFER"]
        ctx.gl("glBindFramebuffer", target, fb.name)
        points = [GL["GL_COLOR_ATTACHMENT0"] + i for i in range(len(colors))]
        for point, att in zip([*points, GL["GL_DEPTH_ATTACHMENT"]], [*colors, depth],
                              strict=True):
            if att is None:
                continue
            if isinstance(att, Renderbuffer):
                ctx.gl("glFramebufferRenderbuffer", target, point, GL["GL_RENDERBUFFER"],
                       att.name)
            else:
                ctx.gl("glFramebufferTexture2D", target, point, GL["GL_TEXTURE_2D"], att.name, 0)
        ctx.gl("glDrawBuffers", len(points), points or [GL["GL_NONE"]])
        ctx.gl("glBindFramebuffer", target, ctx.fbo.name)  # as moderngl, the binding stays
        return fb

    def use(self) -> None:
        self.ctx._bind_fb(self)
        self.ctx.viewport = self.viewport

    def clear(self, red: float = 0.0, green: float = 0.0, blue: float = 0.0, alpha: float = 0.0,
              depth: float = 1.0, *, viewport: tuple[int, ...] | None = None,
              color: Sequence[float] | None = None) -> None:
        ctx, g = self.ctx, self.ctx.gl
        if color is not None:
            red, green, blue, alpha = (*color, 0.0, 0.0, 0.0, 0.0)[:4]
        current = ctx.fbo
        if current is not self:
            g("glBindFramebuffer", GL["GL_FRAMEBUFFER"], self.name)
        g("glClearColor", red, green, blue, alpha)
        g("glClearDepthf", depth)
        if viewport is not None:
            x, y, w, h = (0, 0, *viewport) if len(viewport) == 2 else viewport
            g("glEnable", GL["GL_SCISSOR_TEST"])
            g("glScissor", x, y, w, h)
        g("glClear", GL["GL_COLOR_BUFFER_BIT"] | GL["GL_DEPTH_BUFFER_BIT"])
        if viewport is not None:
            g("glDisable", GL["GL_SCISSOR_TEST"])
        if current is not self:
            g("glBindFramebuffer", GL["GL_FRAMEBUFFER"], current.name)

    def read(self, viewport: tuple[int, ...] | None = None, components: int = 3, *,
             attachment: int = 0, alignment: int = 1, dtype: str = "f1") -> bytes:
        """glReadPixels through the ring: one round trip."""
        x, y, w, h = (0, 0, *self.size) if viewport is None else (
            (0, 0, *viewport) if len(viewport) == 2 else viewport)
        gltype, itemsize, _, base = _DTYPES[dtype]
        row = w * components * itemsize
        stride = (row + alignment - 1) // alignment * alignment
        nbytes = stride * h
        ctx, g = self.ctx, self.ctx.gl
        out, view = ctx._reply(nbytes)
        g("glBindFramebuffer", GL["GL_READ_FRAMEBUFFER"], self.name)
        g("glReadBuffer", GL["GL_BACK"] if self.name == 0 else
          GL["GL_COLOR_ATTACHMENT0"] + attachment)
        g("glPixelStorei", GL["GL_PACK_ALIGNMENT"], alignment)
        g("glReadPixels", x, y, w, h, GL[base[components - 1]], GL[gltype], out)
        g("glBindFramebuffer", GL["GL_FRAMEBUFFER"], ctx.fbo.name)
        ctx.finish()
        return bytes(view[:nbytes])

    def release(self) -> None:
        if self.name:
            if self.ctx.fbo is self:
                self.ctx.screen.use()
            self.ctx._delete("framebuffer", "glDeleteFramebuffers", self.name)


class Uniform:
    """An active uniform (moderngl.Uniform): `.value = ...` and `.write(bytes)` send it at
    once; `.value` reads back what the guest last set."""

    def __init__(self, program: Program, name: str, location: int, gltype: int,
                 array_length: int) -> None:
        self.program = program
        self.name = name
        self.location = location
        self.gl_type = gltype
        self.array_length = array_length
        self.dimension, self.kind, self.columns = _TYPES.get(gltype, (1, "i", 0))  # samplers
        if self.columns:
            rows = self.dimension // self.columns
            shape = f"{self.columns}" if rows == self.columns else f"{self.columns}x{rows}"
            self._call = f"glUniformMatrix{shape}fv"
        else:
            self._call = _UNIFORM_CALLS[(self.kind, 0)].format(n=self.dimension)
        self._value: Any = None
        self._code = {"f": "f", "i": "i", "u": "I"}[self.kind]
        self._one = struct.Struct(f"<{self.dimension}{self._code}")
        # One element is what nearly every per-draw write sends: its command's head, once.
        head = (self.location, 1, 0) if self.columns else (self.location, 1)
        self._head_one = program.ctx.enc.head(self._call, self.dimension, *head)
        self._plain = array_length == 1 and gltype not in _BOOLS
        """A number or one flat tuple packs straight into the batch (the per-draw case)."""

    def _send(self, packed: bytes) -> None:
        ctx = self.program.ctx
        ctx._use_program(self.program.name)
        if len(packed) == self._one.size:
            ctx.enc.raw(self._head_one + packed)
            return
        count = len(packed) // (4 * self.dimension)
        if count * 4 * self.dimension != len(packed) or not 1 <= count <= self.array_length:
            raise Error(f"{self.name}: {len(packed)} bytes do not fit {self.array_length} "
                        f"x {self.dimension} elements")
        if self.columns:
            ctx.gl(self._call, self.location, count, 0, packed)
        else:
            ctx.gl(self._call, self.location, count, packed)

    @property
    def value(self) -> Any:
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        if self._plain:
            try:  # the common shapes: a number, or one flat tuple
                packed = (self._one.pack(value) if self.dimension == 1
                          else self._one.pack(*value))
            except (struct.error, TypeError):
                pass
            else:
                # _send's one-element case inlined: this runs once per draw call
                program = self.program
                ctx = program.ctx
                if ctx._program != program.name:
                    ctx._use_program(program.name)
                enc = ctx.enc
                batch = enc.batch  # the encoder's one bytearray, kept across take()
                batch += self._head_one
                batch += packed
                enc.commands += 1
                self._value = value
                return
        flat: list[Any] = []
        items = value if self.array_length > 1 else [value]
        for item in items:
            if hasattr(item, "ravel"):  # numpy arrays
                flat.extend(item.ravel().tolist())
            elif isinstance(item, (list, tuple)):
                for v in item:
                    flat.extend(v if isinstance(v, (list, tuple)) else [v])
            else:
                flat.append(item)
        if self.gl_type in _BOOLS:
            flat = [int(bool(v)) for v in flat]
        self._send(struct.pack(f"<{len(flat)}{self._code}", *flat))
        self._value = value

    def write(self, data: Any) -> None:
        self._send(_bytes(data))


_BOOLS = {GL["GL_BOOL"], GL["GL_BOOL_VEC2"], GL["GL_BOOL_VEC3"], GL["GL_BOOL_VEC4"]}


class Attribute:
    def __init__(self, name: str, location: int, gltype: int, array_length: int) -> None:
        self.name = name
        self.location = location
        self.gl_type = gltype
        self.array_length = array_length
        dimension, _, columns = _TYPES.get(gltype, (1, "f", 0))
        self.dimension = dimension
        self.rows = columns or 1  # locations one attribute takes (matrix columns)


class Program:
    """Compiled and linked on the host; its status, log and active uniforms and attributes
    come back in three round trips, once, when it is created."""

    def __init__(self, ctx: Context, vertex: str, fragment: str | None,
                 varyings: tuple[str, ...]) -> None:
        self.ctx = ctx
        g = ctx.gl
        stages = [(GL["GL_VERTEX_SHADER"], vertex)]
        if fragment is not None:
            stages.append((GL["GL_FRAGMENT_SHADER"], fragment))
        shaders = []
        for kind, source in stages:
            s = ctx._name("program")
            g("glCreateShader", s, kind)
            g("glShaderSource", s, 1, source)
            g("glCompileShader", s)
            shaders.append(s)
        self.name = ctx._name("program")
        self.glo = self.name
        g("glCreateProgram", self.name)
        for s in shaders:
            g("glAttachShader", self.name, s)
        if varyings:
            joined = b"".join(v.encode() + b"\0" for v in varyings)
            g("glTransformFeedbackVaryings", self.name, len(varyings), joined,
              GL["GL_INTERLEAVED_ATTRIBS"])
        g("glLinkProgram", self.name)
        # Round 1: compile and link status, logs, how many uniforms and attributes.
        status = [self._int("glGetShaderiv", s, GL["GL_COMPILE_STATUS"]) for s in shaders]
        logs = [self._log("glGetShaderInfoLog", s) for s in shaders]
        linked = self._int("glGetProgramiv", self.name, GL["GL_LINK_STATUS"])
        link_log = self._log("glGetProgramInfoLog", self.name)
        n_uniforms = self._int("glGetProgramiv", self.name, GL["GL_ACTIVE_UNIFORMS"])
        n_attribs = self._int("glGetProgramiv", self.name, GL["GL_ACTIVE_ATTRIBUTES"])
        for s in shaders:
            g("glDeleteShader", s)  # freed with the program, as moderngl's are
            ctx._names["program"].free(s)
        ctx.finish()
        for (kind, _), ok, log in zip(stages, status, logs, strict=True):
            if not ok():
                stage = "vertex_shader" if kind == GL["GL_VERTEX_SHADER"] else "fragment_shader"
                raise Error(f"GLSL Compiler failed\n\n{stage}\n{'=' * len(stage)}\n{log()}")
        if not linked():
            raise Error(f"GLSL Linker failed\n\n{link_log()}")
        self.members: dict[str, Uniform | Attribute] = {}
        # Round 2: what each active uniform and attribute is; round 3: where it is.
        uniforms = [self._active("glGetActiveUniform", i) for i in range(n_uniforms())]
        attribs = [self._active("glGetActiveAttrib", i) for i in range(n_attribs())]
        ctx.finish()
        active = [("u", *u()) for u in uniforms] + [("a", *a()) for a in attribs]
        active = [m for m in active if not m[1].startswith("gl_")]
        where = []
        for kind, name, _, _ in active:
            call = "glGetUniformLocation" if kind == "u" else "glGetAttribLocation"
            out, view = ctx._reply(4)
            g(call, self.name, name.encode() + b"\0", out)
            where.append(view)
        ctx.finish()
        for (kind, name, size, gltype), view in zip(active, where, strict=True):
            location = _I32.unpack_from(view)[0]
            base = name[:-3] if name.endswith("[0]") else name
            if location < 0:
                continue  # in a uniform block: not set one by one
            self.members[base] = (Uniform(self, base, location, gltype, size) if kind == "u"
                                  else Attribute(base, location, gltype, size))

    def _int(self, call: str, name: int, pname: int) -> Any:
        out, view = self.ctx._reply(4)
        self.ctx.gl(call, name, pname, out)
        return lambda: _I32.unpack_from(view)[0]

    def _log(self, call: str, name: int) -> Any:
        length, lview = self.ctx._reply(4)
        text, tview = self.ctx._reply(INFO_LOG_CAPACITY)
        self.ctx.gl(call, name, INFO_LOG_CAPACITY, length, text)
        return lambda: bytes(tview[:max(0, min(_I32.unpack_from(lview)[0],
                                                INFO_LOG_CAPACITY))]).decode("utf-8", "replace")

    def _active(self, call: str, index: int) -> Any:
        length, lview = self.ctx._reply(4)
        size, sview = self.ctx._reply(4)
        gltype, tview = self.ctx._reply(4)
        name, nview = self.ctx._reply(NAME_CAPACITY)
        self.ctx.gl(call, self.name, index, NAME_CAPACITY, length, size, gltype, name)

        def answer() -> tuple[str, int, int]:
            n = max(0, min(_I32.unpack_from(lview)[0], NAME_CAPACITY - 1))
            return (bytes(nview[:n]).decode("utf-8", "replace"), _I32.unpack_from(sview)[0],
                    _U32.unpack_from(tview)[0])
        return answer

    def __getitem__(self, key: str) -> Any:
        return self.members[key]

    def __contains__(self, key: str) -> bool:
        return key in self.members

    def get(self, key: str, default: Any) -> Any:
        return self.members.get(key, default)

    def __iter__(self) -> Any:
        return iter(self.members)

    def release(self) -> None:
        if self.ctx._program == self.name:
            self.ctx._program = 0
        self.ctx.gl("glDeleteProgram", self.name)
        self.ctx._names["program"].free(self.name)


def _parse_format(fmt: str) -> tuple[list[tuple[int, str, int] | int], int, int]:
    """moderngl's buffer format ('3f 2f', '4f1 /i', '3f 4x'): a list of (components,
    letter, bytes per component) or padding byte counts, the stride and the divisor."""
    tokens = fmt.split()
    divisor = 0
    if tokens and tokens[-1].startswith("/"):
        divisor = _DIVISORS[tokens.pop()[1:]]
    items: list[tuple[int, str, int] | int] = []
    stride = 0
    for tok in tokens:
        m = _FORMAT_TOKEN.match(tok)
        if m is None:
            raise Error(f"invalid format token {tok!r} in {fmt!r}")
        count = int(m.group(1) or 1)
        letter = m.group(2)
        size = int(m.group(3) or (1 if letter == "x" else 4))
        if letter == "x":
            items.append(count * size)
            stride += count * size
        else:
            if (letter, size) not in _ATTRIB_TYPES:
                raise Error(f"unsupported attribute type {tok!r}")
            items.append((count, letter, size))
            stride += count * size
    return items, stride, divisor


class VertexArray:
    def __init__(self, ctx: Context, program: Program, content: Sequence[tuple[Any, ...]],
                 index_buffer: Buffer | None, index_element_size: int) -> None:
        self.ctx = ctx
        self.program = program
        self.index_buffer = index_buffer
        self.index_element_size = index_element_size
        self.instances = 1
        self._draws: dict[tuple[int, int, int, int], bytes] = {}  # encoded draw commands
        self.name = self.glo = ctx._gen("vertex array", "glGenVertexArrays")
        g = ctx.gl
        ctx._bind_vao(self.name)
        counts = []
        for buf, fmt, *names in content:
            items, stride, divisor = _parse_format(fmt)
            attrs = [i for i in items if not isinstance(i, int)]
            if len(attrs) != len(names):
                raise Error(f"format {fmt!r} has {len(attrs)} attributes, {len(names)} named")
            g("glBindBuffer", GL["GL_ARRAY_BUFFER"], buf.name)
            offset = 0
            it = iter(names)
            for item in items:
                if isinstance(item, int):
                    offset += item
                    continue
                count, letter, size = item
                self._pointer(program, next(it), count, letter, size, stride, offset, divisor)
                offset += count * size
            if divisor == 0 and stride:
                counts.append(buf.size // stride)
        if index_buffer is not None:
            if index_element_size not in _INDEX_TYPES:
                raise Error("index_element_size is 1, 2 or 4")
            g("glBindBuffer", GL["GL_ELEMENT_ARRAY_BUFFER"], index_buffer.name)
            self.vertices = index_buffer.size // index_element_size
        else:
            self.vertices = min(counts) if counts else 0

    def _pointer(self, program: Program, name: str, count: int, letter: str, size: int,
                 stride: int, offset: int, divisor: int) -> None:
        attr = program.members.get(name)
        if not isinstance(attr, Attribute):
            raise Error(f"{name!r} is not an active attribute of the program")
        gltype, normalized, integer = _ATTRIB_TYPES[(letter, size)]
        per_location = count // attr.rows
        g = self.ctx.gl
        for r in range(attr.rows):
            loc = attr.location + r
            at = offset + r * per_location * size
            g("glEnableVertexAttribArray", loc)
            if integer:
                g("glVertexAttribIPointer", loc, per_location, GL[gltype], stride, at)
            else:
                g("glVertexAttribPointer", loc, per_location, GL[gltype], int(normalized),
                  stride, at)
            if divisor:
                g("glVertexAttribDivisor", loc, divisor)

    def render(self, mode: int = TRIANGLES, vertices: int = -1, *, first: int = 0,
               instances: int = -1) -> None:
        ctx = self.ctx
        if vertices < 0:
            vertices = self.vertices
        if instances < 0:
            instances = self.instances
        # the state checks and the append inlined: this runs once per draw call
        if ctx._program != self.program.name:
            ctx._use_program(self.program.name)
        if ctx._vao != self.name:
            ctx._bind_vao(self.name)
        key = (mode, vertices, first, instances)
        draw = self._draws.get(key)
        if draw is None:
            if self.index_buffer is not None:
                draw = ctx.enc.encode("glDrawElementsInstanced", mode, vertices,
                                      GL[_INDEX_TYPES[self.index_element_size]],
                                      first * self.index_element_size, instances)
            else:
                draw = ctx.enc.encode("glDrawArraysInstanced", mode, first, vertices, instances)
            if len(self._draws) < MAX_CACHED_DRAWS:
                self._draws[key] = draw
        enc = ctx.enc
        batch = enc.batch
        batch += draw
        enc.commands += 1
        if len(batch) >= BATCH_FLUSH_BYTES:
            ctx.flush()

    def release(self) -> None:
        if self.ctx._vao == self.name:
            self.ctx._bind_vao(0)
        self.ctx._delete("vertex array", "glDeleteVertexArrays", self.name)
