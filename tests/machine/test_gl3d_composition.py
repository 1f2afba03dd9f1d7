"""3D through the ring as stock clients and the preview see it: `vgpu serve --demo cube`
(full screen) and the desktop demo's 3D window (2D and 3D on one surface, presented with
damage). Two spicy-screenshots a moment apart differ where the cube turns and nowhere the
desktop stands still."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from test_cli_end_to_end import (
    looks_like_the_desktop,
    screenshot,
    serve,
    start_example_guest,
    wait_for_picture,
)
from test_preview import x_display

from vgpu.guest import anim, cube, desktop

pytestmark = pytest.mark.gl
__all__ = ["serve", "x_display"]  # fixtures shared with the 2D end-to-end tests

BACKGROUND_RGB = [round(c * 255) for c in cube.BACKGROUND[:3]]
WINDOW = desktop.DesktopScene(window_3d=True).window_3d
SHOT_GAP_S = 0.5
"""Between two screenshots: the cube turns by about half a radian."""


def _cube_in(rgb: np.ndarray) -> bool:
    """The cube's background in the corners (the bottom-left one right of the frame
    counter the full-screen demo stamps there), something else (the cube) in the middle."""
    h, w = rgb.shape[:2]
    left = anim.STAMP_BITS * anim.STAMP_BLOCK + 2
    corners = [rgb[2, 2], rgb[2, w - 3], rgb[h - 3, left], rgb[h - 3, w - 3]]
    return (all(c.tolist() == BACKGROUND_RGB for c in corners)
            and rgb[h // 2, w // 2].tolist() != BACKGROUND_RGB)


def test_cube_demo_moves(serve, tmp_path):
    port = serve("--demo", "cube")
    wait_for_picture(port, tmp_path / "a.ppm", _cube_in)
    first = screenshot(port, tmp_path / "a.ppm")
    time.sleep(SHOT_GAP_S)
    second = screenshot(port, tmp_path / "b.ppm")
    assert _cube_in(second) and first.shape == (768, 1024, 3)
    assert not np.array_equal(first, second)


def test_cube_guest_over_the_unix_socket(serve, tmp_path):
    """The same guest library in another process: batches, fences and replies through the
    transport's shared memory and doorbells."""
    port, guest = start_example_guest(serve, tmp_path, "--cube")
    try:
        wait_for_picture(port, tmp_path / "a.ppm", _cube_in)
        first = screenshot(port, tmp_path / "a.ppm")
        time.sleep(SHOT_GAP_S)
        assert not np.array_equal(first, screenshot(port, tmp_path / "b.ppm"))
    finally:
        guest.terminate()
        _, err = guest.communicate(timeout=30)
    assert "Traceback" not in err, err


def _body(rgb: np.ndarray) -> np.ndarray:
    b = WINDOW.body
    return rgb[b.top:b.bottom, b.left:b.right]


def test_desktop_3d_window_moves_inside_only(serve, tmp_path):
    port = serve("--demo", "desktop")
    wait_for_picture(port, tmp_path / "a.ppm",
                     lambda rgb: looks_like_the_desktop(rgb) and _cube_in(_body(rgb)))
    first = screenshot(port, tmp_path / "a.ppm")
    time.sleep(SHOT_GAP_S)
    second = screenshot(port, tmp_path / "b.ppm")
    assert not np.array_equal(_body(first), _body(second))  # the cube turned
    r = WINDOW.rect
    # Outside: the 2D window frame around the 3D body, the icon column and the desktop
    # below the windows are drawn once and never change.
    for part in (np.s_[r.top:WINDOW.body.top, r.left:r.right], np.s_[:, :170],
                 np.s_[730:, :]):
        assert np.array_equal(first[part], second[part])


def test_preview_shows_the_cube(x_display, tmp_path):
    shot = tmp_path / "preview.png"
    result = subprocess.run(
        [sys.executable, "-m", "vgpu.cli", "preview", "--demo", "cube", "--frames", "30",
         "--screenshot", str(shot)],
        env=dict(os.environ, DISPLAY=x_display), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    from PIL import Image

    assert _cube_in(np.asarray(Image.open(shot).convert("RGB")))
