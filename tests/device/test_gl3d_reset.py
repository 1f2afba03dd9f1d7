"""QXL RESET drops every 3D context and drawable; DESTROY_ALL_SURFACES drops the QXL
surfaces only and keeps them (docs/3d-ring.md, "Reset"). Through the device with the
recording backend, and end to end with the GL renderer and its executor."""

from __future__ import annotations

import pytest
from qxl_support import SMALL_RAM, SMALL_VRAM, RecordingBackend

from tests.render.gl3d_helpers import batch, vgpu
from vgpu.device.device import Device
from vgpu.device.inprocess import InProcessAttachment
from vgpu.guest.driver import GuestDriver


def test_reset_resets_3d_and_destroy_all_does_not(device: Device, guest: GuestDriver,
                                                  backend: RecordingBackend) -> None:
    guest.create_primary(64, 48)
    guest.destroy_all_surfaces()
    assert backend.resets_3d == 0 and ("reset",) in backend.calls
    guest.reset()
    assert backend.resets_3d == 1


@pytest.mark.gl
def test_a_guest_that_resets_finds_no_stale_contexts() -> None:
    from vgpu.render import Renderer
    from vgpu.render.context import create_context

    try:
        ctx = create_context()
    except Exception as e:  # no EGL here: the renderer's own tests say why
        pytest.skip(f"no OpenGL context: {e}")
    renderer = Renderer(ctx)
    device = Device(renderer, ram_size=SMALL_RAM, vram_size=SMALL_VRAM, n_surfaces=64)
    guest = GuestDriver(InProcessAttachment(device, inline=True), chunk_size=1024)
    try:
        counters = guest.gl_fence_counters
        make = batch(vgpu("CONTEXT_CREATE", 1, 3, 0), vgpu("SURFACE_CREATE", 1, 32, 32, 1, 0),
                     vgpu("MAKE_CURRENT", 1, 1))
        guest.create_primary(64, 48)
        guest.gl_submit(make)
        assert guest.gl_wait_fence(guest.gl_fence(), 5) and counters.errors == 0
        guest.destroy_all_surfaces()  # the 3D context and its drawable stay...
        guest.gl_submit(make)
        assert guest.gl_wait_fence(guest.gl_fence(), 5) and counters.errors == 2
        assert renderer.gl3d is not None and len(renderer.gl3d._drawables) == 1
        guest.reset()  # ...until RESET
        assert len(renderer.gl3d._drawables) == 0
        guest.gl_submit(make)  # context 1 and drawable 1 are new again, not duplicates
        assert guest.gl_wait_fence(guest.gl_fence(), 5)
        assert (counters.errors, counters.lost_contexts) == (0, 0)
    finally:
        guest.close()
        device.close()
        renderer.close()
        ctx.release()
