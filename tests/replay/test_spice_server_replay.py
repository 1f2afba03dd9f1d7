"""The real spice-server reads what we write: spice_replay_next_cmd + its worker, via a C check.

spice_replay_check.c (next to this file) is compiled against libspice-server;
the tests skip when the library or a compiler is missing.
"""

from __future__ import annotations

import dataclasses
import lzma
from pathlib import Path

from replay_scene import record_bytes, scene
from spice_check import run_check

from vgpu.device.commands import Copy, Drawable, ImageDescriptor, QRect, SurfaceImage
from vgpu.replay import WorkerMessage


def test_spice_server_replays_the_xspice_fixture(checker: Path, data_dir: Path,
                                                 tmp_path: Path) -> None:
    record = lzma.decompress((data_dir / "basic.spice.xz").read_bytes())
    rc, stats, err = run_check(checker, record, tmp_path)
    assert rc == 0, err
    assert stats == {"commands": 914, "releases": 914, "warnings": 0, "bytes_left": 0}


def test_spice_server_replays_what_we_write(checker: Path, tmp_path: Path) -> None:
    items = scene()
    n_commands = sum(not isinstance(item, WorkerMessage) for item, _ in items)
    rc, stats, err = run_check(checker, record_bytes(items), tmp_path)
    assert rc == 0, err
    assert stats == {"commands": n_commands, "releases": n_commands, "warnings": 0,
                     "bytes_left": 0}


def test_the_check_sees_a_cut_file(checker: Path, tmp_path: Path) -> None:
    items = scene()
    n_commands = sum(not isinstance(item, WorkerMessage) for item, _ in items)
    record = record_bytes(items)
    # spice-server's reader stops quietly at a damaged record: the count shows it
    cut = record.index(b"rect bbox 100 50 ")
    rc, stats, _ = run_check(checker, record[:cut] + b"rect bbox x" + record[cut + 11:], tmp_path)
    assert stats["commands"] < n_commands and stats["bytes_left"] > 0 and rc != 0


def test_the_check_fails_when_spice_server_rejects_a_command(checker: Path,
                                                             tmp_path: Path) -> None:
    items = scene()
    # a copy from surface 77, which was never created
    bad = next(i for i, (item, _) in enumerate(items)
               if isinstance(item, Drawable) and isinstance(item.op, Copy))
    op = dataclasses.replace(items[bad][0].op, src_bitmap=SurfaceImage(
        ImageDescriptor(1, 104, 0, 8, 8), 77), src_area=QRect(0, 0, 8, 8))
    items[bad] = (dataclasses.replace(items[bad][0], op=op), None)
    rc, stats, _ = run_check(checker, record_bytes(items), tmp_path)
    assert rc != 0 and stats["warnings"] > 0
