"""The running machine: render thread, built-in guests, frames, cursor and input."""

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgpu.display import InputEvent
from vgpu.guest import desktop
from vgpu.machine import Machine

pytestmark = pytest.mark.gl

DATA = Path(__file__).resolve().parent.parent / "data"


def wait_frame(sub, until, timeout=20.0):
    """The first frame taken from `sub` for which `until(frame)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        taken = sub.take()
        if taken is not None and until(taken[0]):
            return taken[0]
        time.sleep(0.02)
    raise AssertionError("no matching frame in time")


def bgr(color: int) -> tuple[int, int, int]:
    return (color & 0xFF, (color >> 8) & 0xFF, (color >> 16) & 0xFF)


def test_desktop_demo_draws_and_answers_input():
    with Machine.create(demo="desktop") as machine:
        sub = machine.frames.subscribe()
        body = desktop.DesktopScene().terminal.body
        # the first icon arrives through the image cache and is drawn where the scene put it
        icon = np.frombuffer(desktop._icon(0).data, np.uint8).reshape(32, 32, 4)[..., :3]

        def scene_drawn(f):
            # frames are published whenever the device runs dry, so early ones may show
            # the background before the terminal and the icons are drawn over it
            return (f.pixels[5, 5, :3].tolist() == list(bgr(desktop.DESKTOP))
                    and f.pixels[body.bottom - 2, body.right - 3, :3].tolist()
                    == list(bgr(desktop.TERMINAL_BG))
                    and np.array_equal(f.pixels[80:112, 40:72, :3], icon))

        frame = wait_frame(sub, scene_drawn)
        assert (frame.width, frame.height) == (1024, 768)

        # the guest set a pointer on the cursor ring
        deadline = time.monotonic() + 5
        while machine.cursor.state().shape is None and time.monotonic() < deadline:
            time.sleep(0.02)
        state = machine.cursor.state()
        assert state.visible and state.shape is not None and state.shape.width == 12

        # typing reaches the guest, which draws "$ hi" on its prompt line: the lowest
        # terminal row with text then holds exactly the ink of those glyphs
        glyphs = desktop.GlyphCache()
        ink = sum(bin(byte).count("1") for ch in "$hi" for byte in glyphs._glyph(ch)[4])  # A1
        fg = np.array(bgr(desktop.TERMINAL_FG), np.uint8)

        def prompt_ink(f):
            rows = np.all(f.pixels[body.top:body.bottom, body.left:body.right, :3] == fg, -1)
            per_line = rows[: rows.shape[0] // desktop.LINE_HEIGHT * desktop.LINE_HEIGHT]
            per_line = per_line.reshape(-1, desktop.LINE_HEIGHT, rows.shape[1]).sum(axis=(1, 2))
            inked = np.nonzero(per_line)[0]
            # a frame taken while the terminal is being redrawn may hold no text yet
            return int(per_line[inked[-1]]) if inked.size else 0

        for code in (0x23, 0x17):  # "h", "i"
            machine.send_input(InputEvent("key_down", code))
            machine.send_input(InputEvent("key_up", code | 0x80))
        wait_frame(sub, lambda f: prompt_ink(f) == ink)

        machine.send_input(InputEvent("mouse_position", x=300, y=200))
        deadline = time.monotonic() + 5
        while (machine.cursor.state().x, machine.cursor.state().y) != (300, 200):
            assert time.monotonic() < deadline, "the pointer did not follow the client"
            time.sleep(0.02)
        assert machine.device.guest_bug is None
        assert machine.guest_error is None


def test_idle_guest_publishes_nothing():
    with Machine.create(demo=f"replay:{DATA / 'basic.spice.xz'}") as machine:
        sub = machine.frames.subscribe()
        expected = np.asarray(Image.open(DATA / "basic.png").convert("RGB"))[..., ::-1]
        wait_frame(sub, lambda f: np.array_equal(f.pixels[..., :3], expected), timeout=60)
        time.sleep(0.5)
        sub.take()  # anything published while the replay finished
        time.sleep(1.0)
        assert sub.take() is None, "an idle screen must not produce frames"


def test_create_rejects_bad_guests(tmp_path):
    with pytest.raises(ValueError):
        Machine.create()
    with pytest.raises(ValueError):
        Machine.create(demo="nonsense")
    with pytest.raises(ValueError):
        Machine.create(demo=f"replay:{tmp_path / 'missing.spice'}")


def test_cube_demo_is_never_left_waiting_for_a_doorbell():
    """The render thread breaks off between ring items to publish a frame; the item left
    behind rings no doorbell (the device asks for one only when it finds the ring empty),
    so waiting for one stalled the cube demo to one frame per IDLE_WAIT_S (under 2 frames a
    second). Frames are told apart by the counter the demo stamps in the corner."""
    from vgpu.guest.anim import read_stamp
    from vgpu.machine import IDLE_WAIT_S

    seconds = 3.0
    stamps = set()
    with Machine.create(demo="cube", width=320, height=240) as machine:
        sub = machine.frames.subscribe()
        wait_frame(sub, lambda f: read_stamp(f.pixels) > 0)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            taken = sub.take()
            if taken is not None:
                stamps.add(read_stamp(taken[0].pixels))
            time.sleep(0.005)
    assert len(stamps) > 4 * seconds / IDLE_WAIT_S, sorted(stamps)
    assert max(stamps) - min(stamps) >= len(stamps) - 1  # counters of distinct frames
