"""The `vgpu` command as a user runs it, seen by a stock SPICE client (spicy-screenshot)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgpu.guest import desktop

ROOT = Path(__file__).resolve().parents[2]
VGPU = [sys.executable, "-m", "vgpu.cli"]

pytestmark = [
    pytest.mark.gl,
    pytest.mark.skipif(shutil.which("spicy-screenshot") is None,
                       reason="spicy-screenshot (spice-client-gtk) is not installed"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(port: int, out: Path, timeout: float = 30.0) -> np.ndarray:
    """What spicy-screenshot sees, as (h, w, 3) RGB; retried while the server starts."""
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(["spicy-screenshot", "-h", "127.0.0.1", "-p", str(port),
                                 "-o", str(out)], capture_output=True, timeout=30)
        if result.returncode == 0 and out.exists():
            return np.asarray(Image.open(out).convert("RGB"))
        if time.monotonic() > deadline:
            raise AssertionError(f"spicy-screenshot failed: {result.stderr.decode()[-500:]}")
        time.sleep(0.3)


def looks_like_the_desktop(rgb: np.ndarray) -> bool:
    icon = np.frombuffer(desktop._icon(0).data, np.uint8).reshape(32, 32, 4)[..., 2::-1]
    return (rgb.shape == (768, 1024, 3)
            and rgb[5, 5].tolist() == [0x2F, 0x4F, 0x6F]  # the desktop colour
            and np.array_equal(rgb[80:112, 40:72], icon))  # a cached icon, exact (lossless)


def wait_for_picture(port: int, out: Path, check, timeout: float = 60.0) -> None:
    """Screenshots until `check(rgb)` holds: the guest draws a moment after the client
    can connect."""
    deadline = time.monotonic() + timeout
    while not check(screenshot(port, out)):
        assert time.monotonic() < deadline, f"the client never saw the expected picture ({out})"
        time.sleep(0.3)


@pytest.fixture
def serve(tmp_path):
    procs = []

    def start(*args: str) -> int:
        port = free_port()
        proc = subprocess.Popen([*VGPU, "serve", "--port", str(port), *args], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return port

    yield start
    for proc in procs:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        assert "Traceback" not in out, out


def test_serve_desktop_demo(serve, tmp_path):
    port = serve("--demo", "desktop")
    wait_for_picture(port, tmp_path / "shot.ppm", looks_like_the_desktop)


def start_example_guest(serve, tmp_path: Path, *args: str) -> tuple[int, subprocess.Popen]:
    """`vgpu serve --guest SOCKET` and examples/desktop_guest.py (with `args`) attached to
    it: the port and the guest process."""
    sock = tmp_path / "guest.sock"
    port = serve("--guest", str(sock))
    deadline = time.monotonic() + 30
    while not sock.exists():
        assert time.monotonic() < deadline, "the device never listened for a guest"
        time.sleep(0.1)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    guest = subprocess.Popen([sys.executable, str(ROOT / "examples" / "desktop_guest.py"),
                              str(sock), *args], env=env, stderr=subprocess.PIPE, text=True)
    return port, guest


def test_serve_out_of_process_guest(serve, tmp_path):
    port, guest = start_example_guest(serve, tmp_path)
    try:
        wait_for_picture(port, tmp_path / "shot.ppm", looks_like_the_desktop)
        guest.kill()  # a guest that dies leaves the device serving its last picture
        guest.wait(timeout=10)
        assert looks_like_the_desktop(screenshot(port, tmp_path / "after.ppm"))
    finally:
        if guest.poll() is None:
            guest.kill()
        guest.wait(timeout=10)


def test_serve_replay_demo_shows_the_recording(serve, tmp_path):
    port = serve("--demo", f"replay:{ROOT / 'tests' / 'data' / 'basic.spice.xz'}")
    expected = np.asarray(Image.open(ROOT / "tests" / "data" / "basic.png").convert("RGB"))
    wait_for_picture(port, tmp_path / "shot.ppm", lambda seen: np.array_equal(seen, expected))
