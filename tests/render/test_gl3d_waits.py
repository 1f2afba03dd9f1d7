"""Where the render thread waits for 3D work: in C, with the interpreter lock released, so a
guest's long shader stalls the render thread only and the other threads (the SPICE server,
the watchdog) keep running. A ticker thread measures it: a wait that holds the lock (as
moderngl's reads do) leaves a gap in its ticks as long as the shader."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.render.gl3d_helpers import FakeGuest, batch, enum, gl, triangle_draw, vgpu
from vgpu.device.commands import QRect
from vgpu.render import enums as E

SIZE = 64
LONG_S = 0.5
"""The long draw must take at least this long, or the test shows nothing."""
MAX_GAP_S = 0.25
"""The ticker may miss this much (the interpreter's switch interval is 5 ms; a loaded
machine adds some): far less than LONG_S."""

QUAD = np.array([-1, -1, 3, -1, -1, 3], np.float32)


def long_program(loops: int) -> list[list[int]]:
    """A program whose fragments each run `loops` sines (llvmpipe stops a loop at 65,535;
65,000 take about 0.8 s on a quiet 2-core machine) (fed by gl_FragCoord, so nothing
    folds at compile time)."""
    vs = b"#version 330\nin vec2 pos;\nvoid main() { gl_Position = vec4(pos, 0.0, 1.0); }\n"
    fs = (b"#version 330\nout vec4 o;\nvoid main() { float x = gl_FragCoord.x; "
          b"for (int i = 0; i < %d; i++) { x += sin(x + float(i)); } o = vec4(fract(x)); }\n"
          % loops)
    return [gl("glCreateShader", 1, enum("GL_VERTEX_SHADER")), gl("glShaderSource", 1, 1, vs),
            gl("glCompileShader", 1), gl("glCreateShader", 2, enum("GL_FRAGMENT_SHADER")),
            gl("glShaderSource", 2, 1, fs), gl("glCompileShader", 2),
            gl("glCreateProgram", 3), gl("glAttachShader", 3, 1), gl("glAttachShader", 3, 2),
            gl("glBindAttribLocation", 3, 0, b"pos\0"), gl("glLinkProgram", 3),
            gl("glUseProgram", 3)]


class Ticker:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.ticks: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.ticks.append(time.monotonic())
            time.sleep(0.002)

    def __enter__(self) -> Ticker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def max_gap(self) -> float:
        return float(np.diff(self.ticks).max())


@pytest.fixture(params=["copy", "draw"])
def screen(renderer, request):
    from vgpu.render.gl3d import Gl3dExecutor

    renderer.create_primary(SIZE, SIZE, SIZE * 4, E.SURFACE_FMT_32_xRGB, None)
    renderer.gl3d = Gl3dExecutor(renderer, present_copy=request.param == "copy")
    return renderer


@pytest.mark.parametrize("read", ["snapshot", "update_area"])
def test_a_long_draw_is_waited_for_with_the_interpreter_free(screen, read):
    guest = FakeGuest()
    screen.execute_3d(batch(vgpu("CONTEXT_CREATE", 1, 3, 0),
                            vgpu("SURFACE_CREATE", 1, SIZE, SIZE, 0, 0),
                            vgpu("MAKE_CURRENT", 1, 1), *long_program(65000)), guest)
    screen.snapshot()  # the primary's first frame is out: the next read is the 3D one
    frame = batch(*triangle_draw(vertices=QUAD), vgpu("PRESENT", 0, 0, 0, SIZE, SIZE, 0, 0, 0, 0),
                  vgpu("FENCE", 1, 0, 1))
    with Ticker() as ticker:
        t0 = time.monotonic()
        screen.execute_3d(frame, guest)
        if read == "snapshot":
            got = screen.snapshot().pixels
        else:
            got = screen.read_area(0, QRect(0, 0, SIZE, SIZE))[0][1]
        took = time.monotonic() - t0
    assert guest.counts == {"errors": 0, "lost_contexts": 0} and guest.fences == [(1, True)]
    assert got.any()  # the shader's picture, not the black the primary started with
    assert took >= LONG_S, f"the draw took {took:.2f} s: too short to tell"
    assert ticker.max_gap() < MAX_GAP_S, (ticker.max_gap(), took)
