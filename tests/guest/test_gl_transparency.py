"""Transparency: each scene of gl_scenes.py, run with moderngl directly and through
vgpu.guest.gl, gives identical bytes on the same renderer (llvmpipe).

Two ways through the guest library: the whole path (guest driver, 3D ring, device, the GL
renderer's executor on its render thread), and, so the guest library is checked on its own
too, gl_reference.py's model of the host side on a second moderngl context."""

from __future__ import annotations

import queue
import threading

import pytest
from gl_scenes import SCENES

from vgpu.guest import gl

pytestmark = pytest.mark.gl

RING_TIMEOUT_S = 120.0
"""A scene through the ring on a busy 2-core machine: seconds, not minutes."""


def _moderngl_direct(scene) -> bytes:
    import moderngl

    try:
        ctx = moderngl.create_standalone_context(backend="egl")
    except Exception as e:
        pytest.skip(f"no OpenGL context: {e}")
    try:
        return scene(ctx)
    finally:
        ctx.release()


@pytest.mark.parametrize("scene", SCENES, ids=lambda s: s.__name__)
def test_guest_library_matches_moderngl(scene) -> None:
    import moderngl
    from gl_reference import ReferenceRing

    expected = _moderngl_direct(scene)
    host = moderngl.create_standalone_context(backend="egl")
    try:
        ring = ReferenceRing()
        got = scene(gl.create_context(ring, (16, 16)))
    finally:
        host.release()
    assert got == expected


class RingGuest:
    """A machine (render thread: device, renderer, executor) whose built-in guest runs the
    scenes it is handed through vgpu.guest.gl, one context each."""

    def __init__(self) -> None:
        from vgpu.machine import Machine

        self.jobs: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.machine = Machine(self._guest).start()

    def _guest(self, machine, stop: threading.Event) -> None:
        from vgpu.machine import _attach

        driver = _attach(machine)
        try:
            while not stop.is_set():
                try:
                    scene = self.jobs.get(timeout=0.2)
                except queue.Empty:
                    continue
                ctx = gl.create_context(driver, (16, 16))
                try:
                    self.results.put(scene(ctx))
                except BaseException as e:  # handed to the test
                    self.results.put(e)
                finally:
                    ctx.release()
        finally:
            driver.close()

    def run(self, scene) -> bytes:
        self.jobs.put(scene)
        got = self.results.get(timeout=RING_TIMEOUT_S)
        if isinstance(got, BaseException):
            raise got
        return got


@pytest.fixture(scope="module")
def ring_guest():
    guest = RingGuest()
    yield guest
    guest.machine.stop()


@pytest.mark.parametrize("scene", SCENES, ids=lambda s: s.__name__)
def test_ring_matches_moderngl(ring_guest, scene) -> None:
    assert ring_guest.run(scene) == _moderngl_direct(scene)
