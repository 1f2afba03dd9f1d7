"""What the device asks of whatever draws its surfaces.

The device does not import the renderer; the renderer implements this protocol
and the code that builds a running machine hands it to the device. All calls
come from the one thread that owns the device (the render thread).

A method that raises ValueError (or a subclass, such as the renderer's RenderError)
refuses what the guest asked for: the device enters the guest-bug state with the
message. Any other exception is logged and counted by the device as a backend defect.
`execute_3d` is the exception to the first rule: what a 3D batch says is never a guest
bug of the device (docs/3d-ring.md), so a ValueError from it is counted like any other.

Backends that run no GL (the null and reference backends) answer `execute_3d` with
`run_fences`: only FENCE commands run, so a 3D guest's fences still complete.
"""

from __future__ import annotations

import struct
from typing import Protocol

import numpy as np

from vgpu.device.abi import lib
from vgpu.device.commands import Drawable, QRect
from vgpu.device.glwire import VGPU_COMMANDS

_FENCE_OPCODE, _FENCE_WORDS = VGPU_COMMANDS["FENCE"]
_WORD = struct.Struct("<I")
_FENCE_BODY = struct.Struct("<III")


class Gl3dGuest(Protocol):
    """What the device gives `execute_3d`: guest memory and the fence area."""

    base: int  # address of guest memory's mapping in this process
    size: int  # its length in bytes

    def slot_table(self) -> tuple[int, int, list[tuple[int, int, int] | None]]:
        """(id_bits, gen_bits, per slot id: (start offset, end offset, generation) or
        None), for translating QXLPHYSICAL in C without calling back."""

    def translate(self, addr: int, length: int) -> int | None:
        """Mapping offset of [addr, addr+length) or None (Python-side uses)."""

    def fence(self, value: int, interrupt: bool) -> None:
        """Write Vgpu3dFence.completed; VGPU_INTERRUPT_3D, if asked, at the next `signal`."""

    def signal(self) -> None:
        """Raise VGPU_INTERRUPT_3D if a fence since the last call asked for it. The
        executor calls it as a batch's GL work starts, and the device at the end of its
        process() call: the guest it wakes then finds the interpreter free (the render
        thread in C), where one woken at the fence waited for the lock, asleep, while the
        render thread went on to its next batch (guest CPU 0.128-0.142 -> 0.117-0.128 ms a
        frame at 256x256, 100 draws). A spinning guest sees the value at once."""

    def count(self, what: str) -> None:
        """'errors' or 'lost_contexts': bump the Vgpu3dFence counter."""


class DisplayBackend(Protocol):
    def create_primary(self, width: int, height: int, stride: int, format: int,
                       initial: np.ndarray | None) -> None:
        """Surface 0 appears. `initial` is its current guest-memory content as a
        (height, abs(stride)) uint8 array in top-down row order, or None for zeros."""

    def destroy_primary(self) -> None:
        """Surface 0 goes away (off-screen surfaces stay)."""

    def execute(self, cmd: Drawable) -> None:
        """Render one draw command that passed the device's checks."""

    def surface_created(self, surface_id: int, width: int, height: int, stride: int,
                        format: int, initial: np.ndarray | None) -> None:
        """An off-screen surface appears (a SurfaceCmd CREATE that passed the checks);
        `initial` as for create_primary (the KEEP_DATA flag's content, else None)."""

    def surface_destroyed(self, surface_id: int) -> None:
        """An off-screen surface goes away."""

    def read_area(self, surface_id: int, area: QRect) -> list[tuple[QRect, np.ndarray]]:
        """What UPDATE_AREA writes back to guest memory for `area`: pieces, each a rect
        inside `area` and its rendered pixels, (height, width * bytes_per_pixel) uint8,
        top-down, in the surface format's memory layout. All of `area` as one piece will do;
        a backend may leave out what it has not drawn since its last answer for the surface
        (guest memory holds that already, as it does for spice-server, whose canvas draws in
        guest memory). An array may be a read-only view of the backend's own memory, valid
        until its next call: the device copies it into guest memory at once."""

    def reset(self) -> None:
        """Drop every surface and the image cache (QXL RESET / DESTROY_SURFACES)."""

    def reset_3d(self) -> None:
        """Drop every 3D context and drawable (QXL RESET only: DESTROY_ALL_SURFACES keeps
        them, docs/3d-ring.md)."""

    def execute_3d(self, batch: bytes, guest: Gl3dGuest) -> None:
        """Run one batch of 3D commands (docs/3d-ring.md). Faults inside the batch
        stay with their context; nothing here raises for the guest's content."""


def run_fences(batch: bytes, guest: Gl3dGuest) -> None:
    """`execute_3d` for a backend without GL: walks the command headers and runs only
    FENCE. A header whose body runs past the batch ends the walk (the context would be
    lost), as does a FENCE of the wrong length; other commands are skipped unread."""
    pos, end = 0, len(batch) - len(batch) % 4
    while pos + 4 <= end:
        (header,) = _WORD.unpack_from(batch, pos)
        opcode, words = header & 0xFFFF, header >> 16
        body = pos + 4
        pos = body + 4 * words
        if pos > end:
            return
        if opcode == _FENCE_OPCODE:
            if words != _FENCE_WORDS:
                return
            lo, hi, flags = _FENCE_BODY.unpack_from(batch, body)
            guest.fence(hi << 32 | lo, bool(flags & lib.VGPU_3D_FENCE_INTERRUPT))
