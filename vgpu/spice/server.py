"""The asyncio SPICE server: sockets in, the sans-IO machines in the middle, frames out.

One listening port serves plain SPICE and WebSocket (told apart by the first
bytes, as spice-server does), a second optional port the same over TLS. Each
client session has its own channels and encoder state. Display channels take
the newest frame from their own FrameBus subscription, so a slow client gets
fewer, newer frames while nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import secrets
import ssl
import struct
import threading
import time
import uuid as uuid_module
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from vgpu.display import (
    CursorBus,
    CursorUpdate,
    Frame,
    FrameBus,
    InputEvent,
    Pacer,
    Placement,
    Rect,
    Subscription,
)
from vgpu.encode.codecs import encode_jpeg
from vgpu.encode.video import (
    MAX_LAG_S,
    Encoder,
    MjpegEncoder,
    RateControl,
    choose_codec,
    create_encoder,
)
from vgpu.spice import constants as const
from vgpu.spice.channels import (
    AckReceived,
    ChannelClosed,
    ChannelMachine,
    CursorChannel,
    DisplayChannel,
    DisplayInit,
    EncodedRegion,
    FrameUpdate,
    InputReceived,
    InputsChannel,
    MainChannel,
    PongReceived,
    PreferredCompression,
    PreferredVideoCodecs,
    StreamFrame,
    StreamReport,
    StreamStart,
)
from vgpu.spice.imaging import (
    CLIENT_PREFERENCES,
    CODEC_NAMES,
    VIDEO_CODEC_TYPES,
    ClientImaging,
    Compression,
    client_video_codecs,
    cut_bands,
    encode_rect,
    encode_rect_by_content,
    normalize_damage,
)
from vgpu.spice.link import LinkClosed, Linked, LinkMachine
from vgpu.spice.moves import ClientPicture, Copy, Search, clear_of, find_moves
from vgpu.spice.pixmaps import (
    CACHE_ME_MIN_SHARE,
    cache_id,
    candidates,
    damaged_share,
    digest,
    subtract_all,
)
from vgpu.spice.streams import Plan, StreamPlanner, presented
from vgpu.spice.webpage import MAX_REQUEST_HEAD, html5_dir, http_response, is_websocket_upgrade

log = logging.getLogger(__name__)
_websocket_log = logging.getLogger(__name__ + ".websocket")
# websockets logs each refused handshake at INFO; the server logs its own one line.
_websocket_log.setLevel(logging.WARNING)

LINK_TIMEOUT_S = 10.0
"""A client that has not finished the handshake by then is dropped; real clients take
milliseconds, and a stalled half-open connection must not hold a slot forever."""

READ_CHUNK = 64 * 1024
"""Bytes per socket read: the largest client message (channels.MAX_CLIENT_MESSAGE_SIZE)
in one read, and a bound on what one read adds to a machine's input buffer."""

WRITE_BUFFER_HIGH = 4 * 1024 * 1024
"""Bytes queued in one connection's socket buffer before its sender waits: about one
losslessly compressed 1080p frame. With the one pending frame its subscription holds,
this is the whole per-client backlog."""

CURSOR_BACKLOG = 64
"""Cursor updates queued for one client; past this a slow client gets the current
shape and position instead of the history."""

MM_TIME_LATENCY_MS = 40
"""How far the client's multimedia clock is set behind the server's. A stream frame is
stamped due its rate control's due_ms after it is sent, on that clock (spice-server
starts at 400 ms, for WANs). Frames due on arrival (no margin) made a loaded spice-gtk
report drops every second, and rate control cut the H.264 frames it sent to two in
five (vgpu bench stream, the cube at 1280x720)."""

MAX_STREAM_PINGS = 64
"""PINGs after stream frames waiting for their PONG: each tells when the client reached
that frame (rate control's lag). Past this many the client is far behind already."""

BROWSER_VIDEO_CODECS = frozenset({"mjpeg"})
"""Stream codecs for WebSocket (browser) clients, whatever else they list."""

STREAM_REPORT_WINDOW = 5
STREAM_REPORT_TIMEOUT_MS = 1000
"""STREAM_ACTIVATE_REPORT: a report every 5 frames or every second, spice-server's
values (RED_STREAM_CLIENT_REPORT_WINDOW and _TIMEOUT)."""

SEND_HISTORY = 4096
"""Sends remembered per display connection for DisplayStats: a minute at 60 frames/s."""

MAX_WEBSOCKET_MESSAGE = 1024 * 1024
"""spice-html5 sends one WebSocket message per SPICE message, and client messages are
at most 64 KiB (channels.MAX_CLIENT_MESSAGE_SIZE): anything far larger is hostile."""

MAX_PREAUTH_BYTES = 64 * 1024
"""Bytes one connection may send before its link is done (WebSocket handshake, link
message, ticket): a real client sends under 1 KiB (a browser's upgrade request with its
cookies a few KiB). Past this the connection is dropped, so what an unauthenticated
client can make the server hold is this plus one READ_CHUNK, and one RSA key."""

MAX_CHANNELS_PER_SESSION = 8
"""Display, inputs and cursor, with room for reconnects racing the old connection's close;
more is a client opening channels to eat memory."""

MAX_SESSIONS = 64
"""Clients at once; each costs a subscription, a cursor listener, encoder time and its
socket's backlog (WRITE_BUFFER_HIGH at worst). `vgpu bench soak` serves 50 at once
(one of them stalled) with every other client at its lone frame rate."""

SHARED_FRAMES = 2
"""Frames whose per-frame work (normalized damage, encoded regions, MJPEG stream frames)
is kept for other clients: the newest and the one before. Clients that keep up ask for
the same regions of the same frame, so each is worked out once for all of them; one
that lags merges damage and does its own."""

MOVE_SEARCH_SHARE = 0.05
"""Searching for moved content (COPY_BITS) may take this share of its thread's time: a
search costs milliseconds (about 4 ms a frame on the desktop demo's 3D window), and it
saves bytes, not time; past it, clients get the damage as it is, and the encodes of it
that they share. Unbounded, 50 clients of the demo got 40-56% of their rate alone on 2
cores; at a quarter, 49-75%; at this share, 88-97%, as with no search (vgpu bench soak)."""
MOVE_SEARCH_BURST_S = 0.1
"""CPU seconds of searches that may run beyond MOVE_SEARCH_SHARE at once: a scroll now
and then is searched at once (one search of a full-HD frame takes tens of ms). Half a
second let 50 clients fall to 63-77%."""

GOODBYE_TIMEOUT_S = 1.0
"""How long closing the server waits for the goodbye messages to leave; a client that
does not read them in that time is closed without."""

CHANNELS = (
    (const.SPICE_CHANNEL_DISPLAY, 0),
    (const.SPICE_CHANNEL_INPUTS, 0),
    (const.SPICE_CHANNEL_CURSOR, 0),
)
"""What ATTACH_CHANNELS lists; the main channel is the one the client is already on."""


class DisplaySource(Protocol):
    """What the server serves: a running machine, or any test source."""

    frames: FrameBus
    cursor: CursorBus

    def send_input(self, event: InputEvent) -> None: ...


@dataclass(frozen=True)
class ServerOptions:
    password: str | None = None  # None: ticketing disabled
    compression: Compression = field(default_factory=Compression)
    # Sends per second per display client: a monitor's refresh rate; frames
    # published faster are merged (the newest frame, with all damage since the last send).
    max_fps: float = 60.0
    name: str = "vgpu"
    uuid: bytes = field(default_factory=lambda: uuid_module.uuid4().bytes)
    # The encoders release the GIL, so each thread can keep a core busy while the
    # event loop and the render thread go on; two suits a small host.
    encoder_threads: int = 2


class Transport(Protocol):
    received: int  # bytes read from the socket so far
    sealed: bool  # the goodbye is written: nothing may follow it

    async def recv(self) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    def write_messages(self, messages: list[bytes]) -> None: ...
    async def drain(self) -> None: ...
    def backlog(self) -> int: ...
    def authenticated(self) -> None: ...
    def queued(self) -> int: ...
    def close(self) -> None: ...


class StreamTransport:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes):
        self._reader = reader
        self._writer = writer
        self._pending = first
        self._tls = writer.get_extra_info("ssl_object") is not None
        self.received = len(first)
        self.sealed = False

    async def recv(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        data = await self._reader.read(READ_CHUNK)
        self.received += len(data)
        return data

    def write(self, data: bytes) -> None:
        if data and not self.sealed and not self._writer.is_closing():
            self._writer.write(data)

    def write_messages(self, messages: list[bytes]) -> None:
        if not self._tls:
            self.write(b"".join(messages))
            return
        # spice-gtk waits on the socket, not on OpenSSL's buffer: a message whose
        # bytes share a TLS record with the previous one's tail would sit unread
        # until more data came. One write per message ends a record at each message.
        for message in messages:
            self.write(message)

    async def drain(self) -> None:
        await self._writer.drain()

    def backlog(self) -> int:
        return _backlog(self._writer)

    def authenticated(self) -> None:
        """Nothing changes once linked: the channel machines bound their own messages."""

    def queued(self) -> int:
        """Bytes written and not yet taken by the socket: this client's backlog."""
        return int(self._writer.transport.get_write_buffer_size())

    def close(self) -> None:
        self._writer.close()


class WebSocketTransport:
    """SPICE in WebSocket binary messages (spice-html5's way), via websockets' sans-IO core."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader = reader
        self._writer = writer
        self._ws = ServerProtocol(
            subprotocols=["binary"], max_size=MAX_PREAUTH_BYTES, logger=_websocket_log
        )
        self._ready: deque[bytes] = deque()
        self.received = 0
        self.sealed = False

    async def _read(self) -> bytes:
        data = await self._reader.read(READ_CHUNK)
        self.received += len(data)
        return data

    def authenticated(self) -> None:
        """The link is done: messages up to MAX_WEBSOCKET_MESSAGE are allowed from now on."""
        self._ws.max_size = MAX_WEBSOCKET_MESSAGE

    async def handshake(self, first: bytes) -> bool:
        data = first
        self.received = len(first)
        while True:
            if self.received > MAX_PREAUTH_BYTES:
                raise ConnectionAbortedError(
                    f"more than {MAX_PREAUTH_BYTES} bytes of WebSocket handshake"
                )
            self._ws.receive_data(data)
            events = self._ws.events_received()
            if self._ws.handshake_exc is not None or self._ws.eof_sent:
                # websockets has refused the request and ended its side already
                # (bytes after the request, a malformed one); answering it again
                # would drive that failure twice.
                self._flush()
                return False
            for event in events:
                if isinstance(event, Request):
                    response = self._ws.accept(event)
                    self._ws.send_response(response)
                    self._flush()
                    return response.status_code == 101
            self._flush()
            data = await self._read()
            if not data:
                return False

    def _flush(self) -> None:
        for chunk in self._ws.data_to_send():
            if chunk and not self._writer.is_closing():
                self._writer.write(chunk)

    async def recv(self) -> bytes:
        while not self._ready:
            if self._ws.parser_exc is not None:
                # A malformed or oversized frame: websockets has queued the close
                # frame; the connection ends here, with the reason logged.
                raise ConnectionAbortedError(f"WebSocket: {self._ws.parser_exc}")
            data = await self._read()
            if not data:
                self._ws.receive_eof()
                return b""
            self._ws.receive_data(data)
            for event in self._ws.events_received():
                if event.opcode in (Opcode.BINARY, Opcode.CONT) and event.data:
                    self._ready.append(bytes(event.data))
                elif event.opcode is Opcode.CLOSE:
                    self._flush()
                    return b""
            self._flush()
        return self._ready.popleft()

    def write(self, data: bytes) -> None:
        if data and not self.sealed:
            self._ws.send_binary(data)
            self._flush()

    def write_messages(self, messages: list[bytes]) -> None:
        self.write(b"".join(messages))

    async def drain(self) -> None:
        await self._writer.drain()

    def backlog(self) -> int:
        return _backlog(self._writer)

    def queued(self) -> int:
        """Bytes written and not yet taken by the socket: this client's backlog."""
        return int(self._writer.transport.get_write_buffer_size())

    def close(self) -> None:
        self._writer.close()


@dataclass(eq=False)  # one per connection: two with equal counts are still two
class DisplayStats:
    """Per display connection, for tests and the benchmark."""

    peer: object = None  # the client's address, as the socket gives it
    frames: int = 0
    bytes: int = 0
    stream_frames: int = 0
    stream_bytes: int = 0
    stream_skipped: int = 0  # stream frames rate control left out
    codec: str | None = None  # the codec of the newest stream
    encoder: str | None = None  # the library that coded its newest frame ("h264_nvenc"...)
    reports: int = 0  # STREAM_REPORTs received
    max_backlog: int = 0  # the most bytes seen waiting in the socket before a stream frame
    # (frame serial, DRAW_COPY messages) per send, newest last: spice-gtk signals one
    # display-invalidate per draw, so a benchmark can tell which send an invalidate ends.
    sends: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=SEND_HISTORY))


@dataclass
class _Stream:
    """One client's live video stream: its rectangle, encoder and rate control."""

    stream_id: int
    rect: Rect
    codec_type: int
    encoder: Encoder
    rate: RateControl


def _encode_stream(encoder: Encoder, frame: Frame, rect: Rect) -> bytes:
    left, top, right, bottom = rect
    return encoder.encode(frame.pixels[top:bottom, left:right])


def _encode_jpeg(frame: Frame, rect: Rect, quality: int) -> bytes:
    left, top, right, bottom = rect
    return encode_jpeg(frame.pixels[top:bottom, left:right], quality)


@dataclass
class Session:
    session_id: int
    main: MainChannel
    main_transport: Transport
    others: list[Transport] = field(default_factory=list)


class FrameWaker:
    """Wakes the display senders when a frame is published: one hand-off to the event
    loop per frame for all of them, not one each (each is a write to the loop's
    self-pipe on the render thread), and in an order that turns by one each frame.

    The loop serves the woken senders in the order they were woken, and one that
    comes late in every round is the one the next frame finds still waiting: it
    merges two frames into one more often than the others. Turning the order shares
    that out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the render thread calls, the loop hands out
        self._pending = False  # a hand-off is on its way to the loop
        self._senders: list[_DisplayClient] = []  # the loop's alone
        self._turn = 0

    def add(self, sender: _DisplayClient) -> None:
        self._senders.append(sender)

    def stream_rects(self, surface_serial: int) -> Iterator[Rect]:
        """The senders' live streams' rectangles on surface `surface_serial`."""
        for sender in self._senders:
            rect = sender.stream_rect(surface_serial)
            if rect is not None:
                yield rect

    def remove(self, sender: _DisplayClient) -> None:
        self._senders.remove(sender)

    def notify(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called on the publishing thread, once per subscription per frame."""
        with self._lock:
            if self._pending:
                return
            self._pending = True
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is gone: we are shutting down
            with self._lock:
                self._pending = False

    def _wake(self) -> None:
        # Cleared first: a subscription offered the frame from now on hands off again
        # (a sender woken with nothing new to take goes back to waiting).
        with self._lock:
            self._pending = False
        senders = self._senders
        if not senders:
            return
        self._turn = (self._turn + 1) % len(senders)
        for sender in senders[self._turn:] + senders[:self._turn]:
            sender.wake()


class SpiceServer:
    def __init__(self, source: DisplaySource, options: ServerOptions | None = None) -> None:
        self.source = source
        self.options = options or ServerOptions()
        self._servers: list[asyncio.Server] = []
        self._sessions: dict[int, Session] = {}
        self.pool = ThreadPoolExecutor(self.options.encoder_threads, "spice-encode")
        # Searches for moves get a thread of their own, so none delays an encode.
        self._search_pool = ThreadPoolExecutor(1, "spice-moves")
        self._start = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        # linked, not yet ended: the machine and the client's address
        self._channels: dict[Transport, tuple[ChannelMachine, object]] = {}
        self.display_stats: list[DisplayStats] = []
        self.waker = FrameWaker()
        self.video_codecs = self.options.compression.video()
        # frame -> ("damage", damage), ("encode", rect, imaging, whole) or ("mjpeg",
        # rect, quality) -> the work (_Shared) or its result
        self._shared: dict[tuple[int, int], dict[object, Any]] = {}
        # the move searches' budget (see moves()): CPU seconds spent, and charged so far
        self._search_spent = self._search_charged = 0.0
        self._search_credit, self._search_clock = MOVE_SEARCH_BURST_S, time.monotonic()

    def _frame_work(self, frame: Frame) -> dict[object, Any]:
        key = (frame.serial, frame.surface_serial)
        work = self._shared.get(key)
        if work is None:
            work = self._shared[key] = {}
            while len(self._shared) > SHARED_FRAMES:
                del self._shared[min(self._shared)]
        return work

    def damage_rects(self, frame: Frame, damage: tuple[Rect, ...]) -> list[Rect]:
        """normalize_damage, once per frame and damage for all the clients that keep up."""
        work = self._frame_work(frame)
        rects = work.get(("damage", damage))
        if rects is None:
            rects = work["damage", damage] = normalize_damage(damage, frame.width, frame.height)
        return list(rects)

    def encode(self, frame: Frame, rect: Rect, imaging: ClientImaging,
               whole: bool = False) -> Awaitable[Any]:
        """`rect` of `frame` encoded on the pool for `imaging`: split by content into a list
        of regions, or `whole` as one region (a client's first picture); shared by every
        client that asks for the same while the frame is recent (stream frames: see
        encode_stream)."""
        regions = self._frame_work(frame)
        shared = regions.get(("encode", rect, imaging, whole))
        if shared is None:
            loop = asyncio.get_running_loop()
            shared = regions["encode", rect, imaging, whole] = _Shared(loop.run_in_executor(
                self.pool, encode_rect if whole else encode_rect_by_content, frame, rect,
                imaging))
        return shared.result()

    def digest(self, frame: Frame, rect: Rect) -> Awaitable[bytes]:
        """pixmaps.digest on the pool, shared by every client that asks while the frame is
        recent (clients check the same placements of the same frame)."""
        work = self._frame_work(frame)
        shared = work.get(("digest", rect))
        if shared is None:
            shared = work["digest", rect] = _Shared(asyncio.get_running_loop().run_in_executor(
                self.pool, digest, frame, rect))
        return shared.result()

    def moves(self, search: Search
              ) -> tuple[Search, Awaitable[tuple[list[Copy], list[Rect], bool, list[Copy]]]
                         ] | None:
        """find_moves on the pool, shared by every client that asks the same of the same
        frame (the clients that keep up all have the same picture), with the search that
        runs: while the searches have spent their share of their thread
        (MOVE_SEARCH_SHARE) only the checks of the guest's own copies (a comparison each,
        where a missed drag costs its pixels), None where there are none."""
        work = self._frame_work(search.frame)
        shared = work.get(search.key())
        if shared is None:
            # A token bucket: credit comes at MOVE_SEARCH_SHARE of the clock, up to
            # MOVE_SEARCH_BURST_S, and the searches' CPU time is taken from it.
            now, spent = time.monotonic(), self._search_spent
            self._search_credit = min(
                MOVE_SEARCH_BURST_S,
                self._search_credit + (now - self._search_clock) * MOVE_SEARCH_SHARE,
            ) - (spent - self._search_charged)
            self._search_clock, self._search_charged = now, spent
            if self._search_credit <= 0:
                if not search.hints:
                    return None
                search = search.checks_only()
                shared = work.get(search.key())
            if shared is None:
                shared = work[search.key()] = _Shared(asyncio.get_running_loop().run_in_executor(
                    self._search_pool, self._timed_search, search))
        return search, shared.result()

    def _timed_search(self, search: Search
                      ) -> tuple[list[Copy], list[Rect], bool, list[Copy]]:
        start = time.thread_time()
        try:
            return find_moves(search)
        finally:
            self._search_spent += time.thread_time() - start  # its one thread adds

    def encode_stream(self, frame: Frame, stream: _Stream) -> Awaitable[bytes]:
        """`stream`'s next frame encoded on the pool. An MJPEG frame is a JPEG of the
        stream's rectangle at the quality rate control set, whatever came before: it is
        shared with the clients that ask for the same while the frame is recent. Other
        codecs' encoders keep state between frames: each client's encodes its own."""
        encoder = stream.encoder
        if not isinstance(encoder, MjpegEncoder):
            return asyncio.get_running_loop().run_in_executor(
                self.pool, _encode_stream, encoder, frame, stream.rect)
        work = self._frame_work(frame)
        key = ("mjpeg", stream.rect, encoder.quality)
        shared = work.get(key)
        if shared is None:  # the quality as it is now: the encoder's may change meanwhile
            shared = work[key] = _Shared(asyncio.get_running_loop().run_in_executor(
                self.pool, _encode_jpeg, frame, stream.rect, encoder.quality))
        return shared.result()

    def mm_time(self) -> int:
        """SPICE multimedia time: milliseconds on the server's clock, wrapping at 32 bits."""
        return int((time.monotonic() - self._start) * 1000) & 0xFFFFFFFF

    async def listen(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        """Starts one listening socket; returns its port (useful with port 0)."""
        server = await asyncio.start_server(
            lambda r, w: self._track(self._accept(r, w)), host, port, ssl=tls
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def _track(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        await self._say_goodbye()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._search_pool.shutdown(wait=False, cancel_futures=True)

    async def _say_goodbye(self) -> None:
        """SPICE_MSG_DISCONNECTING on every linked channel, as the server goes away."""
        timestamp = time.monotonic_ns()
        for transport, (machine, _peer) in list(self._channels.items()):
            machine.disconnecting(timestamp, const.SPICE_LINK_ERR_OK)
            transport.write_messages(machine.messages_to_send())
            transport.sealed = True  # a sender still running must not write after it
        drains = [transport.drain() for transport in self._channels]
        if drains:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GOODBYE_TIMEOUT_S):
                    await asyncio.gather(*drains, return_exceptions=True)

    @property
    def connections(self) -> int:
        """Connections being served (linking or linked): for soak tests and the bench."""
        return len(self._tasks)

    def backlogs(self) -> dict[object, int]:
        """Per linked channel, by client address: bytes queued for a client that has not
        read them (bounded by WRITE_BUFFER_HIGH plus one frame)."""
        return {peer: transport.queued() for transport, (_m, peer) in self._channels.items()}

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        transport: Transport | None = None
        try:
            first = await asyncio.wait_for(reader.readexactly(4), LINK_TIMEOUT_S)
            if first == const.SPICE_MAGIC:
                transport = StreamTransport(reader, writer, first)
            elif first == b"GET ":
                head = await asyncio.wait_for(_http_head(reader, first), LINK_TIMEOUT_S)
                if not is_websocket_upgrade(head):
                    # A browser asking for the page: spice-html5, pointed at this port.
                    response = http_response(head, html5_dir())
                    log.info("%s: HTTP %s", peer, response.split(b"\r\n", 1)[0].decode())
                    writer.write(response)
                    await writer.drain()
                    return
                ws = WebSocketTransport(reader, writer)
                if not await asyncio.wait_for(ws.handshake(head), LINK_TIMEOUT_S):
                    log.info("%s: WebSocket handshake refused", peer)
                    return
                transport = ws
            else:
                log.info("%s: neither SPICE nor WebSocket (%r)", peer, first)
                return
            await self._serve(transport, peer)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
            log.info("%s: connection ended: %s", peer, str(exc) or type(exc).__name__)
        except Exception:
            # A bug met by one connection ends that connection, logged; the others go on.
            log.exception("%s: connection failed", peer)
        finally:
            writer.close()

    async def _link(self, transport: Transport, peer: object) -> tuple[Linked, bytes] | None:
        link = LinkMachine(self.options.password)
        deadline = asyncio.get_running_loop().time() + LINK_TIMEOUT_S
        while True:
            async with asyncio.timeout_at(deadline):
                data = await transport.recv()
            if not data:
                return None
            if transport.received > MAX_PREAUTH_BYTES:
                log.info("%s: link refused: more than %d bytes before authenticating",
                         peer, MAX_PREAUTH_BYTES)
                return None
            for event in link.receive_data(data):
                if isinstance(event, LinkClosed):
                    transport.write(link.data_to_send())
                    await transport.drain()
                    log.info("%s: link refused: %s", peer, event.reason)
                    return None
                error = self._admit(event, transport)
                link.finish(error)
                transport.write(link.data_to_send())
                await transport.drain()
                if error != const.SPICE_LINK_ERR_OK:
                    log.info("%s: link refused with error %d", peer, error)
                    return None
                transport.authenticated()
                return event, link.leftover()
            transport.write(link.data_to_send())

    def _admit(self, linked: Linked, transport: Transport) -> int:
        """The link result for an authenticated client; a channel admitted to a session
        is counted there at once, so concurrent links cannot pass the limit together."""
        if linked.channel_type == const.SPICE_CHANNEL_MAIN:
            return (
                const.SPICE_LINK_ERR_OK
                if len(self._sessions) < MAX_SESSIONS
                else const.SPICE_LINK_ERR_ERROR
            )
        if (linked.channel_type, linked.channel_id) not in CHANNELS:
            return const.SPICE_LINK_ERR_CHANNEL_NOT_AVAILABLE
        session = self._sessions.get(linked.connection_id)
        if session is None:
            return const.SPICE_LINK_ERR_BAD_CONNECTION_ID
        if len(session.others) >= MAX_CHANNELS_PER_SESSION:
            return const.SPICE_LINK_ERR_ERROR
        session.others.append(transport)
        return const.SPICE_LINK_ERR_OK

    async def _serve(self, transport: Transport, peer: object) -> None:
        try:
            linked = await self._link(transport, peer)
            if linked is None:
                return
            info, leftover = linked
            kind = info.channel_type
            if kind == const.SPICE_CHANNEL_MAIN:
                await self._serve_main(transport, info, leftover, peer)
            elif info.connection_id not in self._sessions:
                return  # the session ended while this channel was linking
            elif kind == const.SPICE_CHANNEL_DISPLAY:
                await self._serve_display(transport, DisplayChannel(info), leftover, peer)
            elif kind == const.SPICE_CHANNEL_CURSOR:
                await self._serve_cursor(transport, CursorChannel(info), leftover, peer)
            else:
                await self._serve_inputs(transport, InputsChannel(info), leftover, peer)
        finally:
            for session in self._sessions.values():
                if transport in session.others:
                    session.others.remove(transport)

    async def _pump(
        self,
        transport: Transport,
        machine: ChannelMachine,
        leftover: bytes,
        peer: object,
        on_event: Callable[[object], None] | None = None,
    ) -> None:
        """Feeds the machine from the socket until the client goes or misbehaves."""
        self._channels[transport] = (machine, peer)
        try:
            await self._pump_until_closed(transport, machine, leftover, peer, on_event)
        finally:
            del self._channels[transport]

    async def _pump_until_closed(
        self,
        transport: Transport,
        machine: ChannelMachine,
        leftover: bytes,
        peer: object,
        on_event: Callable[[object], None] | None,
    ) -> None:
        data = leftover
        while True:
            for event in machine.receive_data(data) if data else []:
                if isinstance(event, ChannelClosed):
                    transport.write_messages(machine.messages_to_send())
                    log.info("%s: channel %d closed: %s", peer, machine.channel_type, event.reason)
                    return
                if on_event is not None:
                    on_event(event)
            messages = machine.messages_to_send()
            if messages:
                transport.write_messages(messages)
                # A client that sends requests but never reads the answers must
                # not grow its socket buffer past WRITE_BUFFER_HIGH: stop reading.
                await transport.drain()
            data = await transport.recv()
            if not data:
                return

    async def _serve_main(
        self, transport: Transport, info: Linked, leftover: bytes, peer: object
    ) -> None:
        session_id = 0  # 0 is the connection id of a main channel's own link
        while session_id == 0 or session_id in self._sessions:
            session_id = secrets.randbits(32)
        main = MainChannel(info, session_id, CHANNELS, self.options.name, self.options.uuid)
        session = Session(session_id, main, transport)
        self._sessions[session_id] = session
        log.info("%s: session %08x started", peer, session_id)
        try:
            main.start(self.mm_time() - MM_TIME_LATENCY_MS)
            main.ping(1, time.monotonic_ns())  # the round trip is logged, as a link check

            def on_event(event: object) -> None:
                if isinstance(event, PongReceived):
                    rtt = (time.monotonic_ns() - event.timestamp) / 1e6
                    log.info("%s: round trip %.1f ms", peer, rtt)

            transport.write_messages(main.messages_to_send())
            await self._pump(transport, main, leftover, peer, on_event)
        finally:
            del self._sessions[session_id]
            for other in list(session.others):
                other.close()
            log.info("%s: session %08x ended", peer, session_id)

    async def _serve_inputs(
        self, transport: Transport, machine: InputsChannel, leftover: bytes, peer: object
    ) -> None:
        def on_event(event: object) -> None:
            if isinstance(event, InputReceived):
                self.source.send_input(event.event)

        machine.start()
        await self._pump(transport, machine, leftover, peer, on_event)

    async def _serve_cursor(
        self, transport: Transport, machine: CursorChannel, leftover: bytes, peer: object
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[CursorUpdate | None] = asyncio.Queue(CURSOR_BACKLOG)

        def put(update: CursorUpdate | None) -> None:
            try:
                queue.put_nowait(update)
            except asyncio.QueueFull:
                # Too far behind: forget the history, send the state as it is now.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

        def listener(update: CursorUpdate) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: we are shutting down
                loop.call_soon_threadsafe(put, update)

        remove = self.source.cursor.listen(listener)
        machine.set_ack()
        machine.init(self.source.cursor.state())
        transport.write_messages(machine.messages_to_send())

        async def send_updates() -> None:
            while True:
                update = await queue.get()
                if update is None:
                    state = self.source.cursor.state()
                    update = CursorUpdate("set", state.x, state.y, state.visible, state.shape)
                machine.update(update)
                transport.write_messages(machine.messages_to_send())
                await transport.drain()

        sender = asyncio.ensure_future(send_updates())
        try:
            await self._pump(transport, machine, leftover, peer)
        finally:
            remove()
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _serve_display(
        self, transport: Transport, machine: DisplayChannel, leftover: bytes, peer: object
    ) -> None:
        client = _DisplayClient(self, transport, machine, peer)
        self.display_stats.append(client.stats)
        self.waker.add(client)
        machine.set_ack()
        transport.write_messages(machine.messages_to_send())
        subscription = self.source.frames.subscribe(client.notify)
        sender = asyncio.ensure_future(client.send_frames(subscription))
        sender.add_done_callback(lambda task: _sender_ended(task, transport, peer))
        try:
            await self._pump(transport, machine, leftover, peer, client.on_event)
        finally:
            subscription.close()
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            self.display_stats.remove(client.stats)
            self.waker.remove(client)


SIOCOUTQNSD = 0x894B
"""Linux's ioctl for the bytes a TCP socket holds not yet sent (sockios.h): with the
transport's own buffer, the whole queue in front of a client."""


def _backlog(writer: asyncio.StreamWriter) -> int:
    """Bytes written for a client and not yet on the wire: how far it is behind."""
    queued = int(writer.transport.get_write_buffer_size())
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # (a socket closed under us has fileno -1, which fcntl refuses with ValueError)
        with contextlib.suppress(OSError, ValueError):
            unsent = fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0")
            queued += struct.unpack("i", unsent)[0]
    return queued


async def _http_head(reader: asyncio.StreamReader, first: bytes) -> bytes:
    """An HTTP request's head (through the blank line); ConnectionError past its bound."""
    head = first
    while b"\r\n\r\n" not in head:
        if len(head) > MAX_REQUEST_HEAD:
            raise ConnectionError(f"HTTP request head over {MAX_REQUEST_HEAD} bytes")
        data = await reader.read(READ_CHUNK)
        if not data:
            raise ConnectionError("connection closed inside an HTTP request head")
        head += data
    return head


class _Shared:
    """Work on a pool shared by the clients that ask for it while their frame is recent,
    and the clients waiting for it.

    Each waiter gets a future of its own, so that a client that goes away while waiting
    cancels only that, not the others' work; all of them are answered from one callback
    when the work is done. (asyncio.shield per waiter did the same with two callbacks
    and three loop steps each: with 50 clients on a frame, the event loop's most
    frequent steps.)"""

    __slots__ = ("_waiters", "future")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self._waiters: list[asyncio.Future[Any]] = []
        future.add_done_callback(self._done)

    def result(self) -> Awaitable[Any]:
        """The work's future as it is once done (every client but the first few find it
        so, and await it without a wait), else a waiter's future."""
        if self.future.done():
            return self.future
        waiter = self.future.get_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def _done(self, future: asyncio.Future[Any]) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():  # its client went away
                continue
            if future.cancelled():
                waiter.cancel()
            elif (error := future.exception()) is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(future.result())


def _sender_ended(task: asyncio.Task[None], transport: Transport, peer: object) -> None:
    """A display sender that fails (an encoder error, a lost socket) ends its connection."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None and not isinstance(error, ConnectionError):
        log.error("%s: display sender failed: %r", peer, error)
    transport.close()


class _DisplayClient:
    """One display channel's sender: newest frame, damage-driven, paced, within the ack window."""

    def __init__(
        self, server: SpiceServer, transport: Transport, machine: DisplayChannel, peer: object
    ) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._machine = machine
        self._peer = peer
        self._wake = asyncio.Event()
        self.imaging = ClientImaging(
            server.options.compression,
            lz4=machine.has_cap(const.SPICE_DISPLAY_CAP_LZ4_COMPRESSION),
            # spice-html5 (WebSocket) draws 32BIT and RGBA bitmaps only
            palette=not isinstance(transport, WebSocketTransport),
        )
        self.stats = DisplayStats(peer)
        self._client_codecs = client_video_codecs(machine.has_cap)
        if isinstance(transport, WebSocketTransport):
            # spice-html5 lists VP8 where the browser has it, but plays it in a
            # <video> element over its canvas through MediaSource, which buffers
            # before it shows anything; its MJPEG draws on the canvas at once.
            self._client_codecs = self._client_codecs & BROWSER_VIDEO_CODECS
        self._preferred: tuple[str, ...] = ()
        streaming = server.options.compression.streaming
        if choose_codec(server.video_codecs, self._client_codecs) is None:
            streaming = "off"  # the client decodes none of the server's stream codecs
        self._streams = StreamPlanner(streaming)
        self._stream: _Stream | None = None
        self._surface_serial: int | None = None  # the surface the client has
        self._picture = ClientPicture()  # for COPY_BITS of what moved
        self._pings: dict[int, int] = {}  # ping id -> monotonic_ns sent, in send order
        self._ping_id = 0

    def lag(self) -> float:
        """Seconds since the oldest stream frame the client has not reached was sent."""
        if not self._pings:
            return 0.0
        return (time.monotonic_ns() - next(iter(self._pings.values()))) / 1e9

    def stream_rect(self, surface_serial: int) -> Rect | None:
        """The live stream's rectangle, where it is on surface `surface_serial`."""
        if self._stream is None or self._surface_serial != surface_serial:
            return None
        return self._stream.rect

    def notify(self) -> None:
        """Called on the publishing thread."""
        self._server.waker.notify(self._loop)

    def wake(self) -> None:
        self._wake.set()

    def on_event(self, event: object) -> None:
        if isinstance(event, AckReceived):
            self._wake.set()
        elif isinstance(event, PreferredCompression):
            preferred = CLIENT_PREFERENCES.get(event.value)
            if preferred is not None:
                self.imaging = replace(self.imaging, preferred=preferred)
        elif isinstance(event, PongReceived):
            # PONGs come in order: every ping up to this one has been reached.
            while self._pings and next(iter(self._pings)) <= event.ping_id:
                self._pings.pop(next(iter(self._pings)))
        elif isinstance(event, PreferredVideoCodecs):
            self._preferred = tuple(
                CODEC_NAMES[t] for t in event.codec_types if t in CODEC_NAMES
            )
        elif isinstance(event, StreamReport):
            stream = self._stream
            if stream is not None and event.stream_id == stream.stream_id:
                self.stats.reports += 1
                stream.rate.report(
                    event.num_frames, event.num_drops, event.last_frame_delay, self._loop.time()
                )
        elif isinstance(event, DisplayInit):
            log.debug("%s: display init, cache %d", self._peer, event.pixmap_cache_size)

    async def send_frames(self, subscription: Subscription) -> None:
        machine = self._machine
        pacer = Pacer(self._server.options.max_fps)
        surface_serial: int | None = None
        last_serial = 0  # of the last frame taken: the serials between were merged
        frame: Frame | None = None
        while True:
            deadline = self._streams.deadline()
            try:
                if deadline is None:  # no stream: no timeout context to set up per wake
                    await self._wake.wait()
                else:
                    async with asyncio.timeout_at(deadline):
                        await self._wake.wait()
            except TimeoutError:
                # The streamed region went still: end the stream, redraw it losslessly.
                if frame is not None:
                    await self._send(frame, self._streams.expire(self._loop.time()))
                continue
            self._wake.clear()
            if not machine.window_open():
                continue  # an ack will wake us
            delay = pacer.wait(self._loop.time())
            if delay > 0:
                await asyncio.sleep(delay)
            taken = subscription.take()
            if taken is None:
                continue
            frame, damage = taken
            # The pace runs from one take to the next: the time a send takes
            # (encoding, most of it) is inside it, not added to it.
            taken_at = self._loop.time()
            pacer.went(taken_at)
            if frame.surface_serial != surface_serial or machine.surface is None:
                # The first picture whole, in one draw, and then the mark.
                region = await self._server.encode(
                    frame, (0, 0, frame.width, frame.height), self.imaging, whole=True
                )
                if self._stream is not None:
                    self._stream.encoder.close()
                    self._stream = None
                machine.show_surface(frame.width, frame.height, frame.has_alpha, region,
                                     tuple(self._streams.reset()))
                surface_serial = self._surface_serial = frame.surface_serial
                self._picture.reset(frame, region)
                await self._flush(frame.serial, 1)
            else:
                rects = self._server.damage_rects(frame, damage)
                # What moved is copied by the client; only the rest is planned. Only a
                # client that had the frame before searches (one search for all of them,
                # SpiceServer.moves): one that skipped frames gets the merged damage,
                # shared with those that skipped alike, as per-client searches and
                # trimmed (so unshared) encodes would grow with the clients.
                # (One that skipped frames still checks the guest's own copies since its
                # picture: a comparison each, where a missed window drag costs its pixels.)
                # Damage all inside the stream goes as its next frame: nothing to search
                # (a full-screen stream's search cost about 1 ms of CPU a 720p frame).
                # Copies may read what the frame draws only where no draw is lossy.
                search = (None if self._streams.covers(rects) else self._picture.search(
                    frame, rects, frame.serial - last_serial == 1,
                    lossless=self.imaging.compression.jpeg_wan != "always"))
                copies: list[Copy] = []
                drawn: list[Copy] = []
                asked = None if search is None else self._server.moves(search)
                if asked is not None:
                    search, searching = asked
                    copies, rects, found, drawn = await searching
                    self._picture.searched(search, found)
                merged = max(1, frame.serial - last_serial)
                # The stream planner sees the whole damage, the copied parts too; the
                # copies after the draws keep off the stream's area, the rest is drawn.
                plan = self._streams.plan(
                    [*rects, *(dest for dest, _source in drawn)], self._loop.time(), merged,
                    partial(self._server.waker.stream_rects, frame.surface_serial),
                    presented(frame.presents, last_serial))
                if drawn:
                    active = self._streams.active
                    drawn = clear_of(drawn, None if active is None else active[1])
                    plan.draws = subtract_all(plan.draws, [dest for dest, _source in drawn])
                await self._send(frame, plan, copies, taken_at, drawn)
            last_serial = frame.serial

    def _start_stream(self, stream_id: int, rect: Rect) -> _Stream:
        choice = choose_codec(self._server.video_codecs, self._client_codecs, self._preferred)
        if choice is None:  # streaming is off for a client that shares no codec
            raise RuntimeError("a stream started for a client without a stream codec")
        width, height = rect[2] - rect[0], rect[3] - rect[1]
        rate = RateControl(width, height, self._server.options.max_fps, self._loop.time())
        encoder = create_encoder(choice, width, height, rate.rate())
        self.stats.codec = choice.codec
        return _Stream(stream_id, rect, VIDEO_CODEC_TYPES[choice.codec], encoder, rate)

    async def _send(self, frame: Frame, plan: Plan, copies: list[Copy] | None = None,
                    taken_at: float | None = None, drawn: list[Copy] | None = None) -> None:
        """Encodes on the pool, then hands the frame's update (the `copies` of what
        moved, and those of what it `drawn`) to the channel machine, which queues it in
        the protocol's order.
        `taken_at`: when the frame was taken, the time stream rate control paces by
        (a moves search may come between, longer for one frame than the next).

        Every encode finishes before the first message is queued, so the channel's
        reader (which flushes what the machine holds) never sends half of a frame."""
        machine, server, imaging = self._machine, self._server, self.imaging
        now = self._loop.time() if taken_at is None else taken_at
        ended = self._stream is not None and any(
            stream_id == self._stream.stream_id for stream_id, _rect in plan.ended
        )
        if ended and self._stream is not None:
            self._stream.encoder.close()
            self._stream = None
        if plan.started is not None:
            self._stream = self._start_stream(*plan.started)
        avoid = None if self._stream is None else self._stream.rect
        cached, draws = self._cached_draws(frame, plan.draws, avoid)
        futures = [server.encode(frame, r, imaging) for r in cut_bands(draws)]
        stream, video_future = self._stream, None
        if plan.stream_frame is not None and stream is not None:
            lag = self.lag()
            backlog = 0  # a client too far behind gets no frame whatever its socket holds
            if lag <= MAX_LAG_S:
                # A syscall (and a wait for the GIL after it on a busy host): asked
                # only where it decides.
                backlog = self._transport.backlog()
                self.stats.max_backlog = max(self.stats.max_backlog, backlog)
            if stream.rate.want_frame(backlog, now, lag):
                stream.encoder.set_rate(stream.rate.rate())
                video_future = server.encode_stream(frame, stream)
            else:
                self.stats.stream_skipped += 1
        # Each awaited in turn: all of them are on the pool already.
        regions = await self._from_cache(frame, cached)
        regions += [region for future in futures for region in await future]
        video = None if video_future is None else await video_future
        self._picture.sent(frame, regions, None if self._stream is None else self._stream.rect,
                           drawn or ())
        mm_time = self._server.mm_time()
        started = None
        if plan.started is not None and stream is not None:  # (stream is the new one)
            started = StreamStart(stream.stream_id, stream.rect, mm_time, stream.codec_type,
                                  (STREAM_REPORT_WINDOW, STREAM_REPORT_TIMEOUT_MS))
        stream_frame = None
        if video and stream is not None:
            due = (mm_time - MM_TIME_LATENCY_MS + stream.rate.due_ms) & 0xFFFFFFFF
            ping = None
            if len(self._pings) < MAX_STREAM_PINGS:
                self._ping_id += 1
                self._pings[self._ping_id] = time.monotonic_ns()
                ping = (self._ping_id, self._pings[self._ping_id])
            stream_frame = StreamFrame(stream.stream_id, due, video, ping)
            stream.rate.sent(len(video), now)
            self.stats.encoder = stream.encoder.library
            self.stats.stream_frames += 1
            self.stats.stream_bytes += len(video)
        machine.show_update(FrameUpdate(
            tuple(stream_id for stream_id, _rect in plan.ended), tuple(regions),
            started, stream_frame, tuple(copies or ()),
            tuple(machine.pixmaps.end_frame()), tuple(drawn or ())))
        await self._flush(frame.serial, len(regions))

    def _cached_draws(self, frame: Frame, rects: list[Rect], avoid: Rect | None
                      ) -> tuple[list[tuple[Placement, Awaitable[bytes], Awaitable[Any] | None]],
                                 list[Rect]]:
        """The guest images of the damage to draw whole, through the client's pixmap cache
        (each with its digest and, where the client lacks it, its encode, both started on
        the pool), and the rest of the damage. An image goes whole where the client may
        have it, or where most of it is damaged: cheaper than its damaged parts."""
        pixmaps = self._machine.pixmaps
        if not pixmaps.capacity or not frame.placements:
            return [], rects
        chosen = [p for p in candidates(frame, rects, avoid)
                  if cache_id(p.key) in pixmaps
                  or damaged_share(p.rect, rects) >= CACHE_ME_MIN_SHARE]
        if not chosen:
            return [], rects
        server = self._server
        return ([(p, server.digest(frame, p.rect),
                  None if cache_id(p.key) in pixmaps else self._encode_whole(frame, p.rect))
                 for p in chosen],
                subtract_all(rects, [p.rect for p in chosen]))

    def _encode_whole(self, frame: Frame, rect: Rect) -> Awaitable[Any]:
        """`rect` as one lossless image (what the client keeps must be the frame's pixels)."""
        imaging = self.imaging
        if imaging.compression.jpeg_wan == "always":
            imaging = replace(imaging, compression=replace(imaging.compression,
                                                           jpeg_wan="never"))
        return self._server.encode(frame, rect, imaging, whole=True)

    async def _from_cache(self, frame: Frame,
                          cached: list[tuple[Placement, Awaitable[bytes], Awaitable[Any] | None]]
                          ) -> list[EncodedRegion]:
        """The images of _cached_draws: FROM_CACHE where the client has exactly the frame's
        pixels under the image's id, else the image, kept by the client (CACHE_ME) where
        its cache takes it. The cache model is asked in draw order, on the event loop."""
        pixmaps, regions = self._machine.pixmaps, []
        for placement, digest_future, encoded in cached:
            rect, image_id = placement.rect, cache_id(placement.key)
            pixels = await digest_future
            if pixmaps.hit(image_id, pixels):
                regions.append(EncodedRegion(rect, const.SPICE_IMAGE_TYPE_FROM_CACHE, b"",
                                             cache_id=image_id))
                continue
            region = await (encoded or self._encode_whole(frame, rect))
            area = (rect[2] - rect[0]) * (rect[3] - rect[1])
            if region.fill is None and not region.lossy and pixmaps.add(image_id, area, pixels):
                region = replace(region, cache_id=image_id)
            regions.append(region)
        return regions

    async def _flush(self, serial: int, draws: int) -> None:
        messages = self._machine.messages_to_send()
        if not messages:
            return
        self._transport.write_messages(messages)
        self.stats.frames += 1
        self.stats.bytes += sum(len(m) for m in messages)
        self.stats.sends.append((serial, draws))
        await self._transport.drain()
