"""The 3D watchdog: a batch that never ends is named in the log within GL_STUCK_S, the
machine gives up after the user's grace period, and meanwhile the display keeps serving
its last frame, the cursor and inputs. With a stand-in renderer whose execute_3d blocks,
and (once the 3D executor is built) a real fragment shader that never ends."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vgpu.device import commands as c
from vgpu.display import InputEvent
from vgpu.machine import GL_STUCK_S, HARD_WATCHDOG_MARGIN_S, Gl3dWatchdog, Machine

COLOUR = 0x3366CC


# --- the decision, on a fake clock ------------------------------------------------------


class FakeBusy:
    def __init__(self) -> None:
        self.since: float | None = None
        self.context = 0

    def __call__(self) -> tuple[float | None, int]:
        return self.since, self.context


def test_watchdog_reports_once_then_gives_up_after_the_grace(caplog) -> None:
    busy, fatal = FakeBusy(), []
    dog = Gl3dWatchdog(busy, grace=5.0, on_fatal=fatal.append)
    caplog.set_level(logging.ERROR, "vgpu.machine")
    dog.check(100.0)  # idle
    busy.since, busy.context = 100.0, 9
    dog.check(100.0 + GL_STUCK_S - 0.01)
    assert not caplog.records
    dog.check(100.0 + GL_STUCK_S)
    dog.check(100.0 + GL_STUCK_S + 1)
    assert [r.getMessage()[:18] for r in caplog.records] == ["3D context 9 stuck"]
    dog.check(100.0 + GL_STUCK_S + 4.9)
    assert fatal == []
    dog.check(100.0 + GL_STUCK_S + 5)
    dog.check(100.0 + GL_STUCK_S + 6)
    assert len(fatal) == 1 and "3D context 9 stuck" in fatal[0]


def test_watchdog_forgets_a_batch_that_ended(caplog) -> None:
    busy, fatal = FakeBusy(), []
    dog = Gl3dWatchdog(busy, grace=1.0, on_fatal=fatal.append)
    caplog.set_level(logging.ERROR, "vgpu.machine")
    busy.since, busy.context = 0.0, 3
    dog.check(2.5)  # reported: a slow batch...
    busy.since = None
    dog.check(2.9)  # ...that ended
    busy.since, busy.context = 3.0, 4  # the next one is quick
    dog.check(3.5)
    dog.check(4.0)
    assert fatal == [] and len(caplog.records) == 1


# --- a machine whose 3D backend blocks ----------------------------------------------------


def _blocking_renderer(release: threading.Event, context: int):
    from vgpu.render import Renderer

    class BlockingRenderer(Renderer):
        """A renderer whose 3D batches block until released, as an endless shader does;
        it exposes the executor's agreed attributes (current_context, busy_since)."""

        def execute_3d(self, batch: bytes, guest) -> None:
            # the Renderer closes its executor: the stand-in has nothing to free
            self.gl3d = type("Executor", (), {"close": lambda self: None})()
            self.gl3d.current_context = context
            self.gl3d.busy_since = time.monotonic()
            release.wait()
            self.gl3d.busy_since = None

    return BlockingRenderer


@pytest.mark.gl
def test_a_stuck_batch_is_named_and_fatal_while_the_display_serves(caplog) -> None:
    from vgpu.device.inprocess import InProcessAttachment
    from vgpu.guest.driver import GuestDriver

    caplog.set_level(logging.ERROR, "vgpu.machine")
    release = threading.Event()
    machine = Machine(None, gl_watchdog=1.0,
                      renderer_factory=_blocking_renderer(release, context=7))
    fatal: list[tuple[float, str]] = []
    machine.on_fatal = lambda reason: fatal.append((time.monotonic(), reason))
    machine.start()
    try:
        sub = machine.frames.subscribe()
        guest = GuestDriver(InProcessAttachment(machine.device))
        guest.create_primary(64, 48)
        guest.submit(c.Drawable(bbox=c.QRect(0, 0, 48, 64), op=c.Fill(
            c.SolidBrush(COLOUR), 8, c.QMask(0, c.QPoint(0, 0), None))))
        deadline = time.monotonic() + 20
        while True:  # the frame with the fill is out before the 3D batch starts
            taken = sub.take()
            if taken is not None and taken[0].pixels[5, 5, :3].tolist() == [0xCC, 0x66, 0x33]:
                break
            assert time.monotonic() < deadline, "no frame"
            time.sleep(0.02)
        t0, t0_wall = time.monotonic(), time.time()  # log records carry wall time
        guest.gl_fence()
        while not fatal:
            assert time.monotonic() < t0 + GL_STUCK_S + 1.0 + 3.0, "the watchdog never fired"
            time.sleep(0.05)
        stuck = [r for r in caplog.records
                 if r.levelno == logging.ERROR and "3D context 7 stuck" in r.getMessage()]
        assert len(stuck) == 1 and stuck[0].created - t0_wall < GL_STUCK_S + 0.75
        assert fatal[0][0] - t0 >= GL_STUCK_S + 1.0 and "3D context 7" in fatal[0][1]
        assert machine.fatal == fatal[0][1]
        # meanwhile: the last frame, inputs reaching the guest, the cursor bus
        frame = machine.frames.subscribe().take()
        assert frame is not None and np.all(frame[0].pixels[:, :, :3] == [0xCC, 0x66, 0x33])
        machine.send_input(InputEvent("key_down", 0x1E))
        assert [e.code for e in guest.read_input()] == [0x1E]
        machine.cursor.state()
    finally:
        release.set()
        machine.stop()


# --- vgpu serve, as a supervisor sees it ------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]

# `vgpu serve` with the stand-in: Renderer.execute_3d blocks forever, as an endless shader.
STUCK_SERVE = """
import sys, threading, time, types
from vgpu.render.gl import Renderer
def execute_3d(self, batch, guest):
    self.gl3d = types.SimpleNamespace(current_context=5, busy_since=time.monotonic())
    threading.Event().wait()
Renderer.execute_3d = execute_3d
from vgpu.cli import main
sys.exit(main(sys.argv[1:]))
"""

# The stand-in for a GL call that waits on the GPU holding the interpreter lock (as
# moderngl's reads do): a C call through ctypes.PyDLL, which keeps the lock, that never ends.
FROZEN_SERVE = """
import ctypes, sys
from vgpu.render.gl import Renderer
def execute_3d(self, batch, guest):
    ctypes.PyDLL(None).sleep(3600)
Renderer.execute_3d = execute_3d
from vgpu.cli import main
sys.exit(main(sys.argv[1:]))
"""

# A guest that draws a frame, makes sure it is out, then sends a 3D batch.
GUEST_2D_THEN_3D = """
import sys, time
from vgpu.device import commands as c
from vgpu.guest.remote import connect_driver
driver = connect_driver(sys.argv[1])
driver.create_primary(320, 240)
driver.submit(c.Drawable(bbox=c.QRect(0, 0, 240, 320), op=c.Fill(
    c.SolidBrush(0x3366CC), 8, c.QMask(0, c.QPoint(0, 0), None))))
driver.update_area(0, c.QRect(0, 0, 240, 320))
time.sleep(0.5)
driver.gl_fence()
print("3d sent", flush=True)
time.sleep(60)
"""

# The real thing, through the 3D executor: a fragment shader that does not end in any
# useful time. llvmpipe cuts every loop at 65,535 iterations, so no shader is endless
# there: 65,535 sines for each of 256 x 256 fragments ran past 40 s here. The batch is
# encoded from glwire directly, as docs/3d-ring.md has it.
GUEST_ENDLESS_SHADER = """
import struct, sys, time
from vgpu.device import commands as c
from vgpu.device import glwire
from vgpu.guest.remote import connect_driver

def gl(name, *args):
    cmd = glwire.by_name()[name]
    body = []
    for p, v in zip(cmd.params, args, strict=True):
        if p.kind in ("word", "name", "new_name"):
            body.append(v if isinstance(v, int) else struct.unpack("<I", struct.pack("<f", v))[0])
        elif p.kind in ("wide", "offset"):
            body += [v & 0xFFFFFFFF, v >> 32]
        elif p.kind in ("names", "new_names"):
            body += v
        elif p.kind in ("blob", "strings"):
            data = bytes(v) + bytes(-len(v) % 4)
            body += [len(v), *struct.unpack(f"<{len(data) // 4}I", data)]
        else:
            body += [v[0] & 0xFFFFFFFF, v[0] >> 32, v[1]]
    return [cmd.opcode | len(body) << 16, *body]

def vgpu(name, *args):
    return [glwire.VGPU_COMMANDS[name][0] | len(args) << 16, *args]

def submit(*cmds):
    words = [w for cmd in cmds for w in cmd]
    driver.gl_submit(struct.pack(f"<{len(words)}I", *words))

E = glwire.enums()
driver = connect_driver(sys.argv[1])
driver.create_primary(320, 240)
driver.submit(c.Drawable(bbox=c.QRect(0, 0, 240, 320), op=c.Fill(
    c.SolidBrush(0x3366CC), 8, c.QMask(0, c.QPoint(0, 0), None))))
driver.update_area(0, c.QRect(0, 0, 240, 320))
time.sleep(0.5)
vs = b"#version 330\\nin vec2 pos;\\nvoid main() { gl_Position = vec4(pos, 0.0, 1.0); }\\n"
fs = (b"#version 330\\nuniform int n;\\nout vec4 o;\\nvoid main() { float x = 0.0; "
      b"for (int i = 0; i < n; i++) { x += sin(x + float(i)); } o = vec4(x); }\\n")
loc_addr, loc = driver.gl_reply(4)
submit(vgpu("CONTEXT_CREATE", 4, 3, 0), vgpu("SURFACE_CREATE", 1, 256, 256, 1, 0),
       vgpu("MAKE_CURRENT", 4, 1),
       gl("glCreateShader", 1, E["GL_VERTEX_SHADER"]), gl("glShaderSource", 1, 1, vs),
       gl("glCompileShader", 1), gl("glCreateShader", 2, E["GL_FRAGMENT_SHADER"]),
       gl("glShaderSource", 2, 1, fs), gl("glCompileShader", 2), gl("glCreateProgram", 3),
       gl("glAttachShader", 3, 1), gl("glAttachShader", 3, 2),
       gl("glBindAttribLocation", 3, 0, b"pos\\0"), gl("glLinkProgram", 3),
       gl("glUseProgram", 3), gl("glGetUniformLocation", 3, b"n\\0", (loc_addr, 4)))
assert driver.gl_wait_fence(driver.gl_fence(), 10)
location = int.from_bytes(bytes(loc), "little")
quad = struct.pack("<6f", -1, -1, 3, -1, -1, 3)
submit(gl("glUniform1i", location, 2**31 - 1), gl("glGenBuffers", 1, [10]),
       gl("glBindBuffer", E["GL_ARRAY_BUFFER"], 10),
       gl("glBufferData", E["GL_ARRAY_BUFFER"], len(quad), quad, E["GL_STATIC_DRAW"]),
       gl("glVertexAttribPointer", 0, 2, E["GL_FLOAT"], 0, 0, 0),
       gl("glEnableVertexAttribArray", 0), gl("glDrawArrays", E["GL_TRIANGLES"], 0, 3),
       vgpu("PRESENT", 0, 0, 0, 64, 64, 0, 10, 10, 0))
driver.gl_fence()
print("3d sent", flush=True)
time.sleep(60)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_until_the_watchdog_fires(tmp_path: Path, serve_cmd: list[str], guest: str,
                                    context: int | None, frozen: bool = False) -> None:
    port, sock = _free_port(), tmp_path / "guest.sock"
    server = subprocess.Popen([*serve_cmd, "serve", "--port", str(port), "--guest", str(sock),
                               "--gl-watchdog", "3"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    procs = [server]
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
            time.sleep(0.05)
        client = subprocess.Popen([sys.executable, "-c", guest, str(sock)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(client)
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "3d sent", client.stderr.read()
        t0 = time.monotonic()
        if frozen:  # nothing in Python runs: the C last resort ends the process
            _, stderr = server.communicate(timeout=GL_STUCK_S + 3 + HARD_WATCHDOG_MARGIN_S + 15)
            took = time.monotonic() - t0
            assert server.returncode == 3, stderr
            assert "vgpu serve: 3D work stuck" in stderr and "interpreter blocked" in stderr
            assert took >= GL_STUCK_S + 3 + HARD_WATCHDOG_MARGIN_S - 0.5, took
            return
        # while the render thread is stuck, a stock client still gets the last frame
        out = tmp_path / "stuck.ppm"
        shot = subprocess.run(["spicy-screenshot", "-h", "127.0.0.1", "-p", str(port), "-o",
                               str(out)], capture_output=True, timeout=30)
        assert shot.returncode == 0, shot.stderr
        from PIL import Image

        rgb = np.asarray(Image.open(out).convert("RGB"))
        assert rgb.shape == (240, 320, 3) and np.all(rgb == [0x33, 0x66, 0xCC])
        assert server.poll() is None  # the grace period is not over
        _, stderr = server.communicate(timeout=GL_STUCK_S + 3 + 15)
        took = time.monotonic() - t0
        assert server.returncode == 3, stderr
        named = "3D context" if context is None else f"3D context {context} stuck"
        assert named in stderr and "vgpu serve: 3D context" in stderr
        assert took >= GL_STUCK_S + 3 - 0.5, took
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()


needs_client = pytest.mark.skipif(shutil.which("spicy-screenshot") is None,
                                  reason="spicy-screenshot (spice-client-gtk) is not installed")


@pytest.mark.gl
@needs_client
def test_serve_exits_with_an_error_when_a_batch_is_stuck(tmp_path: Path) -> None:
    _serve_until_the_watchdog_fires(tmp_path, [sys.executable, "-c", STUCK_SERVE],
                                    GUEST_2D_THEN_3D, context=5)


@pytest.mark.gl
def test_serve_exits_even_when_the_stuck_call_holds_the_interpreter(tmp_path: Path) -> None:
    _serve_until_the_watchdog_fires(tmp_path, [sys.executable, "-c", FROZEN_SERVE],
                                    GUEST_2D_THEN_3D, context=None, frozen=True)


@pytest.mark.gl
@pytest.mark.slow
@needs_client
@pytest.mark.skipif(importlib.util.find_spec("vgpu.render.gl3d") is None,
                    reason="the 3D executor (vgpu.render.gl3d) is not here yet")
def test_serve_survives_an_endless_fragment_shader_until_the_watchdog(tmp_path: Path) -> None:
    _serve_until_the_watchdog_fires(tmp_path, [sys.executable, "-m", "vgpu.cli"],
                                    GUEST_ENDLESS_SHADER, context=None)
