"""3D executor benchmark: the same frame of 100 draw calls drawn by moderngl directly and
through the 3D ring's executor (Renderer.execute_3d, batches encoded as a guest would), in
the same run on the same context, medians of frames that end in a glFinish; and the cost of
one decoded command (batches of 10,000 of one command).

Batches are encoded with the tests' small encoder (tests/render/gl3d_helpers.py) until the
guest library lands.

    PYTHONPATH=. python bench/gl3d_executor.py [--frames 40] [--draws 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

import moderngl
import numpy as np

from tests.render.gl3d_helpers import FakeGuest, batch, enum, gl, vgpu
from vgpu.render import Renderer
from vgpu.render import enums as E

SIZE = 256
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


def ring_setup() -> bytes:
    return batch(
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


def ring_frame(n: int, fence: int, present: bool) -> bytes:
    cmds = [gl("glClearColor", 0.0, 0.0, 0.5, 1.0), gl("glClear", enum("GL_COLOR_BUFFER_BIT"))]
    for x, y in offsets(n):
        cmds += [gl("glUniform2f", 0, x, y), gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 3)]
    if present:
        cmds.append(vgpu("PRESENT", 0, 0, 0, SIZE, SIZE, 0, 0, 0, 0))
    cmds.append(vgpu("FENCE", fence, 0, 0))
    return batch(*cmds)


def median_ms(fn, frames: int) -> float:
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--draws", type=int, default=100)
    args = ap.parse_args()
    r = Renderer()
    ctx = r.ctx
    r.create_primary(640, 480, 640 * 4, E.SURFACE_FMT_32_xRGB, None)
    prog = ctx.program(vertex_shader=VS, fragment_shader=FS)
    vbo = ctx.buffer(TRI.tobytes())
    vao = ctx.vertex_array(prog, [(vbo, "2f", "pos")])
    fbo = ctx.framebuffer(color_attachments=[ctx.texture((SIZE, SIZE), 4)])
    screen = ctx.framebuffer(color_attachments=[ctx.renderbuffer((SIZE, SIZE))])
    guest = FakeGuest()
    r.execute_3d(ring_setup(), guest)
    frames = {p: ring_frame(args.draws, 1, p) for p in (False, True)}

    def ring(present: bool) -> None:
        r.execute_3d(frames[present], guest)
        ctx.finish()

    for _ in range(5):  # warm: shader variants compiled, buffers placed
        direct_frame(ctx, fbo, prog, vao, args.draws, screen)
        ring(True)
        ring(False)
    results: dict[str, list[float]] = {"moderngl direct": [], "ring, no present": [],
                                       "moderngl direct + copy": [], "ring + present": []}
    for _ in range(3):  # interleaved rounds, so a busy machine hits all alike
        results["moderngl direct"].append(
            median_ms(lambda: direct_frame(ctx, fbo, prog, vao, args.draws), args.frames))
        results["moderngl direct + copy"].append(
            median_ms(lambda: direct_frame(ctx, fbo, prog, vao, args.draws, screen),
                      args.frames))
        results["ring, no present"].append(median_ms(lambda: ring(False), args.frames))
        results["ring + present"].append(median_ms(lambda: ring(True), args.frames))
    print(f"{args.draws} draw calls per frame, {SIZE}x{SIZE}, {ctx.info['GL_RENDERER']}; "
          "each frame ends in glFinish")
    for name, ms in results.items():
        base = statistics.median(results["moderngl direct" if "present" not in name
                                         else "moderngl direct + copy"])
        m = statistics.median(ms)
        print(f"  {name:24s} {m:7.3f} ms/frame  ({m / base * 100 - 100:+.1f}%)")
    print(f"  host waits per frame through the ring: {r.gl3d.frame_waits} (glFinish here is "
          "the benchmark's own)")

    # decode cost: 10,000 of one command in one batch, with and without GL doing the work
    n = 10000
    cases = {
        "glUniform2f": gl("glUniform2f", 0, 0.5, 0.5),
        "glBindBuffer": gl("glBindBuffer", enum("GL_ARRAY_BUFFER"), 10),
        "glUniformMatrix4fv": gl("glUniformMatrix4fv", 5, 1, 0, [0.0] * 16),
        "glDrawArrays (0 vertices)": gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 0),
        # decoded and looked up, refused before GL: the executor's own cost alone
        "glUseProgram (unknown name)": gl("glUseProgram", 99),
    }
    print(f"per command through the executor ({n} in one batch, GL's own work included):")
    for name, c in cases.items():
        b = batch(*[c] * n)
        r.execute_3d(b, guest)
        ms = median_ms(lambda b=b: r.execute_3d(b, guest), 15)
        print(f"  {name:28s} {ms * 1e6 / n:7.0f} ns")


if __name__ == "__main__":
    main()
