"""Recording a running device's session in spice-server's record format.

`Recorder(path).attach(device)` (a device observer; `vgpu serve --record FILE`)
formats each command and worker message on the device's thread with
`vgpu.replay.writer.RecordWriter` and hands its bytes to `RecordFile`, whose own
thread compresses (xz) and writes them: no compression and no file write runs on
the device's (the render) thread. The file ends at an event's end whenever the
process dies, and a ".xz" file is a chain of independently readable xz streams,
so a recording cut by SIGKILL is read by `vgpu replay` and by spice-server's
replay API up to its last finished stream.
"""

from __future__ import annotations

import io
import logging
import lzma
import os
import queue
import threading
import time
from pathlib import Path

from vgpu.device.abi import lib
from vgpu.device.commands import Command, SurfaceCmd
from vgpu.device.device import Device, DeviceObserver, PrimaryCreate
from vgpu.device.memory import GuestMemory
from vgpu.replay.format import PrimarySurface, WorkerMessage
from vgpu.replay.writer import RecordWriter

log = logging.getLogger(__name__)

# IO ports and the worker message spice-server records for them (QEMU's qxl makes
# these calls); CREATE_PRIMARY and SET_MODE are recorded from on_primary_created,
# which carries the surface's memory, and RESET expands into the four calls of
# QEMU's qxl_hard_reset.
_IO_MESSAGES: dict[int, tuple[WorkerMessage, ...]] = {
    lib.QXL_IO_NOTIFY_CMD: (WorkerMessage.WAKEUP,),
    lib.QXL_IO_NOTIFY_CURSOR: (WorkerMessage.WAKEUP,),
    lib.QXL_IO_UPDATE_AREA: (WorkerMessage.UPDATE,),
    lib.QXL_IO_UPDATE_AREA_ASYNC: (WorkerMessage.UPDATE_ASYNC,),
    lib.QXL_IO_NOTIFY_OOM: (WorkerMessage.OOM,),
    lib.QXL_IO_RESET: (WorkerMessage.RESET_CURSOR, WorkerMessage.RESET_IMAGE_CACHE,
                       WorkerMessage.DESTROY_SURFACES, WorkerMessage.RESET_MEMSLOTS),
    lib.QXL_IO_MEMSLOT_ADD: (WorkerMessage.ADD_MEMSLOT,),
    lib.QXL_IO_MEMSLOT_ADD_ASYNC: (WorkerMessage.ADD_MEMSLOT_ASYNC,),
    lib.QXL_IO_MEMSLOT_DEL: (WorkerMessage.DEL_MEMSLOT,),
    lib.QXL_IO_DETACH_PRIMARY: (WorkerMessage.DESTROY_PRIMARY_SURFACE,),
    lib.QXL_IO_DESTROY_PRIMARY: (WorkerMessage.DESTROY_PRIMARY_SURFACE,),
    lib.QXL_IO_DESTROY_PRIMARY_ASYNC: (WorkerMessage.DESTROY_PRIMARY_SURFACE_ASYNC,),
    lib.QXL_IO_DESTROY_SURFACE_WAIT: (WorkerMessage.DESTROY_SURFACE_WAIT,),
    lib.QXL_IO_DESTROY_SURFACE_ASYNC: (WorkerMessage.DESTROY_SURFACE_WAIT_ASYNC,),
    lib.QXL_IO_DESTROY_ALL_SURFACES: (WorkerMessage.DESTROY_SURFACES,),
    lib.QXL_IO_DESTROY_ALL_SURFACES_ASYNC: (WorkerMessage.DESTROY_SURFACES_ASYNC,),
    lib.QXL_IO_FLUSH_SURFACES_ASYNC: (WorkerMessage.FLUSH_SURFACES_ASYNC,),
    lib.QXL_IO_MONITORS_CONFIG_ASYNC: (WorkerMessage.MONITORS_CONFIG_ASYNC,),
}


RECORD_QUEUE_BYTES = 64 << 20
"""Recorded bytes waiting for the writer thread. A device that records faster than the
disk (or xz) takes them waits at this mark rather than drop events: nothing recorded is
lost, and the memory a recording holds stays bounded."""

XZ_STREAM_BYTES = 4 << 20
"""Uncompressed bytes per xz stream. Each stream is finished and written whole, so a
recording cut by SIGKILL is a valid xz file (concatenated streams) up to its last one;
4 MiB keeps xz's ratio close to one stream's."""

FLUSH_INTERVAL_S = 1.0
"""The most of a session that can sit in memory before it reaches the file: an xz
stream is also finished after this long, so a killed recording misses one second."""

XZ_PRESET = 1
"""xz's fastest preset: the writer must keep up with a device drawing at 60 frames a
second on one core; higher presets gain little on these text records."""


class RecordFile:
    """A record file written by a thread of its own, events whole.

    `put(data)` (from the device thread) queues one event's bytes; the writer thread
    writes them with one os.write per batch of whole events, so a process killed at
    any moment leaves a file that ends at an event's end. A ".xz" path is written as
    concatenated xz streams, each finished and written in one piece (XZ_STREAM_BYTES,
    FLUSH_INTERVAL_S). Compression runs on the writer thread, never the caller's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._xz = path.suffix == ".xz"
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()  # None: the end
        self._queued = 0
        self._room = threading.Condition()
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._write_loop, name="vgpu-record",
                                        daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> None:
        with self._room:
            while self._queued > RECORD_QUEUE_BYTES and self._thread.is_alive():
                self._room.wait(FLUSH_INTERVAL_S)
            self._queued += len(data)
        self._queue.put(data)

    def close(self) -> None:
        """Writes what is queued, finishes the file and closes it."""
        self._queue.put(None)
        self._thread.join()
        os.close(self._fd)

    def _taken(self, size: int) -> None:
        with self._room:
            self._queued -= size
            self._room.notify_all()

    def _write(self, data: bytes) -> None:
        if self.error is not None or not data:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as e:  # a full disk: the session goes on, unrecorded
            self.error = e
            log.error("recording to %s stopped: %s", self.path, e)

    def _write_loop(self) -> None:
        compressor = lzma.LZMACompressor(lzma.FORMAT_XZ, preset=XZ_PRESET) if self._xz else None
        compressed: list[bytes] = []
        stream_bytes = 0
        stream_start = time.monotonic()
        ended = False
        while not ended:
            try:
                batch = [self._queue.get(timeout=FLUSH_INTERVAL_S)]
            except queue.Empty:
                batch = []
            while not self._queue.empty():  # whatever else is there, in one write
                batch.append(self._queue.get_nowait())
            ended = None in batch
            data = b"".join(item for item in batch if item is not None)
            self._taken(len(data))
            if compressor is None:
                self._write(data)
                continue
            compressed.append(compressor.compress(data))
            stream_bytes += len(data)
            if stream_bytes and (ended or stream_bytes >= XZ_STREAM_BYTES
                                 or time.monotonic() - stream_start >= FLUSH_INTERVAL_S):
                compressed.append(compressor.flush())
                self._write(b"".join(compressed))
                compressor = lzma.LZMACompressor(lzma.FORMAT_XZ, preset=XZ_PRESET)
                compressed, stream_bytes = [], 0
            if not stream_bytes:
                stream_start = time.monotonic()


class Recorder(DeviceObserver):
    """Records a running device's session in spice-server's format.

    `Recorder(path).attach(device)` before the guest starts; `close()` at the end.
    A path ending in ".xz" is compressed (see RecordFile). Hooks run on the
    device's thread and never raise into it: they only format each event and
    queue it for the writer thread. A command the format cannot hold (an LZ
    image, say) is left out and counted in `skipped`.
    """

    def __init__(self, path: str | Path) -> None:
        self._file: RecordFile | None = RecordFile(Path(path))
        self._event = io.BytesIO()  # one event's bytes, formatted on the device thread
        self._writer = RecordWriter(self._event)
        self._flush_event()
        self._mem: GuestMemory | None = None
        self._lock = threading.Lock()
        self._last_port = -1
        self.events = 0
        self.skipped = 0

    def attach(self, device: Device) -> Recorder:
        self._mem = device.mem
        device.add_observer(self)
        self._message(WorkerMessage.START)  # the machine runs from here on
        return self

    def _flush_event(self) -> None:
        """Hands the formatted event to the writer thread (under the lock)."""
        assert self._file is not None
        self._file.put(self._event.getvalue())
        self._event.seek(0)
        self._event.truncate()

    def _message(self, message: WorkerMessage, primary: PrimarySurface | None = None) -> None:
        with self._lock:
            if self._file is not None:
                self._writer.worker_message(message, primary)
                self._flush_event()
                self.events += 1

    def on_io(self, port: int, value: int) -> None:
        self._last_port = port
        for message in _IO_MESSAGES.get(port, ()):
            self._message(message)

    def on_command(self, ring: str, cmd_type: int, addr: int, command: Command,
                   compat: bool) -> None:
        data = None
        if (isinstance(command, SurfaceCmd) and command.create is not None
                and command.flags & lib.QXL_SURF_FLAG_KEEP_DATA and self._mem is not None):
            data = self._mem.read(command.create.data_offset, command.create.data_length)
        with self._lock:
            if self._file is None:
                return
            try:
                self._writer.command(command, data)
                self._flush_event()
                self.events += 1
            except ValueError as e:
                self.skipped += 1
                log.warning("not recorded: %s", e)

    def on_primary_created(self, create: PrimaryCreate) -> None:
        message = (WorkerMessage.CREATE_PRIMARY_SURFACE_ASYNC
                   if self._last_port == lib.QXL_IO_CREATE_PRIMARY_ASYNC
                   else WorkerMessage.CREATE_PRIMARY_SURFACE)
        self._message(message, PrimarySurface(
            create.width, create.height, create.stride, create.format, create.position,
            create.mouse_mode, create.flags, create.type, create.data))

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
