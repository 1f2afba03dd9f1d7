"""Damage and readback: what each operation changed (`last_damage`, the primary's damage for
the next frame, each surface's stale and unsynced rects), the host shadow of a surface's
pixels that reads come from, UPDATE_AREA's write-back and the published frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import moderngl
import numpy as np

from vgpu.device.commands import QRect
from vgpu.display import Frame, Move, Placement, Present, overlaps, subtract
from vgpu.render import enums as E
from vgpu.render import pixels as px
from vgpu.render.batch import BatchEngine
from vgpu.render.context import PRIMARY, Surface
from vgpu.render.errors import RenderError
from vgpu.render.region import Box, bounds, check_rect, intersect

if TYPE_CHECKING:
    from vgpu.render.gl3d import Gl3dExecutor

READ_MERGE_AREA = 2
READ_MERGE_COUNT = 8
"""Stale rects one read needs become a single read of their bounding box when that box is at
most READ_MERGE_AREA times their area, or when there are more than READ_MERGE_COUNT of them:
each GL read waits for the GL to finish, which costs more than the extra pixels."""

MAX_DAMAGE_RECTS = 64
"""Changed rects kept per surface (damage between snapshots, stale shadow, unsynced guest
memory) before they collapse into their bounding box: a read or write-back per rect costs a
GL round trip, so past this many one is cheaper."""

MIN_PLACEMENT_PIXELS = 64 * 64
"""Images drawn smaller than this are not placed: a cached copy's message (about 75 bytes)
and the check of its pixels pay only where the image costs kilobytes (icons, glyphs and
the 24x24 tiles of a root window weave stay in the damage)."""
MAX_PLACEMENTS = 32
"""Placements kept per surface, newest first kept: a screen shows a few photos and
windows at once; this bounds the per-draw overlap test and what a frame carries."""
MAX_MOVES = 128
"""Guest copies within the primary kept as hints, newest kept: a window dragged between
two frames a client took is a few of them, a window's background tile repeated by
doubling about ten a strip (Xspice's images session: about 100 in one frame); this
bounds what a frame carries (composing 128 for a client costs under 1 ms)."""
MAX_PRESENTS = 32
"""3D presents' destinations kept as hints, newest kept: one per rect and frame, so a
client that took one frame in several still sees every frame that presented its 3D
window (a few windows over the last dozen frames or so); bounds what a frame carries."""


class Readback(BatchEngine):
    """Tracks damage and reads pixels back from the GL."""

    def __init__(self, ctx: moderngl.Context | None, framebuffer_fetch: bool | None) -> None:
        super().__init__(ctx, framebuffer_fetch)
        self.last_damage: tuple[Box, ...] = ()
        """The rects (x0, y0, x1, y1) the last `execute` changed on its target surface."""
        self._damage: list[Box] = []  # primary damage since the last snapshot
        self._frame_serial = 0
        self._surface_serial = 0
        # made by the renderer at the first 3D batch; reads wait for its work first
        self.gl3d: Gl3dExecutor | None = None

    def _note_damage(self, surf: Surface, boxes: tuple[Box, ...],
                     in_shadow: tuple[Box, ...] = ()) -> None:
        """Records what an operation changed: `last_damage`, the surface's unsynced and stale
        rects (but for `in_shadow`, written into the host shadow too: a 3D present by copy)
        and, on the primary, the damage the next snapshot reports."""
        self.last_damage = boxes
        if not boxes:
            return
        if surf.placements:
            # what is drawn over is not the image any more (a hint: consumers check)
            surf.placements = [p for p in surf.placements
                               if not any(overlaps(p.rect, b) for b in boxes)]
        # _add_rects written out for the lists every operation extends (a call less each)
        unsynced = surf.unsynced
        unsynced += boxes
        if len(unsynced) > MAX_DAMAGE_RECTS:
            surf.unsynced = [bounds(unsynced)]
        if surf.shadow is not None:
            surf.stale = _add_rects(surf.stale, [b for b in boxes if b not in in_shadow])
            for hole in in_shadow:
                surf.stale = [part for r in surf.stale for part in subtract(r, hole)]
        if surf.id == PRIMARY:
            damage = self._damage
            damage += boxes
            if len(damage) > MAX_DAMAGE_RECTS:
                self._damage = [bounds(damage)]

    def _note_move(self, surf: Surface, rects: list[Box], dx: int, dy: int) -> None:
        """Records a guest copy within the primary: `rects` got what was (dx, dy) away.
        The frame after the last published one is the first to show it."""
        if surf.id == PRIMARY:
            surf.moves += [Move(self._frame_serial + 1, r, dx, dy) for r in rects]
            del surf.moves[:-MAX_MOVES]

    def _note_present(self, surf: Surface, rect: Box) -> None:
        """Records that a 3D present wrote into `rect` of the primary (its destination,
        clipped to the surface). The frame after the last published one is the first to
        show it."""
        if surf.id == PRIMARY:
            present = Present(self._frame_serial + 1, rect)
            if present not in surf.presents[-4:]:  # (a few windows a frame at most)
                surf.presents.append(present)
                del surf.presents[:-MAX_PRESENTS]

    def _place(self, surf: Surface, placed: list[Placement]) -> None:
        """Records images an operation drew whole on `surf` (after its damage is noted)."""
        surf.placements += placed
        del surf.placements[:-MAX_PLACEMENTS]

    def read_area(self, surface_id: int, area: QRect) -> list[tuple[QRect, np.ndarray]]:
        """The parts of `area` drawn since guest memory last got them (see the protocol)."""
        self._settle_3d()
        surf = self._get_surface(surface_id)
        x0, y0, x1, y1 = check_rect(area, "update area")
        box = intersect((x0, y0, x1, y1), (0, 0, surf.width, surf.height))
        if box != (x0, y0, x1, y1):
            raise RenderError(f"update area {tuple(area)} outside surface {surface_id}")
        inside, outside = [], []
        for r in surf.unsynced:
            part = intersect(r, box)
            if part is None:
                outside.append(r)
            else:
                inside.append(part)
                outside.extend(subtract(r, box))
        # (parts close together go as their bounding box, with pixels memory holds already)
        pieces = [(QRect(r[1], r[0], r[3], r[2]), px.to_memory(self._read(surf, r), surf.fmt))
                  for r in _merge_reads(inside)]
        surf.unsynced = _add_rects([], outside)  # only once they are read back
        return pieces

    def read_pixels(self, surface_id: int, box: Box | None = None) -> np.ndarray:
        """A surface's rendered pixels as (h, w, 4) uint8 channels (B, G, R, A), top-down."""
        surf = self._get_surface(surface_id)
        box = box or (0, 0, surf.width, surf.height)
        if intersect(box, (0, 0, surf.width, surf.height)) != box:
            raise RenderError("read outside the surface")
        return self._read(surf, box).copy()

    def snapshot(self) -> Frame | None:
        """The primary as a new immutable Frame with the damage since the previous snapshot,
        or None when nothing changed (or there is no primary). Reads back only the damage."""
        self._settle_3d()
        surf = self._surfaces.get(PRIMARY)
        if surf is None or not self._damage:
            return None
        # The shadow itself, read-only: the next write into it makes it a new array
        # (Surface.writable_shadow), so the frame keeps these pixels without a copy
        # (about 0.5 ms of the render thread's 2 a 1280x720 cube frame here).
        pixels = self._read(surf, (0, 0, surf.width, surf.height))
        surf.shadow_published = True
        damage = tuple(self._damage)
        self._damage = []
        self._frame_serial += 1
        return Frame(self._frame_serial, self._surface_serial, pixels, damage,
                     has_alpha=surf.fmt == E.SURFACE_FMT_32_ARGB,
                     placements=tuple(surf.placements), moves=tuple(surf.moves),
                     presents=tuple(surf.presents))

    def _read(self, surf: Surface, box: Box) -> np.ndarray:
        """`box` of the surface's pixels: a read-only view of its host shadow, valid until
        the next operation (copy what you keep). Reads back from GL only what changed since
        the last read (the shadow keeps the rest)."""
        self._settle_3d()
        self.flush()
        if surf.shadow is None:
            surf.shadow = self._read_now(surf, (0, 0, surf.width, surf.height)).copy()
            surf.shadow_published = False
            surf.stale = []
        elif surf.stale:
            keep, hit = [], []
            for r in surf.stale:
                (hit if intersect(r, box) is not None else keep).append(r)
            reads = _merge_reads(hit)
            shadow = surf.writable_shadow((0, 0, surf.width, surf.height) in reads)
            for r in reads:
                shadow[r[1] : r[3], r[0] : r[2]] = self._read_now(surf, r)
            surf.stale = keep
        if surf.staged:  # disjoint from `stale`: a present's rects leave it, and land first
            self._land()
        x0, y0, x1, y1 = box
        view = surf.shadow[y0:y1, x0:x1]
        view.flags.writeable = False
        return view

    def _land(self) -> None:
        """Reads what 3D presents left in staging textures (Surface.staged) into the host
        copies, as `ahead` rects: before the GL next draws on a surface, samples it or reads
        it, and before its host copy is read (a guest presenting frame after frame pays the
        wait for the GL and the read only when a frame for clients or UPDATE_AREA wants it)."""
        assert self.gl3d is not None  # only its presents leave rects staged
        for surf in list(self._staged_surfaces):
            self.gl3d.land(surf)

    def _upload_ahead(self) -> None:
        """Puts what 3D presents wrote into surfaces' host copies only (Surface.ahead) into
        their textures: called before the GL next draws on a surface, samples or reads it
        (a present's upload at 1920x1080 cost ~1 ms of the render thread per frame, mostly
        for nothing: the frames for clients are read from the host copy)."""
        assert self.gl3d is not None  # only its presents leave rects ahead
        for surf in self._ahead:
            for box in surf.ahead:
                self.gl3d.upload(surf, box)
            surf.ahead = []
        self._ahead.clear()

    def _read_now(self, surf: Surface, box: Box) -> np.ndarray:
        x0, y0, x1, y1 = box
        if self._ahead:
            self._upload_ahead()
        if self.gl3d is not None:
            # 3D work (a guest's shader, as long as it likes) may be queued: wait for it
            # with the interpreter lock released; moderngl's read would keep it
            self.gl3d.wait_gl()
        data = surf.fbo.read(viewport=(x0, y0, x1 - x0, y1 - y0), components=4)
        return np.frombuffer(data, np.uint8).reshape(y1 - y0, x1 - x0, 4)


def _add_rects(rects: list[Box], more: list[Box] | tuple[Box, ...]) -> list[Box]:
    """`rects` (extended in place) with `more` added; past MAX_DAMAGE_RECTS, their bounding
    box instead."""
    rects.extend(more)
    return [bounds(rects)] if len(rects) > MAX_DAMAGE_RECTS else rects


def _merge_reads(rects: list[Box]) -> list[Box]:
    """Rects to read back (or write back), as one bounding box where that is cheaper
    (READ_MERGE_AREA, READ_MERGE_COUNT)."""
    if len(rects) > 1:
        whole = bounds(rects)
        area = sum((r[2] - r[0]) * (r[3] - r[1]) for r in rects)
        if ((whole[2] - whole[0]) * (whole[3] - whole[1]) <= READ_MERGE_AREA * area
                or len(rects) > READ_MERGE_COUNT):
            return [whole]
    return rects
