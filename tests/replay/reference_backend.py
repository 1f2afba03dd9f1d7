"""The renderer's numpy reference model (`vgpu.render.reference`) as a DisplayBackend."""

from __future__ import annotations

import numpy as np

from vgpu.device.backend import Gl3dGuest, run_fences
from vgpu.device.commands import Drawable, QRect
from vgpu.render.reference import ReferenceCanvas


class ReferenceBackend:
    def __init__(self) -> None:
        self.canvas = ReferenceCanvas()

    def _create(self, sid: int, width: int, height: int, stride: int, fmt: int,
                initial: np.ndarray | None) -> None:
        self.canvas.create(sid, width, height, fmt)
        if initial is not None and fmt in (32, 96):  # 32-bit formats: the bytes are the pixels
            rows = np.ascontiguousarray(initial[:, :width * 4])
            self.canvas.surfaces[sid][1][:] = rows.view(np.uint32).reshape(height, width)

    def create_primary(self, width: int, height: int, stride: int, format: int,
                       initial: np.ndarray | None) -> None:
        self._create(0, width, height, stride, format, initial)

    def destroy_primary(self) -> None:
        self.canvas.surfaces.pop(0, None)

    def execute(self, cmd: Drawable) -> None:
        self.canvas.execute(cmd)

    def surface_created(self, surface_id: int, width: int, height: int, stride: int,
                        format: int, initial: np.ndarray | None) -> None:
        self._create(surface_id, width, height, stride, format, initial)

    def surface_destroyed(self, surface_id: int) -> None:
        self.canvas.surfaces.pop(surface_id, None)

    def read_area(self, surface_id: int, area: QRect) -> list[tuple[QRect, np.ndarray]]:
        px = self.canvas.pixels(surface_id)[area.top:area.bottom, area.left:area.right]
        return [(area, np.ascontiguousarray(px).reshape(area.height, area.width * 4))]

    def reset(self) -> None:
        self.canvas.surfaces.clear()

    def reset_3d(self) -> None:
        pass  # no 3D state: only fences run

    def execute_3d(self, batch: bytes, guest: Gl3dGuest) -> None:
        run_fences(batch, guest)  # the reference canvas draws 2D only
