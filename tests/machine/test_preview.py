"""`vgpu preview`: the local glfw window shows the guest's frames (under Xvfb)."""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from vgpu.guest import desktop

pytestmark = [pytest.mark.gl,
              pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")]


@pytest.fixture
def x_display():
    """A private X server; its display number is chosen by Xvfb itself."""
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x900x24",
                             "-nolisten", "tcp"], pass_fds=(write_fd,),
                            stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        number = f.readline().strip()
    yield f":{number}"
    xvfb.terminate()
    xvfb.wait(timeout=10)


def test_preview_window_shows_the_desktop(x_display, tmp_path):
    shot = tmp_path / "preview.png"
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "vgpu.cli", "preview", "--demo", "desktop", "--frames", "30",
         "--screenshot", str(shot)],
        env=dict(os.environ, DISPLAY=x_display), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 120
    rgb = np.asarray(Image.open(shot).convert("RGB"))
    assert rgb.shape == (768, 1024, 3)
    assert rgb[5, 5].tolist() == [0x2F, 0x4F, 0x6F]
    icon = np.frombuffer(desktop._icon(0).data, np.uint8).reshape(32, 32, 4)[..., 2::-1]
    assert np.array_equal(rgb[80:112, 40:72], icon)
