"""The 3D ring's executor: runs copied batches (docs/3d-ring.md) on the renderer's GL context
and presents what they draw onto the renderer's QXL surfaces.

GL commands run in C (`vgpu._gl3d`, csrc/gl3d/): the batch walk, the generated decoders,
contexts, name tables, quotas and blob-size rules. `g3_execute` returns at each vgpu command
(opcode < 0x100); this module runs those (few per frame): contexts, drawables, PRESENT and
FENCE. PRESENT's words and rects are checked and clipped in C (`g3_present_decode`), and its
steady case, a guest framebuffer's RGBA8 texture staged onto the primary, runs inside
`g3_execute` (`g3_present_target`); this module notes what those did (damage, staged rects)
when `g3_execute` returns, before anything else runs. Nothing a batch says raises out of
`execute`: faults stay with their context (GL errors, lost contexts) or are counted in
Vgpu3dFence.errors.

The contract with the 2D renderer on their one GL context. What the 2D path sets before
each draw and what it relies on and never sets are in vgpu/render/context.py; this side:

- What the executor restores: after `g3_batch_begin`, the first guest context to run
  saves the whole non-object state that a guest can change (caps, blend, depth, stencil,
  raster state, viewport, scissor, pixel store, hints, buffer/framebuffer/renderbuffer/
  program/vertex-array/transform-feedback bindings, the texture units guests have used and
  their samplers, the indexed uniform buffer bindings) and `g3_to_2d` puts it back before
  the 2D path next uses the GL (`GlContext._settle_3d`: a batch leaves its last context's
  state on, so a guest drawing frame after frame switches nothing, ~35 us of the render
  thread a frame at 256x256 here) and before this module draws with moderngl (PRESENT in
  Python; the steady PRESENT in C copies under the context's state). Guests are held to ES
  3.0's enums for context state (caps, targets, pixel store, hints, units < 32), so no
  desktop-only state can leak past the restore. Guest contexts keep their own copy of the
  same state, saved on switch.
- Who owns what: the renderer owns its surfaces' textures, framebuffers, scratch copies and
  programs; the executor owns the drawables (a framebuffer with an RGBA8 colour texture, or
  a multisampled renderbuffer, and a depth/stencil renderbuffer), its staging texture for
  presenting guest framebuffers and multisampled drawables, and its present program. Guest
  objects are reached only through their context's name tables; host names never reach a
  guest. Texture units: guests use 0-31; the 2D path binds what it needs before each draw.
- Ordering: `execute` flushes the renderer's queued 2D work first, so 3D output lands on
  top of what the 2D ring drew before the batch; PRESENT notes damage in the renderer, so
  clients get it and UPDATE_AREA writes it back (the renderer's unsynced rects).
- PRESENT flips the picture (GL's rows count up, a QXL surface's down), swaps red and
  blue into the surface's byte order and keeps what the surface's format keeps (no alpha
  on xRGB; 5 and 6 bits a channel on the 16-bit formats, as the 2D path stores them). On
  a GL that rasterizes on the CPU (llvmpipe), by copies: a read (GL_MESA_pack_invert)
  into the renderer's host copy of the surface, which the frame for clients is read from
  anyway (made at the surface's first present), and a swizzle in place, in strips that
  stay in the cache, where a flipping, swizzling draw is a fragment pass (1920x1080 on
  llvmpipe, 100 draw calls a frame: 3.8 ms of the render thread's CPU per present, against
  about 16 ms more of llvmpipe's threads by drawing). The surface's texture gets those
  bytes only when the GL next draws on it, samples it or reads it (`Surface.ahead`,
  `upload`): a guest presenting frame after frame onto the primary pays no upload (about
  1 ms a frame at 1920x1080). A single-sampled RGBA8 texture presented onto the primary
  (a drawable, a guest's framebuffer texture: what a guest presents frame after frame) is
  first copied on the GL's side into the primary's staging texture (`Surface.staged`,
  `land`), and read into the host copy only when something wants the surface: the frame
  for clients, UPDATE_AREA, a 2D operation, an older present under a newer one. So the
  read, and its wait for the frame's rasterization, come at most once per frame for
  clients instead of once per present (the executor's FENCE then no longer waits for
  llvmpipe to rasterize the frame, as it never did for draws). On a GPU, by drawing the
  source texture (no readback). A multisampled or renderbuffer source is first resolved
  into a staging texture. A read or a draw waits for the frame's rasterization on
  llvmpipe, as any swap does, in C (without the interpreter lock).

What the executor checks itself and what it leaves to the host GL (Mesa): every length,
blob, name, quota and answer reference is checked in C before GL runs. Draws are checked
where a driver would read memory it does not own: non-indexed draws against the sizes of
the buffers every enabled array reads (instanced arrays by instance count), indexed draws
for the index range inside the element buffer; client-side arrays (no buffer bound) are
refused. The vertices indices name are fetched by the driver, which bounds them: llvmpipe's
vertex fetch clamps to each buffer's size (a GPU driver needs robust buffer access for the
same). Uniform-buffer, texture, sub-data and copy ranges are GL's own checks. Shader
compilation is Mesa's. glClientWaitSync never blocks (its timeout is held at 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import moderngl

from vgpu._gl3d import ffi, lib
from vgpu.device.abi import lib as abi
from vgpu.device.glwire import GL_OPCODE_BASE, VGPU_COMMANDS
from vgpu.render import enums as E
from vgpu.render.context import PRIMARY
from vgpu.render.errors import RenderError
from vgpu.render.readback import _add_rects
from vgpu.render.region import Box, intersect

if TYPE_CHECKING:
    from vgpu.device.backend import Gl3dGuest
    from vgpu.render.gl import Renderer

MAX_DRAWABLES = 64
"""Drawables alive at once: a guest's EGL keeps one per window or pbuffer; more than any
desktop's windows, and a bound on what a guest can make us allocate."""

MAX_DRAWABLE_PIXELS = 64 << 20
"""Pixels (times samples) of all drawables together: 256 MiB of RGBA8 plus depth, several
4K windows with 4x multisampling, while the host keeps memory for everything else."""

MAX_SOURCE_COORD = 1 << 16
"""Source corners beyond this are outside every framebuffer (GL's largest is 16K-32K): such a
present copies nothing, and no blit is made with coordinates near 2^31, where Mesa's
clipping overflows."""

MAX_SOURCE_HANDLES = 16
"""moderngl handles on guest textures that presents sample, kept (a name and a size each,
nothing of the GL's): a guest presents from a few framebuffers; more start the set over."""
MAX_AHEAD_RECTS = 16
"""Rects a surface keeps whose presented pixels are in its host copy only (Surface.ahead);
past this many they are uploaded at once: a guest presents the same few rects frame after
frame, and a bounding box would overwrite what 2D drew around them."""
MAX_STAGED_RECTS = 16
"""Rects a surface keeps whose presented pixels are in its staging texture only
(Surface.staged); past this many they are read into its host copy at once: a guest presents
the same few rects frame after frame."""

SOFTWARE_RASTERIZERS = ("llvmpipe", "softpipe")
"""GL_RENDERER prefixes of Mesa's CPU rasterizers, where a draw sampling a texture waits for
the rendering into it to finish, and PRESENT copies rather than draws."""

_OP = {name: op for name, (op, _) in VGPU_COMMANDS.items()}
_BODY = {op: words for op, words in VGPU_COMMANDS.values()}
_FENCE, _PRESENT = _OP["FENCE"], _OP["PRESENT"]
_FENCE_WORDS = _BODY[_FENCE]
_FENCE_HEADER = _FENCE | _FENCE_WORDS << 16
_SURFACE_FLAGS = abi.VGPU_3D_SURFACE_DEPTH | abi.VGPU_3D_SURFACE_STENCIL
_GL_RGBA8 = 0x8058
"""The one source format a present stages by a GL-side copy (g3_blit into an RGBA8 texture
keeps its bytes exactly; other formats would convert there, not as the read converts)."""
_KEEP = {E.SURFACE_FMT_32_ARGB: lib.G3_KEEP_ARGB, E.SURFACE_FMT_32_xRGB: lib.G3_KEEP_XRGB,
         E.SURFACE_FMT_16_555: lib.G3_KEEP_555, E.SURFACE_FMT_16_565: lib.G3_KEEP_565}
"""What each QXL surface format PRESENT writes onto keeps of a pixel (G3_KEEP_* in
csrc/gl3d/gl3d.h); the 1- and 8-bit alpha-only formats hold no picture."""

_PRESENT_VS = """#version 330 core
uniform vec4 u_rect;   // x0, y0, x1, y1 in destination pixels
uniform vec2 u_size;   // destination size
const vec2 corners[4] = vec2[](vec2(0, 0), vec2(1, 0), vec2(0, 1), vec2(1, 1));
void main() {
    vec2 p = mix(u_rect.xy, u_rect.zw, corners[gl_VertexID]);
    gl_Position = vec4(p / u_size * 2.0 - 1.0, 0.0, 1.0);
}
"""
# Texture rows of a QXL surface are its memory rows, top-down, and its channels are the
# memory bytes (B, G, R, A for the 32-bit formats): the GL picture (rows bottom-up, RGBA)
# is flipped and swizzled on the way.
_PRESENT_FS = """#version 330 core
uniform sampler2D u_src;
uniform ivec4 u_map;   // source x, source top row, destination x, destination y
uniform int u_keep;  // G3_KEEP_*: ARGB 0, xRGB 1, 555 2, 565 3
out vec4 color;
void main() {
    // the rects drawn are clipped to the source: every fetch is inside it
    ivec2 d = ivec2(gl_FragCoord.xy);
    vec4 c = texelFetch(u_src, ivec2(u_map.x + d.x - u_map.z, u_map.y - (d.y - u_map.w)), 0);
    color = vec4(c.b, c.g, c.r, u_keep == 0 ? c.a : 1.0);
    if (u_keep >= 2) {  // 5 or 6 bits a channel, the top bits repeated below (g3_present_copy)
        uvec3 u = uvec3(round(color.rgb * 255.0));
        uvec3 bits = uvec3(5u, u_keep == 3 ? 6u : 5u, 5u);
        u = (u >> (8u - bits) << (8u - bits)) | (u >> bits);
        color.rgb = vec3(u) / 255.0;
    }
}
"""


def _bounds(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes))


@dataclass(slots=True, eq=False)
class _Drawable:
    names: Any  # uint32_t[3]: framebuffer, colour texture/renderbuffer, depth-stencil
    width: int
    height: int
    samples: int
    texture: moderngl.Texture | None  # the colour texture wrapped for sampling (1 sample)


PRESENTS_NOTED_AT = lib.G3_MAX_PRESENTED // 2
"""Presents g3_execute ran that a batch notes before it runs (they wait for whatever settles
the executor otherwise: `Renderer._settle_3d`); past G3_MAX_PRESENTED, g3_execute leaves a
PRESENT to Python, which notes the rest first."""


class Gl3dExecutor:
    """Runs 3D batches for `Renderer.execute_3d`; see the module docstring. One render
    thread calls everything."""

    def __init__(self, renderer: Renderer, *, present_copy: bool | None = None) -> None:
        """present_copy: PRESENT by copies (where the GL offers GL_MESA_pack_invert) or
        False by drawing; None: by copies on a GL that rasterizes on the CPU, by drawing on
        a GPU (where a copy would be a readback)."""
        self.renderer = renderer
        self.ctx = renderer.ctx
        self._host = lib.g3_new()
        if self._host == ffi.NULL:
            raise RuntimeError(f"3D executor: {ffi.string(lib.g3_last_error()).decode()}")
        self._max_size = int(lib.g3_max_renderbuffer_size(self._host))
        self._max_samples = int(lib.g3_max_samples(self._host))
        self._drawables: dict[int, _Drawable] = {}
        self._drawable_pixels = 0
        self._program = self.ctx.program(vertex_shader=_PRESENT_VS, fragment_shader=_PRESENT_FS)
        self._vao = self.ctx.vertex_array(self._program, [])
        # a guest texture's own filter may want mipmaps it lacks (then it samples as black):
        # presents sample level 0 through this sampler instead
        self._sampler = self.ctx.sampler(filter=(moderngl.NEAREST, moderngl.NEAREST))
        self._staging: tuple[moderngl.Texture, moderngl.Framebuffer] | None = None
        self._read_texture = ffi.new("uint32_t[4]")  # g3_read_texture's answer
        self._sources: dict[tuple[int, int, int], moderngl.Texture] = {}
        # Mesa's software rasterizers finish a texture's pending rendering before a draw
        # samples it, inside the moderngl call that holds the interpreter lock: there the
        # present waits first, in C (`wait_gl`); a GPU samples without waiting
        renderer_name = self.ctx.info.get("GL_RENDERER", "")
        self._sampling_waits = renderer_name.startswith(SOFTWARE_RASTERIZERS)
        self.present_copy = self._sampling_waits if present_copy is None else present_copy
        self._counters = ffi.new("struct g3_counters *")
        self._memory: tuple[int, int, Any] | None = None  # what _set_memory last gave C
        self._target: tuple[int, int, int] | None = None  # what _set_target last gave C
        self._decoded = ffi.new("struct g3_present *")  # g3_present_decode's answer
        self._run = ffi.new("struct g3_run *")  # g3_run's state and answer
        self._presented = lib.g3_presented(self._host)  # the PRESENTs g3_execute ran
        self.current_context = 0
        """The context whose commands are running (0: none), for the device's watchdog."""
        self.busy_since: float | None = None
        """time.monotonic() when the running batch started, or a read of staged presents
        (`land`: it waits for the GL to finish their frames); None otherwise."""
        self._staged_by = 0  # the context of the latest staged present, for the watchdog
        self._presents = 0
        self._frame_waits = 0
        self._waits_at_present = 0

    @property
    def presents(self) -> int:
        """PRESENTs run so far."""
        self.renderer._settle_3d()  # those g3_execute ran are counted as they are noted
        return self._presents

    @property
    def frame_waits(self) -> int:
        """Host waits (glFinish, readbacks, query results) between the last two PRESENTs:
        zero in a steady state of drawing and presenting."""
        self.renderer._settle_3d()
        return self._frame_waits

    # --- the batch -------------------------------------------------------------------

    def execute(self, batch: bytes | bytearray | memoryview, guest: Gl3dGuest) -> None:
        n = len(batch) // 4
        buf = ffi.from_buffer("uint8_t[]", batch)
        if int(ffi.cast("uintptr_t", buf)) % 4:  # C reads whole words
            batch = bytes(batch)[: 4 * n]  # a new bytes object's data is aligned
            buf = ffi.from_buffer("uint8_t[]", batch)
        self.renderer.flush()  # 2D work queued before this batch is drawn first
        if n == 1 + _FENCE_WORDS and (lone := ffi.cast("uint32_t *", buf))[0] == _FENCE_HEADER:
            # a batch of one FENCE (what a guest driver's gl_fence sends after each frame):
            # no GL, so no state to save and restore
            self._fence(lone[1:n], guest)
            guest.signal()  # no GL follows
            return
        self._set_memory(guest)
        self._set_target()
        self.busy_since = time.monotonic()
        if self._presented.records >= PRESENTS_NOTED_AT:
            self._take_presented()  # g3_execute runs a batch's presents behind those
        run = self._run
        run.pos = 0
        ended = False
        words = None  # Python reads the few vgpu commands' words through a view: no copy
        self.current_context = lib.g3_current(self._host)
        # the last batch's fence, as this thread goes into C (Gl3dGuest), with no other C
        # call between the two: each lets a woken guest that waits for the interpreter lock
        # take it, which costs a wake-up on both sides
        guest.signal()
        try:
            while True:
                lib.g3_run(self._host, buf, n, run)  # to the end, or a command left here
                pos = run.pos
                if pos >= n:
                    ended = True
                    break
                if words is None:
                    words = memoryview(batch).cast("B")[: 4 * n].cast("I")
                header = words[pos]
                op, body = header & 0xFFFF, header >> 16
                if body > n - pos - 1:  # the header runs past the batch
                    self._lose_current(guest)
                    break
                run.pos = pos + 1 + body
                if self._presented.records:  # noted before Python runs a command
                    self._take_presented()
                self._vgpu(op, words[pos + 1 : run.pos].tolist(), guest, buf + 4 * (pos + 1))
                self.current_context = lib.g3_current(self._host)
        finally:
            if not ended:  # left before g3_run ended the batch
                run.fenced = 0
                run.state_on = lib.g3_batch_end(self._host)
                run.lost = lib.g3_take_lost(self._host)
            # a context's state stays on and presents wait to be noted, for the next batch
            if run.state_on or self._presented.records:
                self.renderer._3d_pending = self._settle
            for _ in range(run.lost):
                guest.count("lost_contexts")
            self.current_context = 0
            self.busy_since = None
        if run.fenced:
            # the batch's last command (a frame's end), written once the batch has ended (its
            # interrupt at the next Gl3dGuest.signal), so a guest that sees it finds this
            # thread done with the batch
            self._fence(run.fence, guest)

    def _settle(self) -> None:
        """Notes the presents g3_execute ran and puts the 2D path's GL state back (for
        `Renderer._settle_3d`, after batches left them)."""
        if self._presented.records:
            self._take_presented()
        lib.g3_to_2d(self._host)

    def _set_memory(self, guest: Gl3dGuest) -> None:
        table = guest.slot_table()
        if (guest.base, guest.size, table) == self._memory:
            return  # as the last batch had it (memslots change rarely)
        self._memory = (guest.base, guest.size, table)
        lib.g3_set_memory(self._host, guest.base, guest.size)
        id_bits, gen_bits, slots = table
        k = len(slots)
        start = ffi.new("uint64_t[]", max(k, 1))
        end = ffi.new("uint64_t[]", max(k, 1))
        gen = ffi.new("uint32_t[]", max(k, 1))
        valid = ffi.new("uint8_t[]", max(k, 1))
        for i, s in enumerate(slots):
            if s is not None:
                start[i], end[i], gen[i] = s
                valid[i] = 1
        lib.g3_set_slots(self._host, id_bits, gen_bits, k, start, end, gen, valid)

    def _set_target(self) -> None:
        """Lets g3_execute run PRESENT's common case onto the primary (a GL-side copy into
        its staging texture, as _present does) once the primary has a host copy and a
        staging texture, as _present made them."""
        surf = self.renderer._surfaces.get(PRIMARY)
        target = None
        if (surf is not None and surf.staging is not None and surf.shadow is not None
                and self.present_copy and surf.fmt in _KEEP):
            target = (surf.width, surf.height, surf.staging[1].glo)
        if target != self._target:
            self._target = target
            lib.g3_present_target(self._host, PRIMARY, *(target or (0, 0, 0)))

    def _take_presented(self) -> None:
        """Notes the PRESENTs g3_execute ran (staged onto the primary), as _present notes
        its own."""
        r = self._presented
        at, records = 0, []
        for i in range(r.records):
            n = r.n[i]
            records.append(([tuple(b) for b in r.box[at : at + n]], int(r.waits[i]),
                            tuple(r.area[i])))
            at += n
        r.records = r.boxes = 0  # taken once, whatever the noting below meets
        surf = self.renderer._surfaces[PRIMARY]  # the target (_set_target)
        for boxes, waits, area in records:
            self._staged(surf, boxes)
            self._presented_onto(surf, boxes, boxes, waits, area)

    def _lose_current(self, guest: Gl3dGuest) -> None:
        current = lib.g3_current(self._host)
        if current:
            lib.g3_lose(self._host, current)
        else:
            guest.count("errors")

    def _vgpu(self, op: int, args: list[int], guest: Gl3dGuest, body: Any) -> None:
        """Runs a vgpu command that g3_execute left (`body`: its words in the batch)."""
        want = _BODY.get(op)
        if want is None or op >= GL_OPCODE_BASE or (
                len(args) != want and not (op == _PRESENT and len(args) >= want)):
            # unknown, or a body of the wrong length: the stream of the current context
            # cannot be trusted any further
            self._lose_current(guest)
            return
        try:
            ok = self._run_vgpu(op, args, guest, body)
        except moderngl.Error:  # the host GL refused what the guest asked (memory, sizes)
            ok = False
        if not ok:
            guest.count("errors")

    def _fence(self, args: Any, guest: Gl3dGuest) -> None:
        """`args`: a FENCE's body words (a list, or g3_run's array)."""
        guest.fence(args[0] | args[1] << 32, bool(args[2] & abi.VGPU_3D_FENCE_INTERRUPT))

    def _run_vgpu(self, op: int, args: list[int], guest: Gl3dGuest, body: Any) -> bool:
        ok = True
        if op == _PRESENT:  # g3_execute left it: never on a lost context
            ok = self._present(args, body)
        elif op == _FENCE:
            self._fence(args, guest)
        elif op == _OP["CONTEXT_CREATE"]:
            ok = lib.g3_context_create(self._host, *args) == 0
        elif op == _OP["CONTEXT_DESTROY"]:
            ok = lib.g3_context_destroy(self._host, args[0]) == 0
        elif op == _OP["MAKE_CURRENT"]:
            ok = self._make_current(*args)
        elif op == _OP["SURFACE_CREATE"]:
            ok = self._surface_create(*args)
        elif op == _OP["SURFACE_DESTROY"]:
            ok = self._surface_destroy(args[0])
        return ok

    # --- contexts and drawables ---------------------------------------------------------

    def _make_current(self, ctx: int, surface: int) -> bool:
        d = self._drawables.get(surface) if surface else None
        if surface and d is None:
            return False
        fbo, w, h = (int(d.names[0]), d.width, d.height) if d else (0, 0, 0)
        return lib.g3_make_current(self._host, ctx, fbo, w, h) == 0

    def _surface_create(self, sid: int, width: int, height: int, flags: int,
                        samples: int) -> bool:
        samples = max(samples, 1)
        if (sid == 0 or sid in self._drawables or len(self._drawables) >= MAX_DRAWABLES
                or not (1 <= width <= self._max_size and 1 <= height <= self._max_size)
                or flags & ~_SURFACE_FLAGS or samples > max(self._max_samples, 1)
                or self._drawable_pixels + width * height * samples > MAX_DRAWABLE_PIXELS):
            return False
        lib.g3_to_2d(self._host)
        names = ffi.new("uint32_t[3]")
        if lib.g3_surface_new(self._host, width, height, flags, samples, names) != 0:
            return False
        tex = None
        if samples == 1:
            tex = self.ctx.external_texture(int(names[1]), (width, height), 4, 0, "f1")
        self._drawables[sid] = _Drawable(names, width, height, samples, tex)
        self._drawable_pixels += width * height * samples
        return True

    def _surface_destroy(self, sid: int) -> bool:
        d = self._drawables.pop(sid, None)
        if d is None:
            return False
        lib.g3_to_2d(self._host)
        lib.g3_surface_free(self._host, d.names, d.samples)
        self._drawable_pixels -= d.width * d.height * d.samples
        return True

    # --- present ------------------------------------------------------------------------

    def _present(self, args: list[int], body: Any) -> bool:
        surf = self.renderer._surfaces.get(args[5])
        if surf is None or surf.fmt not in _KEEP:
            return False
        # the words, rects and source framebuffer are checked (and the rects clipped) in C,
        # as g3_execute checks the PRESENTs it runs itself
        p = self._decoded
        k = lib.g3_present_decode(self._host, body, len(args), surf.width, surf.height, p)
        if k <= 0:
            return k == 0  # refused, or clipped away entirely
        boxes: list[Box] = [tuple(b) for b in p.boxes[0:k]]
        fb, x, y, h, dst_x, dst_y, src_fbo = p.fb, p.x, p.y, p.h, p.dst_x, p.dst_y, p.src_fbo
        lib.g3_to_2d(self._host)
        drawable = self._current_drawable() if fb == 0 else None
        if fb == 0 and drawable is None:
            return False
        # the source of the damaged part only: its left column and its top row (GL's rows
        # count up) at the destination's (bx0, by0)
        bx0, by0, bx1, by1 = _bounds(boxes)
        src_x, src_top = x + bx0 - dst_x, y + h - 1 - (by0 - dst_y)
        src = self._source_texture(drawable, src_fbo)
        read_fbo = int(drawable.names[0]) if drawable is not None else src_fbo
        if src is not None:
            # sampled where it is, without a copy (a copy waits for the GL on llvmpipe);
            # only what lies over it: the rest of a source rect has no pixels
            inside = (bx0 - src_x, by0 + src_top - src.height + 1,
                      bx0 - src_x + src.width, by0 + src_top + 1)
            boxes = [c for c in (intersect(b, inside) for b in boxes) if c is not None]
            if not boxes:
                return True
        else:
            gy = src_top - (by1 - by0 - 1)
            if not (abs(src_x) <= MAX_SOURCE_COORD and abs(gy) <= MAX_SOURCE_COORD):
                return True  # nothing of any framebuffer is there: nothing to show
            src = self._stage(src_fbo, src_x, gy, bx1 - bx0, by1 - by0)
            read_fbo = self._staging[1].glo
            src_x, src_top = 0, by1 - by0 - 1
        copied: list[Box] = []
        boxes_left = boxes
        if self.present_copy:
            # into the renderer's host copy of the surface (made by reading the surface
            # once, at its first present: the frames for clients are read from it), and
            # only there: the texture gets them when the GL next uses the surface
            # (Surface.ahead). A box the copy cannot do (a read buffer of GL_NONE...) is
            # drawn
            if surf.shadow is None:
                self.renderer._read(surf, (0, 0, surf.width, surf.height))
            if surf.id == PRIMARY and (drawable is not None or (
                    src_fbo and self._read_texture[3] == _GL_RGBA8)):
                # an RGBA8 texture onto the primary: a GL-side copy into its staging
                # texture, read into the host copy once something wants it (Renderer._land):
                # the read waits for the frame's rasterization, which a guest presenting
                # frame after frame need not wait for
                copied = self._stage_boxes(surf, read_fbo, src_x, src_top, bx0, by0, boxes)
                boxes_left = [b for b in boxes if b not in copied]
            if boxes_left:
                if surf.staged:  # those older pixels land first, under these
                    self.land(surf)
                done = self._copy_boxes(surf, read_fbo, src_x, src_top, bx0, by0, boxes_left)
                boxes_left = [b for b in boxes_left if b not in done]
                copied += done
        if boxes_left:
            if self.renderer._staged_surfaces:  # older presents, and then all ahead, land first
                self.renderer._land()
            if self.renderer._ahead:  # the draw lands on the texture: it must be current
                self.renderer._upload_ahead()
            if self._sampling_waits:
                self.wait_gl()
            self._draw_present(src, surf, src_x, src_top, bx0, by0, boxes_left)
        # what moderngl left (and caches, such as its bound framebuffer) is the 2D state
        # that g3_to_2d puts back
        lib.g3_batch_begin(self._host)
        self._presented_onto(surf, boxes, copied, self.waits, tuple(p.area))
        return True

    def _presented_onto(self, surf: Any, boxes: list[Box], copied: list[Box],
                        waits: int, area: Box) -> None:
        """Notes a present's damage (`copied`: those boxes in the host copy or staged), its
        destination (`area`, clipped to the surface: a stream hint) and the host waits
        since the last present (`waits`: the counter when it ran)."""
        self.renderer._note_damage(surf, tuple(boxes), in_shadow=tuple(copied))
        self.renderer._note_present(surf, area)
        self._presents += 1
        self._frame_waits = waits - self._waits_at_present
        self._waits_at_present = waits

    def _copy_boxes(self, surf: Any, read_fbo: int, sx: int, top: int, x0: int, y0: int,
                    boxes: list[Box]) -> list[Box]:
        """Copies `boxes` of the QXL surface into its host copy from `read_fbo`, where (sx,
        top) lands on (x0, y0); returns those copied (Surface.ahead from then on)."""
        whole = (0, 0, surf.width, surf.height) in boxes
        shadow = ffi.from_buffer("uint8_t[]", surf.writable_shadow(whole))
        copied = [b for b in boxes if lib.g3_present_copy(
            self._host, read_fbo, sx + b[0] - x0, top - (b[3] - 1 - y0), b[2] - b[0],
            b[3] - b[1], shadow, surf.width, surf.height, b[0], b[1], _KEEP[surf.fmt]) == 0]
        if copied:
            self._ahead(surf, copied)
        return copied

    def _stage_boxes(self, surf: Any, read_fbo: int, sx: int, top: int, x0: int, y0: int,
                     boxes: list[Box]) -> list[Box]:
        """Copies `boxes` of the QXL surface from `read_fbo` (where (sx, top) lands on (x0,
        y0)) into the surface's staging texture, rows in GL's order; returns those copied
        (Surface.staged from then on)."""
        if surf.staging is None:
            tex = self.ctx.texture((surf.width, surf.height), 4)
            surf.staging = (tex, self.ctx.framebuffer(color_attachments=[tex]))
        dst = surf.staging[1].glo
        height = surf.height
        copied = [b for b in boxes if lib.g3_blit(
            self._host, read_fbo, dst, sx + b[0] - x0, top - (b[3] - 1 - y0), b[2] - b[0],
            b[3] - b[1], b[0], height - b[3]) == 0]
        self._staged(surf, copied)
        return copied

    def _staged(self, surf: Any, copied: list[Box]) -> None:
        """Notes `copied` of the surface as staged (Surface.staged)."""
        staged = surf.staged
        staged += [b for b in copied if b not in staged]
        if copied:
            self._staged_by = lib.g3_current(self._host)
        if staged:
            self.renderer._staged_surfaces.add(surf)
        if len(staged) > MAX_STAGED_RECTS:
            self.land(surf)

    def land(self, surf: Any) -> None:
        """Reads the surface's staged presents (Surface.staged) into its host copy; what
        the read cannot do is drawn onto its texture from the staging texture instead."""
        boxes, surf.staged = surf.staged, []
        self.renderer._staged_surfaces.discard(surf)
        if not boxes:
            return
        assert surf.staging is not None and surf.shadow is not None  # staged after both
        # the read waits for the GL to finish the presented frames, after their batch (a
        # guest's endless shader is met here): the watchdog times it as that context's
        outside = self.busy_since is None
        if outside:
            self.busy_since, self.current_context = time.monotonic(), self._staged_by
        try:
            lib.g3_to_2d(self._host)
            top = surf.height - 1  # staging row of the surface's row 0
            left = [b for b in boxes if b not in self._copy_boxes(
                surf, surf.staging[1].glo, 0, top, 0, 0, boxes)]
            if left:
                if self.renderer._ahead:  # the draw lands on the texture: it must be current
                    self.renderer._upload_ahead()
                if self._sampling_waits:
                    self.wait_gl()
                self._draw_present(surf.staging[0], surf, 0, top, 0, 0, left)
                surf.stale = _add_rects(surf.stale, left)  # drawn: the host copy lacks them
        finally:
            if outside:
                self.busy_since, self.current_context = None, 0

    def _ahead(self, surf: Any, boxes: list[Box]) -> None:
        """Notes `boxes` of `surf` as presented into its host copy only."""
        ahead = surf.ahead
        ahead += [b for b in boxes if b not in ahead]
        self.renderer._ahead.add(surf)
        if len(ahead) > MAX_AHEAD_RECTS:
            self.renderer._upload_ahead()

    def upload(self, surf: Any, box: Box) -> None:
        """Uploads `box` of the surface's host copy into its texture (Surface.ahead)."""
        x0, y0, x1, y1 = box
        lib.g3_to_2d(self._host)
        if lib.g3_upload(self._host, surf.tex.glo, ffi.from_buffer("uint8_t[]", surf.shadow),
                         surf.width, surf.height, x0, y0, x1 - x0, y1 - y0) != 0:
            raise RenderError(f"uploading {box} of surface {surf.id} failed")

    def _source_texture(self, drawable: _Drawable | None, src_fbo: int
                        ) -> moderngl.Texture | None:
        """The texture a present can sample: the single-sampled drawable's colour, or the
        2D texture behind a guest framebuffer's read buffer; None when a copy must be made
        (multisampled, a renderbuffer, a cube face or a layer)."""
        if drawable is not None:
            return drawable.texture
        tex = self._read_texture
        if not lib.g3_read_texture(self._host, src_fbo, tex):
            return None
        # a handle on the guest's texture (a name and a size, never released here), made
        # once: a guest presents from the same few framebuffers frame after frame
        key = (tex[0], tex[1], tex[2])
        src = self._sources.get(key)
        if src is None:
            if len(self._sources) >= MAX_SOURCE_HANDLES:
                self._sources.clear()
            src = self._sources[key] = self.ctx.external_texture(key[0], key[1:], 4, 0, "f1")
        return src

    def _current_drawable(self) -> _Drawable | None:
        fbo = lib.g3_framebuffer(self._host, 0)
        return next((d for d in self._drawables.values() if int(d.names[0]) == fbo and fbo),
                    None)

    def _stage(self, src_fbo: int, x: int, y: int, w: int, h: int) -> moderngl.Texture:
        """Copies (resolving samples) the source rect into the staging texture, at (0, 0);
        w and h are at most the QXL surface's."""
        st = self._staging
        if st is None or st[0].width < w or st[0].height < h:
            if st is not None:
                st[1].release()
                st[0].release()
            size = (max(w, st[0].width if st else 0), max(h, st[0].height if st else 0))
            tex = self.ctx.texture(size, 4)
            st = self._staging = (tex, self.ctx.framebuffer(color_attachments=[tex]))
        lib.g3_blit(self._host, src_fbo, st[1].glo, x, y, w, h, 0, 0)
        return st[0]

    def _draw_present(self, src: moderngl.Texture, surf: Any, sx: int, top: int, dst_x: int,
                      dst_y: int, boxes: list[Box]) -> None:
        """Draws `boxes` of the QXL surface from `src`: (sx, top) lands on (dst_x, dst_y)."""
        prog = self._program
        surf.fbo.use()
        src.use(0)
        self._sampler.use(0)
        prog["u_src"] = 0
        prog["u_size"] = (surf.width, surf.height)
        prog["u_map"] = (sx, top, dst_x, dst_y)
        prog["u_keep"] = _KEEP[surf.fmt]
        for box in boxes:
            prog["u_rect"] = box
            self._vao.render(moderngl.TRIANGLE_STRIP, vertices=4)
            self.renderer.draw_calls += 1
        self._sampler.clear(0)

    def wait_gl(self) -> None:
        """Waits for the GL to finish what it was given, in C with the interpreter lock
        released (a long shader then stalls only the render thread, not SPICE or the
        watchdog). Called just before a moderngl call that would wait holding the lock
        (a read): not a new wait, so not counted in `waits`."""
        lib.g3_wait_gl(self._host)

    # --- state --------------------------------------------------------------------------

    @property
    def counters(self) -> dict[str, int]:
        lib.g3_counters(self._host, self._counters)
        c = self._counters
        return {"commands": c.commands, "dropped": c.dropped, "gl_errors": c.gl_errors,
                "lost": c.lost, "waits": c.waits, "presents": self.presents,
                "bytes": c.bytes}

    @property
    def waits(self) -> int:
        lib.g3_counters(self._host, self._counters)
        return int(self._counters.waits)

    def reset(self) -> None:
        """Every context and drawable goes (QXL RESET)."""
        self._settle()  # what ran stays presented
        lib.g3_batch_begin(self._host)
        for i in range(1, lib.G3_MAX_CONTEXTS + 1):
            lib.g3_context_destroy(self._host, i)
        lib.g3_to_2d(self._host)
        self.renderer._3d_pending = None  # settled above: nothing of a context is left
        for sid in list(self._drawables):
            self._surface_destroy(sid)

    def close(self) -> None:
        self.reset()
        if self._staging is not None:
            self._staging[1].release()
            self._staging[0].release()
        self._sampler.release()
        self._vao.release()
        self._program.release()
        lib.g3_free(self._host)
        self._host = ffi.NULL
