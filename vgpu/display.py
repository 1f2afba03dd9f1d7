"""What a running display publishes and what it takes back.

The render thread publishes `Frame`s and `CursorUpdate`s; the SPICE server (or
the preview window) takes them, and sends `InputEvent`s back. These are plain
immutable values, so they cross threads safely. Neither side imports the other:
both import this module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Rect = tuple[int, int, int, int]
"""(left, top, right, bottom), right and bottom exclusive, in surface pixels."""


def overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def subtract(r: Rect, hole: Rect) -> list[Rect]:
    """The parts of r outside `hole` (which overlaps it): up to four rects."""
    out = []
    if r[1] < hole[1]:
        out.append((r[0], r[1], r[2], hole[1]))
    if hole[3] < r[3]:
        out.append((r[0], hole[3], r[2], r[3]))
    y0, y1 = max(r[1], hole[1]), min(r[3], hole[3])
    if r[0] < hole[0]:
        out.append((r[0], y0, hole[0], y1))
    if hole[2] < r[2]:
        out.append((hole[2], y0, r[2], y1))
    return out


@dataclass(frozen=True, slots=True)
class Placement:
    """A hint that `rect` of a surface shows a guest image whole: `key` is a 64-bit hash
    of that image's pixels (of the part drawn), never the guest's own id. The pixels are
    the truth: a consumer checks them before it relies on a placement."""

    key: int
    rect: Rect


@dataclass(frozen=True, slots=True)
class Move:
    """A hint that the guest copied pixels within the primary (COPY_BITS): `rect` got
    what was at `rect` moved by (dx, dy), first shown by frame `serial`. Like a
    placement, only a hint: later drawing may cover it, so a consumer checks the pixels
    before it relies on a move."""

    serial: int
    rect: Rect
    dx: int
    dy: int


@dataclass(frozen=True, slots=True)
class Present:
    """A hint that a 3D PRESENT wrote into `rect` of the primary (its destination,
    clipped to the surface), first shown by frame `serial`: a 3D window presented at the
    same rect frame after frame is a stream's region, whatever part of it changed."""

    serial: int
    rect: Rect


@dataclass(frozen=True, slots=True)
class Frame:
    """One published picture of the primary surface.

    `pixels` is (height, width, 4) uint8, top-down, bytes B, G, R, X/A in memory
    order (little-endian 0xAARRGGBB, as QXL's 32-bit formats), read-only and never
    changed after publication. `damage` lists what changed since the previous
    frame of the same `surface_serial`. `placements` are the guest images the renderer
    saw drawn whole (unscaled plain copies) and not drawn over since, as hints;
    `moves` the guest's latest copies within the surface, oldest first, as hints;
    `presents` the latest 3D presents' destinations, oldest first, one per rect and frame.
    """

    serial: int
    surface_serial: int  # changes when the primary is destroyed or resized
    pixels: np.ndarray
    damage: tuple[Rect, ...]
    has_alpha: bool = False
    placements: tuple[Placement, ...] = ()
    moves: tuple[Move, ...] = ()
    presents: tuple[Present, ...] = ()

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


@dataclass(frozen=True, slots=True)
class CursorShape:
    """A cursor image as QXL and SPICE both describe it (SPICE_CURSOR_TYPE_*)."""

    unique: int
    type: int
    width: int
    height: int
    hot_x: int
    hot_y: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CursorUpdate:
    """kind is "set", "move", "hide" or "trail"; fields not used by a kind stay default."""

    kind: str
    x: int = 0
    y: int = 0
    visible: bool = True
    shape: CursorShape | None = None
    trail_length: int = 0
    trail_frequency: int = 0


@dataclass(frozen=True, slots=True)
class InputEvent:
    """An input from a client, for the guest's input queue.

    kind: "key_down"/"key_up" (code = PC AT scancode as SPICE sends it),
    "mouse_position" (x, y absolute, display), "mouse_motion" (x, y relative),
    "mouse_press"/"mouse_release" (code = SPICE_MOUSE_BUTTON_*), "modifiers"
    (code = SPICE_KEYBOARD_MODIFIER_FLAGS_*). buttons is the button-state mask.
    """

    kind: str
    code: int = 0
    x: int = 0
    y: int = 0
    buttons: int = 0
    display: int = 0


class Subscription:
    """A consumer's view of a FrameBus: the newest frame plus all damage since it last took one.

    A slow consumer therefore gets fewer, newer frames and never a backlog.
    """

    def __init__(self, bus: FrameBus, notify: Callable[[], None] | None) -> None:
        self._bus = bus
        self._notify = notify
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._damage: list[Rect] = []
        self._full = True  # a new consumer gets the whole screen first
        self._surface_serial: int | None = None  # of the last frame offered

    def _offer(self, frame: Frame) -> None:
        with self._lock:
            if frame.surface_serial != self._surface_serial:
                self._full = True  # a new or resized primary: everything is new
                self._surface_serial = frame.surface_serial
            self._frame = frame
            if not self._full:
                self._damage.extend(frame.damage)
            if len(self._damage) > MAX_PENDING_DAMAGE_RECTS:
                self._full = True
            if self._full:
                self._damage = []  # the whole screen covers it
        if self._notify is not None:
            self._notify()

    def take(self) -> tuple[Frame, tuple[Rect, ...]] | None:
        """The newest untaken frame and the damage to send for it, or None if nothing is new."""
        with self._lock:
            frame = self._frame
            if frame is None:
                return None
            if self._full:
                damage: tuple[Rect, ...] = ((0, 0, frame.width, frame.height),)
            else:
                damage = tuple(self._damage)
            self._frame = None
            self._damage = []
            self._full = False
            return frame, damage

    def close(self) -> None:
        self._bus._unsubscribe(self)


PACE_SLACK = 0.25
"""A `Pacer` lets an event through up to this share of a period early. Frames come with
a few milliseconds of jitter: with a rigid minimum gap of one period from the last event,
each late frame pushed the next slot later until two frames fell into one slot and
merged, and the cube demo at 60 frames/s lost one frame in six between the guest and the
client (the machine's publisher and the server's sender each paced so)."""


class Pacer:
    """At most `rate` events a second on average, on a grid of slots one period apart
    that tolerates jitter: an event may come up to PACE_SLACK of a period before its
    slot (but never closer than 1 - PACE_SLACK periods to the one before), and a late
    one does not move the slots after it unless it is later than a period (then the
    grid starts again from it: an idle spell earns no burst). Pure logic: the caller
    passes the clock."""

    def __init__(self, rate: float) -> None:
        self.period = 1.0 / rate
        self._slot = -1e18  # the next event's slot
        self._earliest = -1e18  # the next event's earliest time, whatever its slot

    def wait(self, now: float) -> float:
        """Seconds until an event may go (0 when it may go now)."""
        return max(0.0, self._slot - PACE_SLACK * self.period - now, self._earliest - now)

    def went(self, now: float) -> None:
        """An event went at `now`."""
        late = now - self._slot
        self._slot = now + self.period if late > self.period else self._slot + self.period
        self._earliest = now + (1.0 - PACE_SLACK) * self.period

MAX_PENDING_DAMAGE_RECTS = 256
"""Past this many rects queued for one slow consumer, sending the whole screen is cheaper
than merging; it also bounds per-consumer memory."""


@dataclass
class FrameBus:
    """Fan-out of frames from the render thread to any number of consumers."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _subscribers: list[Subscription] = field(default_factory=list)
    _latest: Frame | None = None

    def publish(self, frame: Frame) -> None:
        with self._lock:
            self._latest = frame
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub._offer(frame)

    def latest(self) -> Frame | None:
        return self._latest

    def subscribe(self, notify: Callable[[], None] | None = None) -> Subscription:
        """`notify` is called from the publishing thread whenever a frame arrives, and,
        where a frame was published already, once from here before this returns (so it
        must not rely on the returned subscription being stored yet)."""
        sub = Subscription(self, notify)
        with self._lock:
            self._subscribers.append(sub)
            latest = self._latest
        if latest is not None:
            sub._offer(latest)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)


@dataclass(frozen=True, slots=True)
class CursorState:
    """Everything a late-joining client needs to show the cursor as it is now."""

    shape: CursorShape | None = None
    x: int = 0
    y: int = 0
    visible: bool = False


@dataclass
class CursorBus:
    """Fan-out of cursor updates; each listener is called from the publishing thread."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listeners: list[Callable[[CursorUpdate], None]] = field(default_factory=list)
    _state: CursorState = field(default_factory=CursorState)

    def publish(self, update: CursorUpdate) -> None:
        with self._lock:
            s = self._state
            if update.kind == "set":
                s = CursorState(update.shape, update.x, update.y, update.visible)
            elif update.kind == "move":
                s = CursorState(s.shape, update.x, update.y, True)
            elif update.kind == "hide":
                s = CursorState(s.shape, s.x, s.y, False)
            self._state = s
            listeners = list(self._listeners)
        for listener in listeners:
            listener(update)

    def state(self) -> CursorState:
        return self._state

    def listen(self, listener: Callable[[CursorUpdate], None]) -> Callable[[], None]:
        """Adds a listener; returns the function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove
