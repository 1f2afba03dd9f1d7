"""3D executor benchmark: the same frame of 100 draw calls drawn by moderngl directly and
through the 3D ring's executor (Renderer.execute_3d, batches encoded as a guest would), in
the same run on the same context, medians of frames that end in a glFinish; and the cost of
one decoded command (batches of 10,000 of one command).

Batches are encoded with the tests' small encoder (tests/render/gl3d_helpers.py): the
executor alone, without the ring and the guest library (`gl3d` measures the whole path).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import moderngl
import numpy as np

from vgpu.bench import Bench, Measurement, workload
from vgpu.bench.core import BENCH_DIR
from vgpu.render import Renderer
from vgpu.render import enums as E

SIZE = 256
DRAWS = 100
FRAMES, QUICK_FRAMES = 40, 5
"""Frames per timed run, each ending in glFinish."""
COMMANDS, QUICK_COMMANDS = 10_000, 1_000
"""One command repeated in one batch: the batch's cost over its length is one command's."""
VS = """#version 430
layout(location = 0) uniform vec2 u_off;
in vec2 pos;
void main() { gl_Position = vec4(pos * 0.1 + u_off, 0.0, 1.0); }
"""
FS = """#version 430
out vec4 c;
void main() { c = vec4(1.0, 0.5, 0.0, 1.0); }
"""
TRI = np.array([-1, -1, 1, -1, 0, 1], np.float32)


def offsets(n: int) -> list[tuple[float, float]]:
    return [((i % 10) / 5 - 0.9, (i // 10 % 10) / 5 - 0.9) for i in range(n)]


def direct_frame(ctx: moderngl.Context, fbo: moderngl.Framebuffer, prog: moderngl.Program,
                 vao: moderngl.VertexArray, n: int,
                 screen: moderngl.Framebuffer | None = None) -> None:
    """The frame drawn by moderngl; with `screen`, copied there (what a swap does)."""
    fbo.use()
    fbo.clear(0.0, 0.0, 0.5, 1.0)
    u = prog["u_off"]
    for off in offsets(n):
        u.value = off
        vao.render()
    if screen is not None:
        ctx.copy_framebuffer(screen, fbo)
    ctx.finish()


def ring_setup(h: Any) -> bytes:
    gl, vgpu, enum = h.gl, h.vgpu, h.enum
    return h.batch(
        vgpu("CONTEXT_CREATE", 1, 3, 0), vgpu("SURFACE_CREATE", 1, SIZE, SIZE, 0, 0),
        vgpu("MAKE_CURRENT", 1, 1),
        gl("glCreateShader", 1, enum("GL_VERTEX_SHADER")), gl("glShaderSource", 1, 1, VS.encode()),
        gl("glCompileShader", 1),
        gl("glCreateShader", 2, enum("GL_FRAGMENT_SHADER")),
        gl("glShaderSource", 2, 1, FS.encode()), gl("glCompileShader", 2),
        gl("glCreateProgram", 3), gl("glAttachShader", 3, 1), gl("glAttachShader", 3, 2),
        gl("glBindAttribLocation", 3, 0, b"pos\0"), gl("glLinkProgram", 3),
        gl("glUseProgram", 3), gl("glGenBuffers", 1, [10]),
        gl("glBindBuffer", enum("GL_ARRAY_BUFFER"), 10),
        gl("glBufferData", enum("GL_ARRAY_BUFFER"), TRI.nbytes, TRI.tobytes(),
           enum("GL_STATIC_DRAW")),
        gl("glVertexAttribPointer", 0, 2, enum("GL_FLOAT"), 0, 0, 0),
        gl("glEnableVertexAttribArray", 0))


def ring_frame(h: Any, n: int, fence: int, present: bool) -> bytes:
    gl, vgpu, enum = h.gl, h.vgpu, h.enum
    cmds = [gl("glClearColor", 0.0, 0.0, 0.5, 1.0), gl("glClear", enum("GL_COLOR_BUFFER_BIT"))]
    for x, y in offsets(n):
        cmds += [gl("glUniform2f", 0, x, y), gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 3)]
    if present:
        cmds.append(vgpu("PRESENT", 0, 0, 0, SIZE, SIZE, 0, 0, 0, 0))
    cmds.append(vgpu("FENCE", fence, 0, 0))
    return h.batch(*cmds)


def _helpers() -> Any:
    """tests/render/gl3d_helpers.py: the tests' batch encoder and fake guest."""
    root = str(BENCH_DIR.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.render import gl3d_helpers

    return gl3d_helpers


@workload("gl3d_executor", "the 3D executor against moderngl direct on the same context: a "
          "frame of 100 draws, and each decoded command's cost", references=("moderngl direct",))
def gl3d_executor(b: Bench) -> Iterator[Measurement]:
    h = _helpers()
    gl, enum = h.gl, h.enum
    frames = QUICK_FRAMES if b.quick else FRAMES
    r = Renderer()
    try:
        ctx = r.ctx
        r.create_primary(640, 480, 640 * 4, E.SURFACE_FMT_32_xRGB, None)
        prog = ctx.program(vertex_shader=VS, fragment_shader=FS)
        vao = ctx.vertex_array(prog, [(ctx.buffer(TRI.tobytes()), "2f", "pos")])
        fbo = ctx.framebuffer(color_attachments=[ctx.texture((SIZE, SIZE), 4)])
        screen = ctx.framebuffer(color_attachments=[ctx.renderbuffer((SIZE, SIZE))])
        guest = h.FakeGuest()
        r.execute_3d(ring_setup(h), guest)
        ring_frames = {p: ring_frame(h, DRAWS, 1, p) for p in (False, True)}

        def ring(present: bool) -> None:
            for _ in range(frames):
                r.execute_3d(ring_frames[present], guest)
                ctx.finish()

        def direct(copy: bool) -> None:
            for _ in range(frames):
                direct_frame(ctx, fbo, prog, vao, DRAWS, screen if copy else None)

        waits = r.gl3d.frame_waits
        label = f"{DRAWS} draw calls/frame {SIZE}x{SIZE}"
        yield b.time(f"{label}: drawn", {"through the executor": lambda: ring(False),
                                          "moderngl direct": lambda: direct(False)},
                     work=frames, unit="frames/s", warmup=2,
                     note="each frame ends in glFinish (the benchmark's own)")
        yield b.time(f"{label}: presented", {"through the executor": lambda: ring(True),
                                              "moderngl direct + copy": lambda: direct(True)},
                     work=frames, unit="frames/s", warmup=2)
        yield b.value(f"{label}: host waits", "waits",
                      {"through the executor": r.gl3d.frame_waits - waits}, note="target 0")
        n = QUICK_COMMANDS if b.quick else COMMANDS
        commands = {
            "glUniform2f": gl("glUniform2f", 0, 0.5, 0.5),
            "glBindBuffer": gl("glBindBuffer", enum("GL_ARRAY_BUFFER"), 10),
            "glUniformMatrix4fv": gl("glUniformMatrix4fv", 5, 1, 0, [0.0] * 16),
            "glDrawArrays (0 vertices)": gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 0),
            # decoded and looked up, refused before GL: the executor's own cost alone
            "glUseProgram (unknown name)": gl("glUseProgram", 99),
        }
        for name, command in commands.items():
            many = h.batch(*[command] * n)
            yield b.time(f"per command: {name}", {
                "through the executor": lambda many=many: r.execute_3d(many, guest)},
                work=n / 1e6, unit="M commands/s",
                note=f"{n} in one batch, GL's own work included")
    finally:
        r.close()
