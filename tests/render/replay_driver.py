"""Feeds a spice-server record file's commands to a Renderer, as the device would."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgpu.device.commands import Drawable, SurfaceCmd
from vgpu.render import Renderer
from vgpu.replay.format import CommandEvent, WorkerEvent, WorkerMessage
from vgpu.replay.reader import read_events

SURFACE_CREATE = 0  # QXL_SURFACE_CMD_CREATE


def replay(renderer: Renderer, path: Path) -> int:
    """Replays every event; returns how many drawables were executed."""
    drawn = 0
    for ev in read_events(path):
        if isinstance(ev, WorkerEvent):
            if ev.primary is not None:
                p = ev.primary
                initial = None
                if p.data:
                    rows = np.frombuffer(p.data, np.uint8).reshape(p.height, abs(p.stride))
                    initial = rows[::-1] if p.stride < 0 else rows
                renderer.create_primary(p.width, p.height, abs(p.stride), p.format, initial)
            elif ev.message in (WorkerMessage.DESTROY_SURFACES,
                                WorkerMessage.DESTROY_SURFACES_ASYNC):
                renderer.reset()
            elif ev.message in (WorkerMessage.DESTROY_PRIMARY_SURFACE,
                                WorkerMessage.DESTROY_PRIMARY_SURFACE_ASYNC):
                renderer.destroy_primary()
            continue
        assert isinstance(ev, CommandEvent)
        cmd = ev.command
        if isinstance(cmd, Drawable):
            renderer.execute(cmd)
            drawn += 1
        elif isinstance(cmd, SurfaceCmd):
            if cmd.type == SURFACE_CREATE:
                c = cmd.create
                assert c is not None
                initial = None
                if ev.surface_data:
                    rows = np.frombuffer(ev.surface_data, np.uint8).reshape(c.height,
                                                                            abs(c.stride))
                    initial = rows[::-1] if c.stride < 0 else rows
                renderer.surface_created(cmd.surface_id, c.width, c.height, abs(c.stride),
                                         c.format, initial)
            else:
                renderer.surface_destroyed(cmd.surface_id)
    return drawn
