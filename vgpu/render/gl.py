"""The OpenGL renderer: QXL surfaces as textures on one moderngl context, every 2D draw
operation, the image cache, damage, readback and published frames.

`Renderer` is the last of the layers it is built from, one module each:
`vgpu.render.context` (the GL context, programs, surfaces and the GL state contract with the
3D executor), `vgpu.render.batch` (batching, staging and drawing), `vgpu.render.readback`
(damage and readback) and `vgpu.render.ops2d` (the 2D operations). This module adds the
`DisplayBackend` entry points: surfaces, `execute` (the one place an operation's destination
is checked) and the 3D ring's batches (`vgpu.render.gl3d`).
"""

from __future__ import annotations

import moderngl
import numpy as np

from vgpu.device.backend import Gl3dGuest
from vgpu.device.commands import Drawable, Nop
from vgpu.render.batch import StagingFull
from vgpu.render.cache import IMAGE_CACHE_BYTES, SlotAtlas
from vgpu.render.context import PRIMARY
from vgpu.render.errors import RenderError
from vgpu.render.gl3d import Gl3dExecutor
from vgpu.render.ops2d import Ops2d
from vgpu.render.region import check_rect, dest_region


class Renderer(Ops2d):
    """Implements `vgpu.device.backend.DisplayBackend` on one moderngl context; see the module
    docstring. Not thread-safe: one render thread calls everything."""

    def __init__(self, ctx: moderngl.Context | None = None, *,
                 cache_bytes: int = IMAGE_CACHE_BYTES,
                 framebuffer_fetch: bool | None = None) -> None:
        """framebuffer_fetch: read the destination in the shader (None: where the GL offers
        it; False: always through scratch copies, the path for GLs without it)."""
        super().__init__(ctx, framebuffer_fetch, cache_bytes)

    # --- DisplayBackend --------------------------------------------------------------

    def create_primary(self, width: int, height: int, stride: int, format: int,
                       initial: np.ndarray | None) -> None:
        self._create(PRIMARY, width, height, stride, format, initial)
        self._surface_serial += 1
        self._damage = [(0, 0, width, height)]

    def destroy_primary(self) -> None:
        self._destroy(PRIMARY)
        self._damage = []

    def surface_created(self, surface_id: int, width: int, height: int, stride: int,
                        format: int, initial: np.ndarray | None) -> None:
        if surface_id == PRIMARY:
            raise RenderError("surface 0 is the primary; use create_primary")
        self._create(surface_id, width, height, stride, format, initial)

    def surface_destroyed(self, surface_id: int) -> None:
        if surface_id == PRIMARY:
            raise RenderError("surface 0 is the primary; use destroy_primary")
        self._destroy(surface_id)

    def execute(self, cmd: Drawable) -> None:
        self._settle_3d()
        if self._staged_surfaces:  # the textures this operation draws on or reads hold the presents
            self._land()
        if self._ahead:
            self._upload_ahead()
        op = cmd.op
        surf = self._surfaces.get(cmd.surface_id)  # _get_surface's check, one call less
        if surf is None:
            raise RenderError(f"surface {cmd.surface_id} does not exist")
        handler = self._handlers.get(type(op))
        if handler is None and type(op) is Nop:  # draws nothing, whatever its bbox says
            self.last_damage = ()
            return
        # the one check of where an operation draws; the usual case (inside the surface,
        # unclipped) needs no more than these comparisons
        top, left, bottom, right = cmd.bbox
        clip = cmd.clip
        if clip is None and 0 <= left < right <= surf.width and 0 <= top < bottom <= surf.height:
            bbox = (left, top, right, bottom)
            rects = [bbox]
        else:
            bbox = check_rect(cmd.bbox, "bbox")
            rects = dest_region(bbox, clip, surf.width, surf.height)
        if handler is None:
            raise RenderError(f"unknown draw operation {type(op).__name__}")
        if not rects:
            self._note_damage(surf, ())
            return
        # the batch engine's protocol, written out here (a call less per operation): where
        # this operation's staged bytes start, the one retry for room, its textures released
        if self._batch.kind is None:
            self._staged = 0  # nothing queued refers to staged bytes any more
        self._op_stage_start = self._staged
        try:
            changed = handler(surf, bbox, rects, op)
        except StagingFull:
            changed = self._queue_again(handler, surf, bbox, rects, op)
        finally:
            if self._op_textures:
                self._release_op_textures()
        self._note_damage(surf, tuple(changed))
        if self._placed:
            self._place(surf, self._placed)
            self._placed = []

    def execute_3d(self, batch: bytes, guest: Gl3dGuest) -> None:
        """Runs one batch of the 3D ring (docs/3d-ring.md) on `Gl3dExecutor`. Faults inside
        the batch stay with their context."""
        if self.gl3d is None:
            self.gl3d = Gl3dExecutor(self)
        self.gl3d.execute(batch, guest)

    def reset(self) -> None:
        self._settle_3d()
        self._drop_batch()
        for sid in list(self._surfaces):
            self._destroy(sid)
        self.cache.clear()
        self._pending_release.extend(self._op_textures)
        self._op_textures.clear()
        self._drop_batch()  # frees the cache's textures
        if self._cache_tex is not None:
            self._cache_tex.release()
            self._cache_tex = None
        self._slots = SlotAtlas()
        self._damage = []

    def reset_3d(self) -> None:
        if self.gl3d is not None:
            self.gl3d.reset()

    # --- beyond the protocol ----------------------------------------------------------

    def surface_ids(self) -> list[int]:
        return sorted(self._surfaces)

    def close(self) -> None:
        """Frees every GL object (and the context if this renderer made it)."""
        self.reset()
        if self.gl3d is not None:
            self.gl3d.close()
            self.gl3d = None
        super().close()
