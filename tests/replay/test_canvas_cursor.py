"""The cursor channel against the real spice-server: for the same recording, spice-gtk's
cursor channel reports the same shapes, hot spots and visibility from both servers.

Each recording sets one cursor (every SPICE cursor type: monochrome AND/XOR, the palette
and true-colour types with their AND mask, alpha), maybe moves or hides it; a late
spice-gtk client (tests/clients/spice_glib_client.py, its `cursor-set` signal with a
digest of every RGBA pixel) watches spice-server (bench/peer) and `vgpu serve --demo
replay:FILE`'s machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from replay_scene import PrimarySurface, WorkerMessage, record_bytes
from spice_peer import SpicePeer
from spice_testkit import GlibClient, ServerThread, needs_glib

from vgpu.device.commands import CursorCmd, CursorShapeData, QPoint

pytestmark = [pytest.mark.gl, needs_glib]
W, H = 64, 48
CURSOR_SET, CURSOR_MOVE, CURSOR_HIDE = 0, 1, 2
ALPHA, MONO, COLOR4, COLOR8, COLOR16, COLOR24, COLOR32 = range(7)
SETTLE_S = 1.0  # a late client gets the cursor right after the display: quiet this long, done


def shape_data(kind: int, w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    mask = (w + 7) // 8 * h
    pixels = {
        ALPHA: w * h * 4, MONO: mask, COLOR4: (w + 1) // 2 * h + 16 * 4,
        COLOR8: w * h + 256 * 4, COLOR16: w * h * 2, COLOR24: w * h * 3,
        COLOR32: w * h * 4}[kind]
    return rng.integers(0, 256, pixels + (mask if kind != ALPHA else 0), np.uint8).tobytes()


def recording(*cursor_cmds: CursorCmd) -> bytes:
    primary = PrimarySurface(W, H, -W * 4, 32, 0, 1, 0, 0, bytes(W * H * 4))
    return record_bytes([(WorkerMessage.ADD_MEMSLOT, None), (WorkerMessage.START, None),
                         (WorkerMessage.CREATE_PRIMARY_SURFACE, primary),
                         *[(cmd, None) for cmd in cursor_cmds], (WorkerMessage.WAKEUP, None)])


def cursor_lines(port: int) -> list[str]:
    """What a new spice-gtk client's cursor channel reports, once quiet."""
    client = GlibClient("--port", str(port))
    try:
        client.wait_for(lambda line: line.startswith("mark"))
        seen_until = time.monotonic() + SETTLE_S
        while time.monotonic() < seen_until:
            try:
                client.wait_for(lambda line: line.startswith("cursor"), timeout=SETTLE_S)
                seen_until = time.monotonic() + SETTLE_S
            except TimeoutError:
                break
        return [line for line in client.seen if line.startswith("cursor")]
    finally:
        client.close()


def from_spice_server(peer: Path, record: Path) -> list[str]:
    with SpicePeer(peer, record) as server:
        server.wait_done()
        return cursor_lines(server.port)


def from_vgpu(record: Path) -> list[str]:
    from vgpu.machine import Machine

    with Machine.create(demo=f"replay:{record}", width=W, height=H) as machine:
        server = ServerThread(machine)
        try:
            time.sleep(0.5)  # the recording is a few commands: played by then
            return cursor_lines(server.port)
        finally:
            server.stop()


def set_cmd(kind: int, w: int, h: int, hot: tuple[int, int], seed: int,
            visible: bool = True) -> CursorCmd:
    shape = CursorShapeData(0x1000 + seed, kind, w, h, hot[0], hot[1],
                            shape_data(kind, w, h, seed))
    return CursorCmd(0, CURSOR_SET, QPoint(20, 10), visible, shape, 0, 0)


CASES = {
    "alpha": [set_cmd(ALPHA, 12, 19, (0, 0), 1)],
    "mono": [set_cmd(MONO, 16, 16, (7, 7), 2)],
    "mono-odd-width": [set_cmd(MONO, 11, 9, (10, 8), 3)],
    "color4": [set_cmd(COLOR4, 16, 16, (3, 2), 4)],
    "color8": [set_cmd(COLOR8, 16, 16, (1, 1), 5)],
    "color16": [set_cmd(COLOR16, 8, 8, (4, 4), 6)],
    "color24": [set_cmd(COLOR24, 8, 8, (0, 7), 7)],
    "color32": [set_cmd(COLOR32, 8, 8, (2, 5), 8)],
    "set-invisible": [set_cmd(ALPHA, 8, 8, (0, 0), 9, visible=False)],
    "set-then-hide": [set_cmd(ALPHA, 8, 8, (1, 1), 10),
                      CursorCmd(0, CURSOR_HIDE, QPoint(0, 0), False, None, 0, 0)],
    "set-then-move": [set_cmd(MONO, 16, 16, (0, 0), 11),
                      CursorCmd(0, CURSOR_MOVE, QPoint(30, 40), False, None, 0, 0)],
}


@pytest.mark.parametrize("name", list(CASES))
def test_spice_gtk_sees_the_same_cursor(peer: Path, tmp_path: Path, name: str) -> None:
    record = tmp_path / "cursor.spice"
    record.write_bytes(recording(*CASES[name]))
    theirs = from_spice_server(peer, record)
    ours = from_vgpu(record)
    assert theirs, "spice-server's cursor channel reported nothing"
    assert ours == theirs
