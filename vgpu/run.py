"""`vgpu run`: an unmodified OpenGL ES program as the guest.

    vgpu run [--headless | --port P] [--size WxH] [--frame-out PNG] -- PROGRAM ARGS...

starts the machine (device, renderer, and the SPICE server unless --headless) with a
built-in guest that creates the primary surface (the X screen's size, or --size) and
serves the 3D socket (`vgpu.guest.glrelay`), then runs PROGRAM with vgpu's libEGL.so.1 and
libGLESv2.so.2 first on its library path (built from csrc/gles/ into build/gles/, made
when missing) and the socket in VGPU_GL_SOCKET. A window surface's eglSwapBuffers lands
on the primary at the window's place on the X screen. The exit status is PROGRAM's;
--frame-out writes the last frame the display published.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB_DIR = ROOT / "build" / "gles"
"""Where `make -C csrc/gles` puts the guest libraries (VGPU_GLES_LIB_DIR overrides it)."""

DEFAULT_SIZE = (1024, 768)
"""The primary surface without an X screen to match and without --size."""

GUEST_START_S = 30.0
"""The built-in guest attaches and creates the primary in well under a second."""

RAM_SIZE = 128 * 1024 * 1024
"""Guest RAM for `vgpu run`: a primary up to 16 MiB (2048x2048), the driver's own 3D memory
(8 MiB) and the relay's arenas (4 x 20 MiB)."""

ARENA_SIZE = 20 * 1024 * 1024
"""Guest memory lent to each GL process (vgpu.guest.glrelay)."""

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--headless", action="store_true", help="no SPICE server")
    mode.add_argument("--port", type=int, default=5930, help="SPICE port (default 5930)")
    parser.add_argument("--addr", default="127.0.0.1", help="SPICE address")
    parser.add_argument("--size", help="primary surface WxH (default: the X screen's)")
    parser.add_argument("--frame-out", type=Path, help="write the last frame as PNG")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("program", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS...")


def x_screen_size() -> tuple[int, int] | None:
    """The default screen's size of $DISPLAY, through libX11 (None without an X server)."""
    if not os.environ.get("DISPLAY"):
        return None
    name = ctypes.util.find_library("X11")
    if name is None:
        return None
    x11 = ctypes.CDLL(name)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultScreen.argtypes = [ctypes.c_void_p]
    x11.XDisplayWidth.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(None)
    if not dpy:
        return None
    try:
        screen = x11.XDefaultScreen(dpy)
        return int(x11.XDisplayWidth(dpy, screen)), int(x11.XDisplayHeight(dpy, screen))
    finally:
        x11.XCloseDisplay(dpy)


def lib_dir() -> Path:
    """The guest libraries' folder, built first if they are missing."""
    override = os.environ.get("VGPU_GLES_LIB_DIR")
    if override:
        return Path(override)
    if not (LIB_DIR / "libEGL.so.1").is_file():
        subprocess.run(["make", "-s", "-C", str(ROOT / "csrc" / "gles"),
                        f"PYTHON={sys.executable}"], check=True)
    return LIB_DIR


def program_env(socket_path: str, libs: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["VGPU_GL_SOCKET"] = socket_path
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    return env


class GlGuest:
    """The built-in guest of `vgpu run`: the primary surface and the 3D socket."""

    def __init__(self, socket_path: str, size: tuple[int, int]) -> None:
        self.socket_path = socket_path
        self.size = size
        self.ready = threading.Event()
        self.relay = None
        self.error: BaseException | None = None

    def __call__(self, machine, stop: threading.Event) -> None:
        from vgpu.guest.glrelay import GlRelay
        from vgpu.machine import _attach

        try:
            driver = _attach(machine)
            driver.create_primary(*self.size)
            self.relay = GlRelay(driver, machine.device.mem.fd, self.socket_path, self.size,
                                 arena_size=ARENA_SIZE)
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            raise
        self.ready.set()
        self.relay.serve_forever()

    def close(self) -> None:
        if self.relay is not None:
            self.relay.close()


def save_frame(machine, path: Path) -> bool:
    from PIL import Image

    frame = machine.frames.latest()
    if frame is None:
        return False
    Image.fromarray(frame.pixels[:, :, 2::-1].copy(), "RGB").save(path)
    return True


def _size(text: str | None) -> tuple[int, int]:
    if text:
        w, _, h = text.lower().partition("x")
        return int(w), int(h)
    return x_screen_size() or DEFAULT_SIZE


def run(args: argparse.Namespace) -> int:
    from vgpu.machine import Machine

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not program:
        print("vgpu run: name a program after --", file=sys.stderr)
        return 2
    try:
        size = _size(args.size)
    except ValueError:
        print(f"vgpu run: --size {args.size!r} is not WxH", file=sys.stderr)
        return 2
    libs = lib_dir()
    with tempfile.TemporaryDirectory(prefix="vgpu-run-") as tmp:
        guest = GlGuest(os.path.join(tmp, "gl.sock"), size)
        # a headless run reads frames back only for --frame-out (a 1920x1080 readback per
        # frame costs llvmpipe as much as a light scene)
        machine = Machine(guest, ram_size=RAM_SIZE,
                          publish_frames=not args.headless or args.frame_out is not None)
        machine.start()
        try:
            if not guest.ready.wait(GUEST_START_S) or guest.error is not None:
                print(f"vgpu run: the guest did not start: {guest.error}", file=sys.stderr)
                return 1
            env = program_env(guest.socket_path, libs)
            if args.headless:
                status = subprocess.run(program, env=env).returncode
            else:
                status = asyncio.run(_serve_while(machine, args, program, env))
            if args.frame_out is not None and not save_frame(machine, args.frame_out):
                print("vgpu run: no frame was presented", file=sys.stderr)
        finally:
            guest.close()
            machine.stop()
    return status if status >= 0 else 128 - status


async def _serve_while(machine, args: argparse.Namespace, program: list[str],
                       env: dict[str, str]) -> int:
    """Runs the program with the SPICE server listening; its status."""
    from vgpu.spice.server import ServerOptions, SpiceServer

    server = SpiceServer(machine, ServerOptions())
    port = await server.listen(args.addr, args.port)
    print(f"SPICE: spice://{args.addr}:{port}", flush=True)
    try:
        proc = await asyncio.create_subprocess_exec(*program, env=env)
        return await proc.wait()
    finally:
        await server.close()
