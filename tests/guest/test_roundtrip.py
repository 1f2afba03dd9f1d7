"""Every command type: guest builder -> guest memory -> device parser gives an equal value."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qxl_support import (
    compat_drawables,
    cursor_cmds,
    drawables,
    messages,
    updates,
)

from vgpu.device import commands as c
from vgpu.device.abi import lib

RT = settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow, HealthCheck.data_too_large])


def _roundtrip(device, guest, capture, cmd, compat: bool = False) -> None:
    capture.commands.clear()
    rid = guest.submit(cmd, compat=compat)
    assert device.guest_bug is None, device.guest_bug
    assert capture.commands == [dataclasses.replace(cmd, release_id=rid)]
    guest.flush_release()


@pytest.fixture
def primary(guest) -> None:
    guest.create_primary(640, 480)


@RT
@given(cmd=drawables)
def test_drawables_roundtrip(device, guest, capture, primary, cmd) -> None:
    _roundtrip(device, guest, capture, cmd)


@RT
@given(cmd=compat_drawables)
def test_compat_drawables_roundtrip(device, guest, capture, cmd) -> None:
    if 0 not in device.surfaces:
        guest.set_mode(0)  # qxl-1 mode set: the device reads compat drawables
    assert device.compat
    _roundtrip(device, guest, capture, cmd, compat=True)


@RT
@given(cmd=st.one_of(cursor_cmds, updates, messages))
def test_cursor_update_message_roundtrip(device, guest, capture, primary, cmd) -> None:
    _roundtrip(device, guest, capture, cmd)


@RT
@given(cmd=updates.map(lambda u: dataclasses.replace(u, surface_id=0)))
def test_compat_update_roundtrip(device, guest, capture, cmd) -> None:
    if 0 not in device.surfaces:
        guest.set_mode(1)
    _roundtrip(device, guest, capture, cmd, compat=True)


@pytest.mark.parametrize("fmt,bpp", [(lib.SPICE_SURFACE_FMT_32_xRGB, 4),
                                     (lib.SPICE_SURFACE_FMT_32_ARGB, 4),
                                     (lib.SPICE_SURFACE_FMT_16_565, 2),
                                     (lib.SPICE_SURFACE_FMT_8_A, 1)])
@pytest.mark.parametrize("negative", [False, True])
def test_surface_commands_roundtrip(device, guest, capture, backend, fmt, bpp,
                                    negative) -> None:
    w, h = 33, 7
    stride = (w * bpp + 3) // 4 * 4
    stride = -stride if negative else stride
    off = guest.vram_alloc.alloc(h * abs(stride))
    guest.buf[off:off + h * abs(stride)] = bytes(range(256)) * (h * abs(stride) // 256) + bytes(
        h * abs(stride) % 256)
    create = c.SurfaceCmd(0, 5, lib.QXL_SURFACE_CMD_CREATE, lib.QXL_SURF_FLAG_KEEP_DATA,
                          c.SurfaceCreate(fmt, w, h, stride, off, h * abs(stride)))
    _roundtrip(device, guest, capture, create)
    call = backend.calls[-1]
    assert call[:6] == ("surface_created", 5, w, h, stride, fmt)
    rows = [bytes(guest.buf[off + y * abs(stride):off + (y + 1) * abs(stride)])
            for y in range(h)]
    if negative:
        rows.reverse()  # the initial content is handed over top row first
    assert call[6].tobytes() == b"".join(rows)
    _roundtrip(device, guest, capture, c.SurfaceCmd(0, 5, lib.QXL_SURFACE_CMD_DESTROY, 0, None))
    assert backend.calls[-1] == ("surface_destroyed", 5)
