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
    length = h * abs(stride)
    data = bytes(range(256)) * (length // 256) + bytes(length % 256)
    off = guest.alloc_surface_memory(length, data)
    create = c.SurfaceCmd(0, 5, lib.QXL_SURFACE_CMD_CREATE, lib.QXL_SURF_FLAG_KEEP_DATA,
                          c.SurfaceCreate(fmt, w, h, stride, off, length))
    _roundtrip(device, guest, capture, create)
    call = backend.calls[-1]
    assert call[:6] == ("surface_created", 5, w, h, stride, fmt)
    rows = [data[y * abs(stride):(y + 1) * abs(stride)] for y in range(h)]
    if negative:
        rows.reverse()  # the initial content is handed over top row first
    assert call[6].tobytes() == b"".join(rows)
    _roundtrip(device, guest, capture, c.SurfaceCmd(0, 5, lib.QXL_SURFACE_CMD_DESTROY, 0, None))
    assert backend.calls[-1] == ("surface_destroyed", 5)
    guest.free_surface_memory(off)
    assert guest.alloc_surface_memory(length) == off  # freed, and zeroed when handed out again
    _roundtrip(device, guest, capture, create)
    assert backend.calls[-1][6].tobytes() == bytes(length)


@pytest.mark.parametrize("data", [b"", bytes(range(256)) * (16 * 8 * 4 // 256)],
                         ids=["zeros", "pattern"])
def test_primary_initial_memory(device, guest, backend, data) -> None:
    """create_primary(data=...) hands the device that memory as the primary's first picture;
    b"" is all zeros, even where the area held another picture before."""
    w, h = 16, 8
    keep = lib.QXL_SURF_FLAG_KEEP_DATA  # without it the device starts the primary black
    guest.create_primary(w, h, flags=keep, data=b"\xff" * (w * h * 4))
    guest.destroy_primary()
    guest.create_primary(w, h, flags=keep, data=data)
    call = backend.calls[-1]
    assert call[:5] == ("create_primary", w, h, w * 4, lib.SPICE_SURFACE_FMT_32_xRGB)
    assert call[5].tobytes() == (data or bytes(w * h * 4))
