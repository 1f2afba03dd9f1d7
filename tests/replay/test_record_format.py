"""Reading and writing spice-server record files: the Xspice fixture, round trips, bad input."""

from __future__ import annotations

import contextlib
import hashlib
import io
import lzma
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replay_scene import record_bytes
from replay_strategies import commands, worker_messages

from vgpu.device.commands import Copy, Drawable, Fill, SurfaceCmd
from vgpu.replay.format import (
    MAX_BLOB_BYTES,
    MAX_CHUNKS,
    MAX_LINE_BYTES,
    CommandEvent,
    RecordFormatError,
    WorkerEvent,
    WorkerMessage,
)
from vgpu.replay.reader import iter_events, read_events
from vgpu.replay.writer import RecordWriter

# sha256 of the uncompressed fixture, from the fixture's README (spice-server wrote it)
FIXTURE_SHA256 = "2826ea8904ad7f7786823b19fcb7078bda618bb137cb3248ef2af511e854e09b"


@pytest.fixture(scope="module")
def fixture_events(data_dir: Path) -> list:
    return list(read_events(data_dir / "basic.spice.xz"))


@pytest.fixture(scope="module")
def fixture_bytes(data_dir: Path) -> bytes:
    return lzma.decompress((data_dir / "basic.spice.xz").read_bytes())


def kind(event: CommandEvent | WorkerEvent) -> str:
    if isinstance(event, WorkerEvent):
        return event.message.name
    return type(event.command).__name__


def test_fixture_counts_match_its_description(fixture_events: list) -> None:
    counts = Counter(kind(e) for e in fixture_events)
    assert len(fixture_events) == 1436
    assert counts == {
        "Drawable": 912, "SurfaceCmd": 2, "WAKEUP": 452, "UPDATE": 61,
        "MONITORS_CONFIG_ASYNC": 2, "ADD_MEMSLOT": 1, "START": 1, "RESET_CURSOR": 1,
        "RESET_IMAGE_CACHE": 1, "DESTROY_SURFACES": 1, "CREATE_PRIMARY_SURFACE": 1,
        "SET_MOUSE_MODE": 1,
    }
    draws = [e.command for e in fixture_events
             if isinstance(e, CommandEvent) and isinstance(e.command, Drawable)]
    assert Counter(type(d.op).__name__ for d in draws) == {"Fill": 850, "Copy": 62}
    assert all(d.clip is None for d in draws)
    assert all(d.op.rop_descriptor == 8 for d in draws)
    assert sum(d.surface_id == 0 for d in draws) == 911
    copies = [d.op for d in draws if isinstance(d.op, Copy)]
    assert all(c.src_bitmap.descriptor.type == 0 and c.src_bitmap.top_down for c in copies)
    fills = [d.op for d in draws if isinstance(d.op, Fill)]
    assert all(f.brush is not None and f.brush.color < 1 << 24 for f in fills)
    formats = sorted(e.command.create.format for e in fixture_events
                     if isinstance(e, CommandEvent) and isinstance(e.command, SurfaceCmd))
    assert formats == [32, 96]  # one 32_xRGB, one 32_ARGB
    assert [e.counter for e in fixture_events] == list(range(1436))


def test_fixture_primary(fixture_events: list) -> None:
    (create,) = [e for e in fixture_events
                 if isinstance(e, WorkerEvent) and e.primary is not None]
    p = create.primary
    assert (p.width, p.height, p.stride, p.format) == (1024, 768, -4096, 32)
    assert p.data == bytes(4096 * 768)


def test_rewriting_the_fixture_reproduces_it_byte_for_byte(fixture_events: list,
                                                            fixture_bytes: bytes) -> None:
    assert hashlib.sha256(fixture_bytes).hexdigest() == FIXTURE_SHA256
    stamps = iter(e.timestamp for e in fixture_events)
    out = io.BytesIO()
    writer = RecordWriter(out, clock=lambda: next(stamps))
    for event in fixture_events:
        writer.write(event)
    assert out.getvalue() == fixture_bytes


def test_plain_and_xz_read_the_same(tmp_path: Path, fixture_bytes: bytes,
                                    fixture_events: list) -> None:
    plain = tmp_path / "basic.spice"
    plain.write_bytes(fixture_bytes)
    assert list(read_events(plain)) == fixture_events


def _write(items: list) -> bytes:
    return record_bytes(items, clock=lambda: 12345)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(commands, worker_messages()), max_size=6))
def test_every_command_and_message_round_trips(items: list) -> None:
    events = list(iter_events(io.BytesIO(_write(items))))
    got = [(e.message, e.primary) if isinstance(e, WorkerEvent) else (e.command, e.surface_data)
           for e in events]
    assert got == items
    assert [e.counter for e in events] == list(range(len(items)))


def _error(data: bytes) -> RecordFormatError:
    with pytest.raises(RecordFormatError) as info:
        list(iter_events(io.BytesIO(data), "t"))
    return info.value


def test_errors_name_the_line(fixture_bytes: bytes) -> None:
    lines = fixture_bytes.split(b"\n")
    # damage a drawable's bbox well after the primary's 3 MiB data blob
    target = [i for i, line in enumerate(lines) if line.startswith(b"rect bbox")][100]
    lines[target] = b"rect bbox 1 2 x 4"
    err = _error(b"\n".join(lines))
    assert err.line == target + 1
    assert "not a decimal number" in str(err) and f"t:{target + 1}:" in str(err)


@pytest.mark.parametrize(("data", "reason"), [
    (b"SPICE_REPLAY 2\n", "not a spice-server record"),
    (b"SPICE_REPLAY 1\nevent 0 1 99 5\n", "unknown worker message 99"),
    (b"SPICE_REPLAY 1\nevent 0 0 7 5\n", "unknown QXL command type 7"),
    (b"SPICE_REPLAY 1\nevent 0 2 1 5\n", "unknown event kind"),
    (b"SPICE_REPLAY 1\nevent 0 0 2 5\nupdate\nrect area 1 2 3\n", "takes 4 numbers"),
    (b"SPICE_REPLAY 1\nevent 0 0 2 5\nupdate\n", "unexpected end of file"),
    (b"SPICE_REPLAY 1\nevent 0 0 4 5\nbinary 0 message 10:abc", "unexpected end of file"),
    (b"SPICE_REPLAY 1\nevent 0 0 4 5\nbinary 0 message %d:" % (MAX_BLOB_BYTES + 1),
     "exceeds"),
    (b"SPICE_REPLAY 1\nevent 0 0 4 5\nbinary 0 message 3:abcX", "not followed by a line end"),
    (b"SPICE_REPLAY 1\nevent 0 0 4 5\nbinary 1 message 3:9:xxxxxxxxx\n", "bad zlib data"),
    (b"SPICE_REPLAY 1\nevent 0 1 1 5_0\n", "not a decimal number"),
    (b"SPICE_REPLAY 1\nevent 0 1 1 " + b"9" * (MAX_LINE_BYTES + 10), "longer than"),
    (b"SPICE_REPLAY 1\nevent 0 0 3 5\ncursor_cmd\ntype 0\npoint16 1 99999\n", "out of range"),
    (b"SPICE_REPLAY 1\nevent 0 0 3 5\ncursor_cmd\ntype 0\npoint16 1 1\nu.set.visible 1\n"
     b"header.unique 1\nheader.type 0\nheader.width 1\nheader.height 1\nheader.hot_spot_x 0\n"
     b"header.hot_spot_y 0\ndata_size 4\ndata_chunks %d 4\n" % MAX_CHUNKS, "chunks exceed"),
])
def test_malformed_records_are_rejected(data: bytes, reason: str) -> None:
    assert reason in str(_error(data))


def test_huge_declared_sizes_allocate_nothing() -> None:
    # a bitmap that claims 2^32 - 1 rows of 2^32 - 1 bytes is refused before any read
    record = (b"SPICE_REPLAY 1\nevent 0 0 1 5\ndrawable\nrect bbox 0 0 1 1\ntype 0\neffect 0\n"
              b"mm_time 0\nself_bitmap 0\nrect self_bitmap_area 0 0 0 0\nsurface_id 0\n"
              + b"surfaces_dest -1\nrect surfaces_rects 0 0 0 0\n" * 3
              + b"type 3\nimage 1\ndescriptor.id 1\ndescriptor.type 0\ndescriptor.flags 0\n"
              b"descriptor.width 1\ndescriptor.height 1\nbitmap.format 8\nbitmap.flags 1\n"
              b"bitmap.x -1\nbitmap.y -1\nbitmap.stride -1\nhas_palette 0\n")
    assert "too large" in str(_error(record))


def test_ends_cleanly_only_on_event_boundaries(fixture_bytes: bytes) -> None:
    head = fixture_bytes[:3_300_000]
    cut = head.rindex(b"\nevent ") + 1
    events = list(iter_events(io.BytesIO(head[:cut])))
    assert len(events) > 50 and events[-1].line <= head[:cut].count(b"\n")
    assert "unexpected end of file" in str(_error(head[:cut + 10]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(commands, worker_messages()), min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), min_size=1,
                max_size=8))
def test_mutated_records_give_only_format_errors(items: list, edits: list) -> None:
    data = bytearray(_write(items))
    for pos, value in edits:
        data[pos % len(data)] = value
    with contextlib.suppress(RecordFormatError):
        list(iter_events(io.BytesIO(bytes(data))))


def test_writer_refuses_what_the_format_cannot_hold() -> None:
    with pytest.raises(ValueError, match="primary surface"):
        RecordWriter(io.BytesIO()).worker_message(WorkerMessage.CREATE_PRIMARY_SURFACE)


@pytest.mark.parametrize("module", ["vgpu.replay.reader", "vgpu.replay.writer",
                                    "vgpu.replay.recorder"])
def test_format_and_recorder_stand_on_the_device_layer(module: str) -> None:
    """The record format and the recorder run beside a device (`vgpu serve --record`): they
    import the device layer and nothing of the guest, the renderer, the encoders or SPICE."""
    probe = (f"import sys, {module}; "
             "print(' '.join(m for m in sys.modules if m.startswith('vgpu.')))")
    root = Path(__file__).resolve().parents[2]  # `-c` imports from the working folder
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                            text=True, cwd=root).stdout.split()
    assert module in loaded
    above = [m for m in loaded
             if m.split(".")[1] in ("guest", "render", "encode", "spice", "machine")]
    assert above == []
