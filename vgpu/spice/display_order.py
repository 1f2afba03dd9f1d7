"""The display channel's message order: named states and one table of transitions (h11's way).

A SPICE client draws onto the surface it was told about and shows a new surface at its
mark; a draw before the surface exists, a stream frame for a stream never created, or a
surface destroyed under a live stream refers to what the client does not have. Every display
message whose place matters passes through `DisplayOrder.send`, which knows where the
channel stands and refuses what the table does not allow there. A refusal is a bug of
the server (the client sends none of these), so it raises `OrderError`, naming both.
No IO, no clock: the sender in server.py only decides what a frame holds.
"""

from __future__ import annotations

from enum import Enum


class DisplayState(Enum):
    NO_SURFACE = "no surface"  # linked, or the primary destroyed: only a create may follow
    UNMARKED = "unmarked"  # the primary created: its first picture, then the mark
    SHOWN = "shown"  # marked, between frames
    ENDING = "ending streams"  # a frame's stream destroys (before a new surface too)
    FORGETTING = "forgetting"  # a frame's INVAL_LIST: cached images the client drops
    COPYING = "copying"  # a frame's copies of what moved, before anything is drawn
    DRAWING = "drawing"  # a frame's lossless draws
    RECOPYING = "copying drawn"  # a frame's copies of what it drew (a tile repeated)
    STARTING = "starting a stream"  # a frame's stream create and its report request
    STREAMING = "streaming"  # a frame's stream data and the ping that times it


class Send(Enum):
    """The display messages whose order matters, and the end of a frame's messages."""

    STREAM_DESTROY = "stream destroy"
    SURFACE_DESTROY = "surface destroy"
    SURFACE_CREATE = "surface create"  # with its monitors config, where the client wants it
    INVAL_LIST = "inval list"  # cached images evicted to make room for this frame's
    COPY_BITS = "copy bits"  # from the client's last picture
    COPY_DRAWN = "copy bits after the draws"  # reads what this frame's draws wrote
    DRAW_COPY = "draw copy"
    DRAW_FILL = "draw fill"
    MARK = "mark"
    STREAM_CREATE = "stream create"
    STREAM_ACTIVATE_REPORT = "stream activate report"
    STREAM_DATA = "stream data"
    PING = "ping"  # after a stream frame: its PONG tells when the client reached it
    FRAME_END = "frame end"  # not a message: the frame's messages are all queued


_RECOPY_STEPS = {
    Send.COPY_DRAWN: DisplayState.RECOPYING,
    Send.STREAM_CREATE: DisplayState.STARTING,
    Send.STREAM_DATA: DisplayState.STREAMING,
    Send.FRAME_END: DisplayState.SHOWN,
}
"""Where a frame's update may go from its copies of what it drew on: no draw follows
them (a draw after such a copy would overwrite what a copy read, or be read as stale);
the stream's frame comes after them (no copy reads the stream's area)."""
_DRAW_STEPS = {
    Send.DRAW_COPY: DisplayState.DRAWING,
    Send.DRAW_FILL: DisplayState.DRAWING,
    **_RECOPY_STEPS,
}
"""Where a frame's update may go from its draws on (a copy of the last picture after a
draw could read what the draw wrote: only COPY_DRAWN, meant to, follows them)."""
_FRAME_STEPS = {Send.COPY_BITS: DisplayState.COPYING, **_DRAW_STEPS}
"""Where a frame's update may go from wherever it is before its copies."""
_FORGET_STEPS = {Send.INVAL_LIST: DisplayState.FORGETTING, **_FRAME_STEPS}
"""Where a frame's update may go before it forgets cached images: what the frame draws
from the cache (or caches anew) comes after the evictions that made room for it."""

TRANSITIONS: dict[DisplayState, dict[Send, DisplayState]] = {
    DisplayState.NO_SURFACE: {Send.SURFACE_CREATE: DisplayState.UNMARKED},
    DisplayState.UNMARKED: {
        Send.DRAW_COPY: DisplayState.UNMARKED,
        Send.DRAW_FILL: DisplayState.UNMARKED,  # a first picture of one colour
        Send.MARK: DisplayState.SHOWN,
    },
    DisplayState.SHOWN: {
        Send.STREAM_DESTROY: DisplayState.ENDING,
        Send.SURFACE_DESTROY: DisplayState.NO_SURFACE,
        **_FORGET_STEPS,
    },
    DisplayState.ENDING: {
        Send.STREAM_DESTROY: DisplayState.ENDING,
        Send.SURFACE_DESTROY: DisplayState.NO_SURFACE,
        **_FORGET_STEPS,
    },
    DisplayState.FORGETTING: _FRAME_STEPS,
    DisplayState.COPYING: _FRAME_STEPS,
    DisplayState.DRAWING: _DRAW_STEPS,
    DisplayState.RECOPYING: _RECOPY_STEPS,
    DisplayState.STARTING: {
        Send.STREAM_ACTIVATE_REPORT: DisplayState.STARTING,
        Send.STREAM_DATA: DisplayState.STREAMING,
        Send.FRAME_END: DisplayState.SHOWN,
    },
    DisplayState.STREAMING: {
        Send.PING: DisplayState.STREAMING,
        Send.FRAME_END: DisplayState.SHOWN,
    },
}
"""Every allowed (state, message) and the state it leads to. A frame's update goes
stream destroys, the cache's evictions (one INVAL_LIST), copies, draws, copies of what
was drawn, stream create (and its report request), stream data (and its ping), each
part optional; a new surface
goes stream destroys, surface destroy, surface create, its first picture, mark."""

_STREAM_MESSAGES = (Send.STREAM_DESTROY, Send.STREAM_ACTIVATE_REPORT, Send.STREAM_DATA)


class OrderError(RuntimeError):
    """The server tried a display message where the protocol does not allow it."""


class DisplayOrder:
    """Where one display channel stands, and the streams the client knows of."""

    def __init__(self) -> None:
        self.state = DisplayState.NO_SURFACE
        self.streams: set[int] = set()

    def send(self, message: Send, stream_id: int | None = None) -> None:
        """Moves to the state after `message` (stream messages name their stream), or
        raises OrderError and stays where it was."""
        after = TRANSITIONS[self.state].get(message)
        if after is None:
            raise OrderError(f"{message.value} in state {self.state.value}")
        if message is Send.STREAM_CREATE:
            if stream_id in self.streams:
                raise OrderError(f"stream {stream_id} created twice")
            self.streams.add(stream_id)  # type: ignore[arg-type]
        elif message in _STREAM_MESSAGES and stream_id not in self.streams:
            raise OrderError(f"{message.value} of stream {stream_id}, which the client "
                             "does not have")
        elif message is Send.SURFACE_DESTROY and self.streams:
            raise OrderError(f"surface destroy under live streams {sorted(self.streams)}")
        if message is Send.STREAM_DESTROY:
            self.streams.discard(stream_id)  # type: ignore[arg-type]
        self.state = after
