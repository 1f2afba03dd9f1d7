"""spice-server record files ("SPICE_REPLAY 1"): what the format holds.

spice-server writes such a file when SPICE_WORKER_RECORD_FILENAME is set: every
QXL command its worker takes from the device ring and every request the device
makes of the worker, in order. `docs/spice-replay-format.txt` describes the
format. This module names its pieces: the worker messages, the events a file
holds (`CommandEvent` with the typed commands of `vgpu.device.commands`,
`WorkerEvent` with a `WorkerMessage`), the limits a reader enforces, and the
error it raises. `vgpu.replay.reader` and `vgpu.replay.writer` read and write
them; neither knows a device, a driver or a renderer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from vgpu.device.abi import Layout
from vgpu.device.commands import Command

# --- limits ------------------------------------------------------------------------

# The longest line spice-server writes is a rect line (~70 bytes); anything much
# longer is not this format, and reading it whole would let a file exhaust memory.
MAX_LINE_BYTES = 1024
# No blob (surface data, bitmap, chunk) can be larger than a QXL BAR: QEMU's
# largest VRAM BAR is 256 MiB, and a surface or image lives inside one.
MAX_BLOB_BYTES = 256 << 20
# All blobs of one record together: one command references memory inside the
# same BARs, so it cannot carry more than one BAR's worth either.
MAX_RECORD_BYTES = 256 << 20
# Chunk chains: a guest splits data at page granularity at the finest, and
# 256 MiB / 4 KiB = 65536 chunks.
MAX_CHUNKS = 1 << 16
# The widest paletted bitmap format is 8 bits per pixel: 256 entries.
MAX_PALETTE_ENTRIES = 256

HEADER = b"SPICE_REPLAY 1"


class WorkerMessage(IntEnum):
    """spice-server's RED_WORKER_MESSAGE_* (red-worker.h): the TYPE of a WHAT=1 event.

    Numbered by position in spice-server's enum, which it keeps append-only
    because record files store these numbers."""

    NOP = 0
    UPDATE = 1
    WAKEUP = 2
    OOM = 3
    READY = 4
    DISPLAY_CONNECT_DEPRECATED = 5
    DISPLAY_DISCONNECT_DEPRECATED = 6
    DISPLAY_MIGRATE_DEPRECATED = 7
    START = 8
    STOP = 9
    CURSOR_CONNECT_DEPRECATED = 10
    CURSOR_DISCONNECT_DEPRECATED = 11
    CURSOR_MIGRATE_DEPRECATED = 12
    SET_COMPRESSION = 13
    SET_STREAMING_VIDEO = 14
    SET_MOUSE_MODE = 15
    ADD_MEMSLOT = 16
    DEL_MEMSLOT = 17
    RESET_MEMSLOTS = 18
    DESTROY_SURFACES = 19
    CREATE_PRIMARY_SURFACE = 20
    DESTROY_PRIMARY_SURFACE = 21
    RESET_CURSOR = 22
    RESET_IMAGE_CACHE = 23
    DESTROY_SURFACE_WAIT = 24
    LOADVM_COMMANDS = 25
    UPDATE_ASYNC = 26
    ADD_MEMSLOT_ASYNC = 27
    DESTROY_SURFACES_ASYNC = 28
    CREATE_PRIMARY_SURFACE_ASYNC = 29
    DESTROY_PRIMARY_SURFACE_ASYNC = 30
    DESTROY_SURFACE_WAIT_ASYNC = 31
    FLUSH_SURFACES_ASYNC = 32
    DISPLAY_CHANNEL_CREATE = 33
    CURSOR_CHANNEL_CREATE = 34
    MONITORS_CONFIG_ASYNC = 35
    DRIVER_UNLOAD = 36
    GL_SCANOUT = 37
    GL_DRAW_ASYNC = 38
    SET_VIDEO_CODECS = 39
    CLOSE_WORKER = 40


# The messages whose record carries the primary surface's parameters and memory.
PRIMARY_MESSAGES = (WorkerMessage.CREATE_PRIMARY_SURFACE,
                    WorkerMessage.CREATE_PRIMARY_SURFACE_ASYNC)


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrimarySurface:
    """QXLDevSurfaceCreate as recorded, with the primary's memory at creation."""

    width: int
    height: int
    stride: int  # negative: bottom-up (the first stored row is the bottom screen row)
    format: int
    position: int
    mouse_mode: int
    flags: int
    type: int
    data: bytes  # abs(stride) * height bytes in memory order, or b"" when none was recorded


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """A QXL command the worker took from a ring (WHAT=0)."""

    line: int
    counter: int
    timestamp: int  # CLOCK_MONOTONIC nanoseconds
    command: Command  # release_id is 0: the file does not record it
    surface_data: bytes | None = None  # a SurfaceCmd CREATE's KEEP_DATA content
    compat: bool = False  # a QXLCompatDrawable (mapped onto Drawable's fields)


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """A request the device made of the worker (WHAT=1)."""

    line: int
    counter: int
    timestamp: int
    message: WorkerMessage
    primary: PrimarySurface | None = None  # set for CREATE_PRIMARY_SURFACE(_ASYNC)


Event = CommandEvent | WorkerEvent


class RecordFormatError(ValueError):
    """The file is not a well-formed record; `line` is where reading stopped (1-based)."""

    def __init__(self, name: str, line: int, reason: str):
        super().__init__(f"{name}:{line}: {reason}")
        self.name = name
        self.line = line
        self.reason = reason


# One QXLFIXED (28.4), as in a line style's segments: a style blob holds these.
FIXED = Layout("QXLPointFix", ["x"]).struct
