"""SPICE channels after the link, as sans-IO state machines (bytes in, events out).

Each machine frames messages (mini header, or the full data header for old
clients), answers the messages every channel shares (ack sync, acks, pong,
disconnecting) and parses its own client messages, checking every size before
reading. Outgoing messages are built by methods and collected in
`data_to_send()`. A malformed message closes the channel: `receive_data`
returns `ChannelClosed(reason)` and ignores anything after it.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass

from vgpu.display import CursorShape, CursorState, CursorUpdate, InputEvent, Rect
from vgpu.spice import constants as const
from vgpu.spice.display_order import DisplayOrder, DisplayState, Send
from vgpu.spice.link import Linked
from vgpu.spice.pixmaps import PixmapCache
from vgpu.spice.wire import MalformedMessage, Reader, has_cap, pack_rect

MINI_HEADER = struct.Struct("<HI")
FULL_HEADER = struct.Struct("<QHII")

MAX_CLIENT_MESSAGE_SIZE = 64 * 1024
"""The largest client message is agent data, at most 2048 bytes (VD_AGENT_MAX_DATA_SIZE)
plus its header; 64 KiB refuses hostile sizes before any buffering."""

ACK_WINDOW = 20
"""Messages per client ack, spice-server's value; the server stops sending at twice this
many unacknowledged messages, which bounds what sits in a slow client's socket."""

CURSOR_CACHE_ENTRIES = 64
"""Cursor shapes the client is asked to keep; evicted ones are invalidated (INVAL_ONE)."""

MAX_CHANNELS_IN_LIST = 16
"""A sanity bound on the server's own CHANNELS_LIST (it lists three): a longer one is a bug."""


@dataclass(frozen=True)
class ChannelClosed:
    reason: str


@dataclass(frozen=True)
class MouseModeChanged:
    mode: int


@dataclass(frozen=True)
class DisplayInit:
    pixmap_cache_size: int
    glz_dictionary_window: int


@dataclass(frozen=True)
class PreferredCompression:
    value: int


@dataclass(frozen=True)
class PreferredVideoCodecs:
    """The client's SPICE_VIDEO_CODEC_TYPE_* numbers, most wanted first."""

    codec_types: tuple[int, ...]


@dataclass(frozen=True)
class StreamReport:
    """SPICE_MSGC_DISPLAY_STREAM_REPORT: how the client fared with a stream's frames.
    `last_frame_delay` is how early (ms; negative: late) the last frame arrived."""

    stream_id: int
    unique_id: int
    start_frame_mm_time: int
    end_frame_mm_time: int
    num_frames: int
    num_drops: int
    last_frame_delay: int


@dataclass(frozen=True)
class AckReceived:
    """The ack window moved; a blocked display sender may go on."""


@dataclass(frozen=True)
class PongReceived:
    """The answer to ping(): `timestamp` is what the ping carried."""

    ping_id: int
    timestamp: int


@dataclass(frozen=True)
class InputReceived:
    event: InputEvent


ChannelEvent = (
    ChannelClosed
    | MouseModeChanged
    | DisplayInit
    | PreferredCompression
    | PreferredVideoCodecs
    | StreamReport
    | AckReceived
    | InputReceived
    | PongReceived
)


class ChannelMachine(ABC):
    """What all channels share: framing, the ack window, common client messages."""

    channel_type = 0
    # Client message type → minimum body size, for this channel's own messages.
    client_messages: dict[int, int] = {}

    def __init__(self, linked: Linked) -> None:
        self.linked = linked
        self.mini_header = linked.mini_header
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._serial = 0
        self.closed: str | None = None
        self.ack_window = 0  # 0: acks not in use on this channel
        self._ack_generation = 0
        self._client_generation = -1
        self._unacked = 0

    # -- outgoing
    def data_to_send(self) -> bytes:
        return b"".join(self.messages_to_send())

    def messages_to_send(self) -> list[bytes]:
        """The queued messages, one bytes object each (TLS sends each in its own records)."""
        out, self._out = self._out, []
        return out

    def _send(self, msg_type: int, *body: bytes) -> None:
        """Queues one message; its body comes in parts, joined once with the header
        (a frame's encoded image is the largest part and is copied only here)."""
        size = sum(map(len, body))
        if self.mini_header:
            header = MINI_HEADER.pack(msg_type, size)
        else:
            self._serial += 1
            header = FULL_HEADER.pack(self._serial, msg_type, size, 0)
        self._out.append(b"".join((header, *body)))
        if self.ack_window:
            self._unacked += 1

    def set_ack(self, window: int = ACK_WINDOW) -> None:
        self._ack_generation += 1
        self._send(const.SPICE_MSG_SET_ACK, struct.pack("<II", self._ack_generation, window))
        self.ack_window = window
        self._unacked = 0

    def window_open(self) -> bool:
        """False while the client has twice the ack window unacknowledged: stop sending."""
        return not self.ack_window or self._unacked < 2 * self.ack_window

    def ping(self, ping_id: int, timestamp: int) -> None:
        self._send(const.SPICE_MSG_PING, struct.pack("<IQ", ping_id, timestamp))

    def disconnecting(self, timestamp: int, reason: int) -> None:
        """The server's goodbye before it closes the connection (SpiceMsgDisconnect)."""
        self._send(const.SPICE_MSG_DISCONNECTING, struct.pack("<QI", timestamp, reason))

    def notify(self, text: str) -> None:
        message = text.encode() + b"\0"
        self._send(
            const.SPICE_MSG_NOTIFY,
            struct.pack(
                "<QIIII",
                0,
                const.SPICE_NOTIFY_SEVERITY_INFO,
                const.SPICE_NOTIFY_VISIBILITY_LOW,
                0,
                len(message),
            )
            + message,
        )

    # -- incoming
    def receive_data(self, data: bytes) -> list[ChannelEvent]:
        if self.closed is not None:
            return []
        self._buffer += data
        header = MINI_HEADER if self.mini_header else FULL_HEADER
        events: list[ChannelEvent] = []
        while len(self._buffer) >= header.size:
            if self.mini_header:
                msg_type, size = MINI_HEADER.unpack_from(self._buffer)
            else:
                _serial, msg_type, size, _sub_list = FULL_HEADER.unpack_from(self._buffer)
            if size > MAX_CLIENT_MESSAGE_SIZE:
                return [*events, self._close(f"message type {msg_type} of {size} bytes")]
            if len(self._buffer) < header.size + size:
                break
            body = bytes(self._buffer[header.size : header.size + size])
            del self._buffer[: header.size + size]
            try:
                events.extend(self._dispatch(msg_type, body))
            except MalformedMessage as exc:
                return [*events, self._close(f"message type {msg_type}: {exc}")]
        return events

    def _close(self, reason: str) -> ChannelClosed:
        self.closed = reason
        self._buffer.clear()
        return ChannelClosed(reason)

    def _dispatch(self, msg_type: int, body: bytes) -> list[ChannelEvent]:
        r = Reader(body)
        if msg_type == const.SPICE_MSGC_ACK_SYNC:
            self._client_generation = r.u32()
            return []
        if msg_type == const.SPICE_MSGC_ACK:
            if self._client_generation == self._ack_generation:
                self._unacked = max(0, self._unacked - self.ack_window)
            return [AckReceived()]
        if msg_type == const.SPICE_MSGC_PONG:
            return [PongReceived(r.u32(), r.u64())]
        if msg_type in (const.SPICE_MSGC_MIGRATE_FLUSH_MARK, const.SPICE_MSGC_MIGRATE_DATA):
            return []  # no migration: nothing was asked, nothing to do
        if msg_type == const.SPICE_MSGC_DISCONNECTING:
            r.u64()
            reason = r.u32()
            return [self._close(f"client disconnecting (reason {reason})")]
        if msg_type not in self.client_messages:
            raise MalformedMessage(f"unknown message type for channel {self.channel_type}")
        if len(body) < self.client_messages[msg_type]:
            raise MalformedMessage(
                f"{len(body)} bytes, at least {self.client_messages[msg_type]} expected"
            )
        return self._handle(msg_type, r)

    @abstractmethod
    def _handle(self, msg_type: int, r: Reader) -> list[ChannelEvent]:
        """The events one checked message of this channel's own types gives."""


class MainChannel(ChannelMachine):
    channel_type = const.SPICE_CHANNEL_MAIN
    client_messages = {
        const.SPICE_MSGC_MAIN_CLIENT_INFO: 8,
        const.SPICE_MSGC_MAIN_MIGRATE_CONNECTED: 0,
        const.SPICE_MSGC_MAIN_MIGRATE_CONNECT_ERROR: 0,
        const.SPICE_MSGC_MAIN_ATTACH_CHANNELS: 0,
        const.SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST: 2,
        const.SPICE_MSGC_MAIN_AGENT_START: 4,
        const.SPICE_MSGC_MAIN_AGENT_DATA: 0,
        const.SPICE_MSGC_MAIN_AGENT_TOKEN: 4,
        const.SPICE_MSGC_MAIN_MIGRATE_END: 0,
        const.SPICE_MSGC_MAIN_MIGRATE_DST_DO_SEAMLESS: 4,
        const.SPICE_MSGC_MAIN_MIGRATE_CONNECTED_SEAMLESS: 0,
        const.SPICE_MSGC_MAIN_QUALITY_INDICATOR: 0,
    }
    SUPPORTED_MOUSE_MODES = const.SPICE_MOUSE_MODE_SERVER | const.SPICE_MOUSE_MODE_CLIENT

    def __init__(
        self,
        linked: Linked,
        session_id: int,
        channels: tuple[tuple[int, int], ...],
        name: str,
        uuid: bytes,
    ) -> None:
        super().__init__(linked)
        if len(channels) > MAX_CHANNELS_IN_LIST or len(uuid) != 16:
            raise ValueError("bad channel list or uuid")
        self.session_id = session_id
        self.channels = channels
        self.name = name
        self.uuid = uuid
        # Client mode: the client sends absolute positions, no pointer grab needed.
        self.mouse_mode = const.SPICE_MOUSE_MODE_CLIENT

    def start(self, mm_time: int) -> None:
        """The server's first messages: init, then name and uuid if the client wants them."""
        displays = sum(1 for kind, _ in self.channels if kind == const.SPICE_CHANNEL_DISPLAY)
        self._send(
            const.SPICE_MSG_MAIN_INIT,
            struct.pack(
                "<8I",
                self.session_id,
                displays,
                self.SUPPORTED_MOUSE_MODES,
                self.mouse_mode,
                0,  # agent_connected: there is no agent
                0,  # agent_tokens
                mm_time & 0xFFFFFFFF,
                0,  # ram_hint: no GLZ dictionary sizing advice
            ),
        )
        if has_cap(self.linked.channel_caps, const.SPICE_MAIN_CAP_NAME_AND_UUID):
            name = self.name.encode() + b"\0"
            self._send(const.SPICE_MSG_MAIN_NAME, struct.pack("<I", len(name)) + name)
            self._send(const.SPICE_MSG_MAIN_UUID, self.uuid)

    def multimedia_time(self, mm_time: int) -> None:
        self._send(const.SPICE_MSG_MAIN_MULTI_MEDIA_TIME, struct.pack("<I", mm_time & 0xFFFFFFFF))

    def _handle(self, msg_type: int, r: Reader) -> list[ChannelEvent]:
        if msg_type == const.SPICE_MSGC_MAIN_ATTACH_CHANNELS:
            body = struct.pack("<I", len(self.channels))
            body += b"".join(struct.pack("<BB", kind, cid) for kind, cid in self.channels)
            self._send(const.SPICE_MSG_MAIN_CHANNELS_LIST, body)
            return []
        if msg_type == const.SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST:
            mode = r.u16()
            if mode in (const.SPICE_MOUSE_MODE_SERVER, const.SPICE_MOUSE_MODE_CLIENT):
                self.mouse_mode = mode
            # Answer with the mode in force, whether or not the request was granted.
            self._send(
                const.SPICE_MSG_MAIN_MOUSE_MODE,
                struct.pack("<HH", self.SUPPORTED_MOUSE_MODES, self.mouse_mode),
            )
            return [MouseModeChanged(self.mouse_mode)]
        # Client info, agent messages (there is no agent to give them to) and
        # migration messages (no migration is offered) are read and dropped.
        return []


@dataclass(frozen=True)
class EncodedRegion:
    """A rectangle of the primary surface, encoded: what follows the image descriptor."""

    rect: Rect
    image_type: int
    payload: bytes
    lossy: bool = False
    # A solid colour (0x00RRGGBB) the whole rectangle has: sent as DRAW_FILL, no image.
    fill: int | None = None
    # The image's id in the client's pixmap cache (vgpu.spice.pixmaps): the client keeps
    # it (CACHE_ME), or, with image type FROM_CACHE and no payload, draws what it kept.
    cache_id: int | None = None
    # A palette bitmap's SpicePalette (unique, count, 0x00RRGGBB entries): draw_copy puts
    # it after the payload and points the bitmap's palette field (payload bytes
    # PALETTE_FIELD_AT..+4, left 0 by palette_bitmap_payload) at it.
    palette: bytes | None = None


@dataclass(frozen=True)
class StreamStart:
    """A video stream the client is to create; `report`: (frames, timeout in ms) for
    STREAM_ACTIVATE_REPORT, sent only to clients that have the capability."""

    stream_id: int
    rect: Rect
    mm_time: int
    codec_type: int
    report: tuple[int, int] | None = None


@dataclass(frozen=True)
class StreamFrame:
    """One encoded frame of a live stream; `ping`: (id, timestamp) of the PING after it."""

    stream_id: int
    mm_time: int
    data: bytes
    ping: tuple[int, int] | None = None


@dataclass(frozen=True)
class FrameUpdate:
    """What one frame changes on a shown surface, in no particular order: the channel
    sends it in the protocol's (streams ended, copies, draws, copies of what was drawn,
    stream started, stream frame)."""

    ended: tuple[int, ...] = ()
    draws: tuple[EncodedRegion, ...] = ()
    started: StreamStart | None = None
    video: StreamFrame | None = None
    # (destination, source top-left) the client copies from its own picture, before
    # the draws: content that moved
    copies: tuple[tuple[Rect, tuple[int, int]], ...] = ()
    # ids the client's pixmap cache drops before the draws (evicted to make room)
    invalidated: tuple[int, ...] = ()
    # (destination, source top-left) copied after the draws, reading what they wrote:
    # a tile the guest drew and repeated in the frame
    drawn_copies: tuple[tuple[Rect, tuple[int, int]], ...] = ()


class DisplayChannel(ChannelMachine):
    channel_type = const.SPICE_CHANNEL_DISPLAY
    client_messages = {
        const.SPICE_MSGC_DISPLAY_INIT: 14,
        const.SPICE_MSGC_DISPLAY_STREAM_REPORT: 32,
        const.SPICE_MSGC_DISPLAY_PREFERRED_COMPRESSION: 1,
        const.SPICE_MSGC_DISPLAY_GL_DRAW_DONE: 0,
        const.SPICE_MSGC_DISPLAY_PREFERRED_VIDEO_CODEC_TYPE: 1,
    }
    PRIMARY = 0

    def __init__(self, linked: Linked) -> None:
        super().__init__(linked)
        self.surface: tuple[int, int] | None = None
        self._image_id = 0
        self.order = DisplayOrder()
        self.pixmaps = PixmapCache()  # the client's, as far as this server filled it
        self._init_seen = False

    @property
    def state(self) -> DisplayState:
        return self.order.state

    def has_cap(self, bit: int) -> bool:
        return has_cap(self.linked.channel_caps, bit)

    def _handle(self, msg_type: int, r: Reader) -> list[ChannelEvent]:
        if msg_type == const.SPICE_MSGC_DISPLAY_INIT:
            r.u8()
            cache_size = r.i64()
            r.u8()
            glz_window = r.i32()
            if self._init_seen:
                # spice-server refuses it too: the cache it sized is in use
                raise MalformedMessage("a second display init")
            self._init_seen = True
            self.pixmaps.set_capacity(cache_size)
            # GLZ is never used, so the client's GLZ dictionary never fills.
            return [DisplayInit(cache_size, glz_window)]
        if msg_type == const.SPICE_MSGC_DISPLAY_PREFERRED_COMPRESSION:
            return [PreferredCompression(r.u8())]
        if msg_type == const.SPICE_MSGC_DISPLAY_PREFERRED_VIDEO_CODEC_TYPE:
            count = r.u8()
            types = tuple(r.u8() for _ in range(count))
            # Unknown numbers (a newer client's codecs) are left out, not refused.
            return [PreferredVideoCodecs(tuple(
                t for t in types if 0 < t < const.SPICE_VIDEO_CODEC_TYPE_ENUM_END))]
        if msg_type == const.SPICE_MSGC_DISPLAY_STREAM_REPORT:
            stream_id, unique_id, start, end, frames, drops = (r.u32() for _ in range(6))
            delay = r.i32()
            r.u32()  # audio delay: there is no audio channel
            return [StreamReport(stream_id, unique_id, start, end, frames, drops, delay)]
        # GL draw done needs no answer (GL scanout is never offered).
        return []

    def show_surface(self, width: int, height: int, has_alpha: bool,
                     picture: EncodedRegion, ended: tuple[int, ...] = ()) -> None:
        """A new primary (the first or a changed one) whole in one draw, then the mark:
        the streams `ended` go first, then the old primary."""
        for stream_id in ended:
            self.stream_destroy(stream_id)
        if self.surface is not None:
            self.surface_destroy()
        self.surface_create(width, height, has_alpha)
        self.draw(picture)
        self.mark()

    def show_update(self, update: FrameUpdate) -> None:
        """One frame's changes to the shown surface, in the protocol's order."""
        for stream_id in update.ended:
            self.stream_destroy(stream_id)
        if update.invalidated:
            self.inval_list(update.invalidated)
        for dst, source in update.copies:
            self.copy_bits(dst, source)
        for region in update.draws:
            self.draw(region)
        for dst, source in update.drawn_copies:
            self.copy_bits(dst, source, after_draws=True)
        start = update.started
        if start is not None:
            self.stream_create(start.stream_id, start.rect, start.mm_time, start.codec_type)
            if start.report is not None and self.has_cap(const.SPICE_DISPLAY_CAP_STREAM_REPORT):
                self.stream_activate_report(start.stream_id, start.stream_id, *start.report)
        video = update.video
        if video is not None:
            self.stream_data(video.stream_id, video.mm_time, video.data)
            if video.ping is not None:
                self.ping(*video.ping)
        self.order.send(Send.FRAME_END)

    def ping(self, ping_id: int, timestamp: int) -> None:
        """On the display channel a PING follows a stream frame, to time its arrival."""
        self.order.send(Send.PING)
        super().ping(ping_id, timestamp)

    def surface_create(self, width: int, height: int, has_alpha: bool = False) -> None:
        self.order.send(Send.SURFACE_CREATE)
        fmt = const.SPICE_SURFACE_FMT_32_ARGB if has_alpha else const.SPICE_SURFACE_FMT_32_xRGB
        self._send(
            const.SPICE_MSG_DISPLAY_SURFACE_CREATE,
            struct.pack("<5I", self.PRIMARY, width, height, fmt, const.SPICE_SURFACE_FLAGS_PRIMARY),
        )
        self.surface = (width, height)
        if self.has_cap(const.SPICE_DISPLAY_CAP_MONITORS_CONFIG):
            self._send(
                const.SPICE_MSG_DISPLAY_MONITORS_CONFIG,
                struct.pack("<HH", 1, 1)
                + struct.pack("<7I", 0, self.PRIMARY, width, height, 0, 0, 0),
            )

    def surface_destroy(self) -> None:
        self.order.send(Send.SURFACE_DESTROY)
        self._send(const.SPICE_MSG_DISPLAY_SURFACE_DESTROY, struct.pack("<I", self.PRIMARY))
        self.surface = None

    def mark(self) -> None:
        self.order.send(Send.MARK)
        self._send(const.SPICE_MSG_DISPLAY_MARK)

    def draw(self, region: EncodedRegion) -> None:
        """A region as DRAW_FILL where it is one colour, else as DRAW_COPY."""
        if region.fill is not None:
            self.draw_fill(region.rect, region.fill)
        else:
            self.draw_copy(region)

    def draw_fill(self, rect: Rect, colour: int) -> None:
        """A solid rectangle: brush, rop PUT and an empty mask (what spice-html5 draws)."""
        self.order.send(Send.DRAW_FILL)
        self._send(
            const.SPICE_MSG_DISPLAY_DRAW_FILL,
            struct.pack("<I", self.PRIMARY), pack_rect(rect), bytes([const.SPICE_CLIP_TYPE_NONE]),
            struct.pack("<BIH", const.SPICE_BRUSH_TYPE_SOLID, colour, const.SPICE_ROPD_OP_PUT),
            struct.pack("<BiiI", 0, 0, 0, 0),
        )

    def copy_bits(self, rect: Rect, source: tuple[int, int], after_draws: bool = False
                  ) -> None:
        """The client copies its own pixels from `source` (top-left) into `rect`
        (`after_draws`: reading what the frame's draws wrote)."""
        self.order.send(Send.COPY_DRAWN if after_draws else Send.COPY_BITS)
        self._send(
            const.SPICE_MSG_DISPLAY_COPY_BITS,
            struct.pack("<I", self.PRIMARY), pack_rect(rect), bytes([const.SPICE_CLIP_TYPE_NONE]),
            struct.pack("<ii", *source),
        )

    def inval_list(self, image_ids: tuple[int, ...]) -> None:
        """The client's pixmap cache drops these images (SpiceResourceList)."""
        self.order.send(Send.INVAL_LIST)
        self._send(
            const.SPICE_MSG_DISPLAY_INVAL_LIST,
            struct.pack("<H", len(image_ids)),
            b"".join(struct.pack("<BQ", const.SPICE_RES_TYPE_PIXMAP, i) for i in image_ids),
        )

    def draw_copy(self, region: EncodedRegion) -> None:
        self.order.send(Send.DRAW_COPY)
        left, top, right, bottom = region.rect
        width, height = right - left, bottom - top
        base = (
            struct.pack("<I", self.PRIMARY)
            + pack_rect(region.rect)
            + bytes([const.SPICE_CLIP_TYPE_NONE])
        )
        # src_bitmap (the image's offset in the body), then the source area,
        # rop, scale mode and an empty mask; the image follows them.
        rest = (
            pack_rect((0, 0, width, height))
            + struct.pack("<HB", const.SPICE_ROPD_OP_PUT, const.SPICE_IMAGE_SCALE_MODE_NEAREST)
            + struct.pack("<BiiI", 0, 0, 0, 0)
        )
        image_at = len(base) + 4 + len(rest)
        if region.cache_id is None:
            self._image_id += 1
            image_id, flags = self._image_id, 0
        else:  # (a FROM_CACHE image's flags are 0 too, as spice-server sends them)
            image_id = region.cache_id
            flags = (0 if region.image_type == const.SPICE_IMAGE_TYPE_FROM_CACHE
                     else const.SPICE_IMAGE_FLAGS_CACHE_ME)
        descriptor = struct.pack("<QBBII", image_id, region.image_type, flags, width, height)
        payload = region.payload
        if region.palette is not None:
            # SpiceBitmap's palette is a pointer: the palette's offset in the message body.
            palette_at = image_at + len(descriptor) + len(payload)
            payload = (payload[:PALETTE_FIELD_AT] + struct.pack("<I", palette_at)
                       + payload[PALETTE_FIELD_AT + 4:] + region.palette)
        self._send(
            const.SPICE_MSG_DISPLAY_DRAW_COPY,
            base, struct.pack("<I", image_at), rest, descriptor, payload,
        )

    def stream_create(
        self, stream_id: int, rect: Rect, mm_time: int,
        codec_type: int = const.SPICE_VIDEO_CODEC_TYPE_MJPEG,
    ) -> None:
        self.order.send(Send.STREAM_CREATE, stream_id)
        left, top, right, bottom = rect
        width, height = right - left, bottom - top
        body = struct.pack(
            "<IIBBQIIII",
            self.PRIMARY,
            stream_id,
            const.SPICE_STREAM_FLAGS_TOP_DOWN,
            codec_type,
            mm_time,
            width,
            height,
            width,
            height,
        )
        self._send(
            const.SPICE_MSG_DISPLAY_STREAM_CREATE,
            body + pack_rect(rect) + bytes([const.SPICE_CLIP_TYPE_NONE]),
        )

    def stream_activate_report(
        self, stream_id: int, unique_id: int, max_window_size: int, timeout_ms: int
    ) -> None:
        """Asks the client for STREAM_REPORTs every max_window_size frames or timeout_ms."""
        self.order.send(Send.STREAM_ACTIVATE_REPORT, stream_id)
        self._send(
            const.SPICE_MSG_DISPLAY_STREAM_ACTIVATE_REPORT,
            struct.pack("<IIII", stream_id, unique_id, max_window_size, timeout_ms),
        )

    def stream_data(self, stream_id: int, mm_time: int, data: bytes) -> None:
        """One encoded frame of the stream's codec (a JPEG, an H.264 access unit...)."""
        self.order.send(Send.STREAM_DATA, stream_id)
        self._send(
            const.SPICE_MSG_DISPLAY_STREAM_DATA,
            struct.pack("<III", stream_id, mm_time & 0xFFFFFFFF, len(data)),
            data,
        )

    def stream_destroy(self, stream_id: int) -> None:
        self.order.send(Send.STREAM_DESTROY, stream_id)
        self._send(const.SPICE_MSG_DISPLAY_STREAM_DESTROY, struct.pack("<I", stream_id))


def bitmap_payload(pixels_bytes: bytes, width: int, height: int, has_alpha: bool) -> bytes:
    """SPICE_IMAGE_TYPE_BITMAP after the descriptor: 32-bit top-down rows, no palette."""
    fmt = const.SPICE_BITMAP_FMT_RGBA if has_alpha else const.SPICE_BITMAP_FMT_32BIT
    header = struct.pack("<BBIIII", fmt, const.SPICE_BITMAP_FLAGS_TOP_DOWN, width, height,
                         width * 4, 0)
    return header + pixels_bytes


PALETTE_FIELD_AT = 14
"""Where a BITMAP payload's palette pointer is: after format, flags, x, y and stride."""


def palette_bitmap_payload(indices: bytes, fmt: int, stride: int, width: int, height: int
                           ) -> bytes:
    """SPICE_IMAGE_TYPE_BITMAP after the descriptor for a palette format (1BIT_BE,
    4BIT_BE, 8BIT): top-down rows of `stride` bytes of colour indices. The palette
    pointer is 0 here; draw_copy fills it in (EncodedRegion.palette)."""
    return struct.pack("<BBIIII", fmt, const.SPICE_BITMAP_FLAGS_TOP_DOWN, width, height,
                       stride, 0) + indices


def pack_palette(colours: list[int]) -> bytes:
    """A SpicePalette: unique 0 (the client caches no palette without PAL_CACHE_ME),
    the count, then each colour as 0x00RRGGBB."""
    return struct.pack(f"<QH{len(colours)}I", 0, len(colours), *colours)


class CursorChannel(ChannelMachine):
    channel_type = const.SPICE_CHANNEL_CURSOR

    def __init__(self, linked: Linked) -> None:
        super().__init__(linked)
        self._cached: OrderedDict[int, None] = OrderedDict()

    def _handle(self, msg_type: int, r: Reader) -> list[ChannelEvent]:
        raise AssertionError("cursor channel has no client messages")

    def _cursor(self, shape: CursorShape | None) -> bytes:
        if shape is None:
            return struct.pack("<H", const.SPICE_CURSOR_FLAGS_NONE)
        header = struct.pack(
            "<QBHHHH", shape.unique, shape.type, shape.width, shape.height, shape.hot_x, shape.hot_y
        )
        if shape.unique and shape.unique in self._cached:
            self._cached.move_to_end(shape.unique)
            return struct.pack("<H", const.SPICE_CURSOR_FLAGS_FROM_CACHE) + header
        flags = 0
        if shape.unique:
            flags = const.SPICE_CURSOR_FLAGS_CACHE_ME
            self._cached[shape.unique] = None
            while len(self._cached) > CURSOR_CACHE_ENTRIES:
                evicted, _ = self._cached.popitem(last=False)
                self._send(const.SPICE_MSG_CURSOR_INVAL_ONE, struct.pack("<Q", evicted))
        return struct.pack("<H", flags) + header + shape.data

    def init(self, state: CursorState) -> None:
        cursor = self._cursor(state.shape)
        self._send(
            const.SPICE_MSG_CURSOR_INIT,
            struct.pack("<hhHHB", _i16(state.x), _i16(state.y), 0, 0, int(state.visible)) + cursor,
        )

    def update(self, update: CursorUpdate) -> None:
        if update.kind == "set":
            cursor = self._cursor(update.shape)
            self._send(
                const.SPICE_MSG_CURSOR_SET,
                struct.pack("<hhB", _i16(update.x), _i16(update.y), int(update.visible)) + cursor,
            )
        elif update.kind == "move":
            self._send(
                const.SPICE_MSG_CURSOR_MOVE, struct.pack("<hh", _i16(update.x), _i16(update.y))
            )
        elif update.kind == "hide":
            self._send(const.SPICE_MSG_CURSOR_HIDE)
        elif update.kind == "trail":
            self._send(
                const.SPICE_MSG_CURSOR_TRAIL,
                struct.pack("<HH", update.trail_length & 0xFFFF, update.trail_frequency & 0xFFFF),
            )
        else:
            raise ValueError(f"unknown cursor update {update.kind!r}")


def _i16(value: int) -> int:
    return max(-32768, min(32767, value))


class InputsChannel(ChannelMachine):
    channel_type = const.SPICE_CHANNEL_INPUTS
    client_messages = {
        const.SPICE_MSGC_INPUTS_KEY_DOWN: 4,
        const.SPICE_MSGC_INPUTS_KEY_UP: 4,
        const.SPICE_MSGC_INPUTS_KEY_MODIFIERS: 2,
        const.SPICE_MSGC_INPUTS_KEY_SCANCODE: 0,
        const.SPICE_MSGC_INPUTS_MOUSE_MOTION: 10,
        const.SPICE_MSGC_INPUTS_MOUSE_POSITION: 11,
        const.SPICE_MSGC_INPUTS_MOUSE_PRESS: 3,
        const.SPICE_MSGC_INPUTS_MOUSE_RELEASE: 3,
    }

    def __init__(self, linked: Linked) -> None:
        super().__init__(linked)
        self._motions = 0

    def start(self, modifiers: int = 0) -> None:
        self._send(const.SPICE_MSG_INPUTS_INIT, struct.pack("<H", modifiers))

    def _motion_ack(self) -> None:
        """Clients stop sending motion after a bunch without an ack."""
        self._motions += 1
        if self._motions >= const.SPICE_INPUT_MOTION_ACK_BUNCH:
            self._motions = 0
            self._send(const.SPICE_MSG_INPUTS_MOUSE_MOTION_ACK)

    def _handle(self, msg_type: int, r: Reader) -> list[ChannelEvent]:
        if msg_type in (const.SPICE_MSGC_INPUTS_KEY_DOWN, const.SPICE_MSGC_INPUTS_KEY_UP):
            kind = "key_down" if msg_type == const.SPICE_MSGC_INPUTS_KEY_DOWN else "key_up"
            return [InputReceived(InputEvent(kind, code=r.u32()))]
        if msg_type == const.SPICE_MSGC_INPUTS_KEY_MODIFIERS:
            flags = r.u16() & const.SPICE_KEYBOARD_MODIFIER_FLAGS_MASK
            return [InputReceived(InputEvent("modifiers", code=flags))]
        if msg_type == const.SPICE_MSGC_INPUTS_KEY_SCANCODE:
            return [InputReceived(e) for e in scancodes_to_events(r.rest())]
        if msg_type == const.SPICE_MSGC_INPUTS_MOUSE_MOTION:
            dx, dy = r.i32(), r.i32()
            buttons = r.u16() & const.SPICE_MOUSE_BUTTON_MASK_MASK
            self._motion_ack()
            return [InputReceived(InputEvent("mouse_motion", x=dx, y=dy, buttons=buttons))]
        if msg_type == const.SPICE_MSGC_INPUTS_MOUSE_POSITION:
            x, y = r.u32(), r.u32()
            buttons = r.u16() & const.SPICE_MOUSE_BUTTON_MASK_MASK
            display = r.u8()
            self._motion_ack()
            return [
                InputReceived(
                    InputEvent("mouse_position", x=x, y=y, buttons=buttons, display=display)
                )
            ]
        # Press or release.
        button = r.u8()
        buttons = r.u16() & const.SPICE_MOUSE_BUTTON_MASK_MASK
        if not 0 < button < const.SPICE_MOUSE_BUTTON_ENUM_END:
            raise MalformedMessage(f"mouse button {button}")
        kind = "mouse_press" if msg_type == const.SPICE_MSGC_INPUTS_MOUSE_PRESS else "mouse_release"
        return [InputReceived(InputEvent(kind, code=button, buttons=buttons))]


def scancodes_to_events(data: bytes) -> list[InputEvent]:
    """KEY_SCANCODE's PC AT byte string to key events coded as KEY_DOWN/KEY_UP carry them.

    An 0xE0 prefix makes an extended key, sent as 0xE0 | code << 8 (spice-gtk's
    encoding); bit 7 of the code byte marks a release.
    """
    events: list[InputEvent] = []
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0xE0:
            if i + 1 >= len(data):
                raise MalformedMessage("scancode prefix without a code")
            code = data[i + 1]
            value = 0xE0 | code << 8
            i += 2
        else:
            code = byte
            value = byte
            i += 1
        events.append(InputEvent("key_up" if code & 0x80 else "key_down", code=value))
    return events
