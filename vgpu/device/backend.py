"""What the device asks of whatever draws its surfaces.

The device does not import the renderer; the renderer implements this protocol
and the code that builds a running machine hands it to the device. All calls
come from the one thread that owns the device (the render thread).

A method that raises ValueError (or a subclass, such as the renderer's RenderError)
refuses what the guest asked for: the device enters the guest-bug state with the
message. Any other exception is logged and counted by the device as a backend defect.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vgpu.device.commands import Drawable, QRect


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
