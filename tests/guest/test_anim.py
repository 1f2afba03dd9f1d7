"""The animation guest: every frame new, its counter readable, rendered exactly."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vgpu.guest.anim import AnimScene, draw_stamp, read_stamp


def test_stamp_round_trip():
    pixels = np.zeros((64, 320, 4), np.uint8)
    for value in (0, 1, 0xBEEF, 0xFFFF):
        draw_stamp(pixels, value)
        assert read_stamp(pixels) == value


def test_every_frame_changes_almost_every_pixel():
    scene = AnimScene(320, 240)
    scene.count = 5
    a = scene.frame()
    scene.count = 6
    b = scene.frame()
    changed = (a[..., :3] != b[..., :3]).any(axis=2).mean()
    assert changed > 0.9 and read_stamp(a) == 5 and read_stamp(b) == 6


def test_too_small_a_screen_is_refused():
    with pytest.raises(ValueError):
        AnimScene(200, 100)


@pytest.mark.gl
def test_the_machine_renders_the_guests_frames_exactly():
    """Through the guest driver, the device and the GL renderer: each published frame
    is the guest's picture for the counter it carries."""
    from vgpu.machine import Machine

    machine = Machine.create(demo="anim", width=320, height=240)
    reference = AnimScene(320, 240)
    frames = []
    got = threading.Event()
    sub = machine.frames.subscribe(lambda: got.set())
    with machine:
        deadline = time.monotonic() + 20
        while len(frames) < 5 and time.monotonic() < deadline:
            if got.wait(1):
                got.clear()
                taken = sub.take()
                # Counter 0: the new primary before the guest's first COPY.
                if taken is not None and read_stamp(taken[0].pixels):
                    frames.append(taken[0].pixels.copy())
    assert len(frames) >= 5
    for pixels in frames:
        reference.count = read_stamp(pixels)
        assert (pixels[..., :3] == reference.frame()[..., :3]).all()
