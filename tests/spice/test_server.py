"""The asyncio server over real sockets, driven by a minimal Python client."""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spice_testkit import (
    VALID,
    RawClient,
    ServerThread,
    SyntheticSource,
    link_request,
    mini,
    mutate,
    mutation,
    pattern,
)

from vgpu.display import InputEvent, Placement
from vgpu.spice import constants as const
from vgpu.spice.imaging import Compression
from vgpu.spice.pixmaps import cache_id
from vgpu.spice.server import ServerOptions


@pytest.fixture
def source():
    src = SyntheticSource()
    src.publish(pattern(160, 120))
    return src


@pytest.fixture
def server(source):
    # Streams off: these tests follow DRAW_COPY messages (streams have their own tests).
    srv = ServerThread(source, ServerOptions(compression=Compression(streaming="off")))
    yield srv
    srv.stop()


def open_session(port: int, password: str = "") -> tuple[RawClient, int]:
    main = RawClient(port, const.SPICE_CHANNEL_MAIN, password=password)
    assert main.link_result == const.SPICE_LINK_ERR_OK
    init = main.recv_until(const.SPICE_MSG_MAIN_INIT)
    return main, struct.unpack_from("<I", init)[0]


def display_of(port: int, session: int, ack: bool = True) -> RawClient:
    display = RawClient(port, const.SPICE_CHANNEL_DISPLAY, session)
    assert display.link_result == const.SPICE_LINK_ERR_OK
    generation, _window = struct.unpack("<II", display.recv_until(const.SPICE_MSG_SET_ACK))
    if ack:
        display.send(const.SPICE_MSGC_ACK_SYNC, struct.pack("<I", generation))
    return display


def draws_until_mark(display: RawClient) -> list[tuple[int, bytes]]:
    seen = []
    while True:
        msg = display.recv()
        seen.append(msg)
        if msg[0] == const.SPICE_MSG_DISPLAY_MARK:
            return seen


def draw_rect(body: bytes) -> tuple[int, int, int, int]:
    top, left, bottom, right = struct.unpack_from("<iiii", body, 4)
    return left, top, right, bottom


def test_channels_list_and_other_channels_join_the_session(server):
    main, session = open_session(server.port)
    main.send(const.SPICE_MSGC_MAIN_ATTACH_CHANNELS)
    body = main.recv_until(const.SPICE_MSG_MAIN_CHANNELS_LIST)
    (count,) = struct.unpack_from("<I", body)
    kinds = {body[4 + 2 * i] for i in range(count)}
    assert kinds == {
        const.SPICE_CHANNEL_DISPLAY,
        const.SPICE_CHANNEL_INPUTS,
        const.SPICE_CHANNEL_CURSOR,
    }
    bad = RawClient(server.port, const.SPICE_CHANNEL_DISPLAY, session ^ 0xFFFF)
    assert bad.link_result == const.SPICE_LINK_ERR_BAD_CONNECTION_ID
    absent = RawClient(server.port, 5, session)  # playback: not served
    assert absent.link_result == const.SPICE_LINK_ERR_CHANNEL_NOT_AVAILABLE
    main.close()


def test_channels_per_session_are_bounded(server):
    from vgpu.spice.server import MAX_CHANNELS_PER_SESSION

    main, session = open_session(server.port)
    held: list[RawClient] = []
    while len(held) < MAX_CHANNELS_PER_SESSION:
        held.append(RawClient(server.port, const.SPICE_CHANNEL_INPUTS, session))
        assert held[-1].link_result == const.SPICE_LINK_ERR_OK
        held[-1].recv()  # INPUTS_INIT: the server has registered it
    extra = RawClient(server.port, const.SPICE_CHANNEL_INPUTS, session)
    assert extra.link_result == const.SPICE_LINK_ERR_ERROR
    for client in [*held, extra, main]:
        client.close()


def test_client_that_never_reads_its_answers_is_not_buffered_for(server):
    from vgpu.spice.server import WRITE_BUFFER_HIGH

    main, _session = open_session(server.port)
    main.sock.settimeout(1)
    requests = mini(const.SPICE_MSGC_MAIN_ATTACH_CHANNELS) * 100_000  # each gets a CHANNELS_LIST
    sent = 0
    with pytest.raises(TimeoutError):  # the server stops reading: sending blocks
        while sent < 8 * WRITE_BUFFER_HIGH:
            sent += main.sock.send(requests)
    main.close()


def test_main_pings_once_and_takes_the_pong(server):
    main, _session = open_session(server.port)
    ping_id, timestamp = struct.unpack("<IQ", main.recv_until(const.SPICE_MSG_PING))
    main.send(const.SPICE_MSGC_PONG, struct.pack("<IQ", ping_id, timestamp))
    main.send(const.SPICE_MSGC_MAIN_ATTACH_CHANNELS)
    assert main.recv_until(const.SPICE_MSG_MAIN_CHANNELS_LIST)
    main.close()


def test_first_picture_then_only_damage_then_idle_sends_nothing(server, source):
    main, session = open_session(server.port)
    display = display_of(server.port, session)
    first = draws_until_mark(display)
    kinds = [t for t, _ in first]
    assert kinds[0] == const.SPICE_MSG_DISPLAY_SURFACE_CREATE
    draws = [b for t, b in first if t == const.SPICE_MSG_DISPLAY_DRAW_COPY]
    assert [draw_rect(b) for b in draws] == [(0, 0, 160, 120)]
    picture = pattern(160, 120, seed=1)
    source.publish(picture, damage=((10, 10, 20, 30),))
    msg_type, body = display.recv()
    assert msg_type == const.SPICE_MSG_DISPLAY_DRAW_COPY and draw_rect(body) == (10, 10, 20, 30)
    display.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        display.recv()  # idle: nothing more
    main.close()
    display.close()


def messages_for_a_while(display: RawClient, quiet: float = 0.4) -> list[tuple[int, bytes]]:
    """What the server sends until it has been quiet for `quiet` seconds."""
    display.sock.settimeout(quiet)
    seen = []
    with contextlib.suppress(socket.timeout):
        while True:
            seen.append(display.recv())
    display.sock.settimeout(None)
    return seen


def images_of(messages: list[tuple[int, bytes]]) -> list[tuple[object, ...]]:
    """("inval", ids) for each INVAL_LIST and (rect, image type, flags, id) for each
    DRAW_COPY, in order."""
    out: list[tuple[object, ...]] = []
    for msg_type, body in messages:
        if msg_type == const.SPICE_MSG_DISPLAY_INVAL_LIST:
            (count,) = struct.unpack_from("<H", body)
            out.append(("inval", [struct.unpack_from("<BQ", body, 2 + 9 * i)[1]
                                  for i in range(count)]))
        elif msg_type == const.SPICE_MSG_DISPLAY_DRAW_COPY:
            (at,) = struct.unpack_from("<I", body, 21)
            image_id, image_type, flags = struct.unpack_from("<QBB", body, at)
            out.append((draw_rect(body), image_type, flags, image_id))
    return out


PHOTO = 48, 40  # width, height


def with_photo(seed: int, at: tuple[int, int]) -> tuple[np.ndarray, tuple[Placement, ...]]:
    """The desktop with a photo at `at`, and the photo's placement (its key, the seed)."""
    picture = pattern(160, 120).copy()
    x, y = at
    picture[y:y + PHOTO[1], x:x + PHOTO[0]] = pattern(*PHOTO, seed=seed + 1)
    return picture, (Placement(seed << 40, (x, y, x + PHOTO[0], y + PHOTO[1])),)


def wait_for_pixmap_cache(server, timeout: float = 10) -> None:
    """Until the server has read the client's display init: it comes on the socket while
    the first frame goes out, so under load the first photo could beat it."""
    senders = server.server.waker._senders
    deadline = time.monotonic() + timeout
    while not (senders and senders[0]._machine.pixmaps.capacity):
        assert time.monotonic() < deadline, "the display init was never applied"
        time.sleep(0.01)


def test_pixmap_cache_as_the_display_init_sized_it(server, source):
    """Room for one photo: each new one evicts the last (named in INVAL_LIST before the
    draws), one the client has comes FROM_CACHE, and a sliver of damage over a photo the
    client lacks is sent as the sliver."""
    main, session = open_session(server.port)
    display = display_of(server.port, session)
    display.send(const.SPICE_MSGC_DISPLAY_INIT,
                 struct.pack("<BqBi", 1, PHOTO[0] * PHOTO[1] * 3 // 2, 0, 0))
    draws_until_mark(display)
    wait_for_pixmap_cache(server)
    cache_me, from_cache = const.SPICE_IMAGE_FLAGS_CACHE_ME, const.SPICE_IMAGE_TYPE_FROM_CACHE
    whole = ((0, 0, 160, 120),)
    shown = []
    for seed, at in ((1, (10, 10)), (2, (60, 50)), (2, (100, 70))):
        picture, placed = with_photo(seed, at)
        source.publish(picture, damage=whole, placements=placed)
        shown.append(images_of(messages_for_a_while(display)))
    rect1, rect2 = (10, 10, 58, 50), (60, 50, 108, 90)
    id1, id2 = cache_id(1 << 40), cache_id(2 << 40)
    assert (rect1, const.SPICE_IMAGE_TYPE_QUIC, cache_me, id1) in shown[0]
    assert shown[1][0] == ("inval", [id1])
    assert (rect2, const.SPICE_IMAGE_TYPE_QUIC, cache_me, id2) in shown[1]
    assert ((100, 70, 148, 110), from_cache, 0, id2) in shown[2]
    picture, placed = with_photo(1, (10, 10))
    source.publish(picture, damage=((10, 10, 14, 14),), placements=placed)
    assert [i[:3] for i in images_of(messages_for_a_while(display))] == [
        ((10, 10, 14, 14), const.SPICE_IMAGE_TYPE_LZ_RGB, 0)]
    main.close()
    display.close()


def test_no_display_init_no_pixmap_cache(server, source):
    main, session = open_session(server.port)
    display = display_of(server.port, session)
    draws_until_mark(display)
    picture, placed = with_photo(1, (10, 10))
    source.publish(picture, damage=((0, 0, 160, 120),), placements=placed)
    assert all(flags == 0 for _rect, _type, flags, _id in images_of(
        messages_for_a_while(display)))
    main.close()
    display.close()


def test_late_joiner_gets_the_whole_screen(server, source):
    source.publish(pattern(160, 120, seed=2), damage=((0, 0, 5, 5),))
    main, session = open_session(server.port)
    display = display_of(server.port, session)
    draws = [b for t, b in draws_until_mark(display) if t == const.SPICE_MSG_DISPLAY_DRAW_COPY]
    assert [draw_rect(b) for b in draws] == [(0, 0, 160, 120)]
    main.close()


def test_resize_destroys_and_recreates_the_primary(server, source):
    main, session = open_session(server.port)
    display = display_of(server.port, session)
    draws_until_mark(display)
    source.publish(pattern(200, 100))
    seen = draws_until_mark(display)
    assert [t for t, _ in seen[:2]] == [
        const.SPICE_MSG_DISPLAY_SURFACE_DESTROY,
        const.SPICE_MSG_DISPLAY_SURFACE_CREATE,
    ]
    assert struct.unpack_from("<3I", seen[1][1]) == (0, 200, 100)
    main.close()


def test_slow_client_is_bounded_and_does_not_hold_up_others(server, source):
    main, session = open_session(server.port)
    slow = display_of(server.port, session, ack=False)  # never acks, never reads
    main2, session2 = open_session(server.port)
    fast = display_of(server.port, session2)
    draws_until_mark(fast)
    received = 0
    for i in range(60):
        # each frame unlike the last (one equal to what the client shows sends nothing)
        source.publish(pattern(160, 120, seed=i + 1))
        while True:
            msg_type, _ = fast.recv()
            if msg_type == const.SPICE_MSG_DISPLAY_DRAW_COPY:
                received += 1
                break
        fast.send(const.SPICE_MSGC_ACK)  # generous acks keep the fast client's window open
    stats = sorted(server.server.display_stats, key=lambda s: s.frames)
    # The slow one stopped at its ack window: 2 x 20 messages, far fewer than 60 frames.
    assert stats[0].frames <= 40 < stats[1].frames
    assert received == 60
    for client in (main, slow, main2, fast):
        client.close()


@pytest.mark.parametrize(
    ("caps", "streams"),
    [
        ((), True),  # no codec list: MJPEG is implied
        ((const.SPICE_DISPLAY_CAP_MULTI_CODEC, const.SPICE_DISPLAY_CAP_CODEC_MJPEG), True),
        ((const.SPICE_DISPLAY_CAP_MULTI_CODEC,), False),  # lists codecs, MJPEG not among them
    ],
)
def test_streams_only_for_clients_that_decode_mjpeg(source, caps, streams):
    srv = ServerThread(source, ServerOptions(compression=Compression(streaming="all")))
    try:
        main, session = open_session(srv.port)
        display = RawClient(srv.port, const.SPICE_CHANNEL_DISPLAY, session, channel_caps=caps)
        generation, _ = struct.unpack("<II", display.recv_until(const.SPICE_MSG_SET_ACK))
        display.send(const.SPICE_MSGC_ACK_SYNC, struct.pack("<I", generation))
        draws_until_mark(display)
        kinds = set()
        for i in range(6):
            # video-like: every pixel changes (the client's picture trims damage)
            source.publish(np.random.default_rng(i).integers(0, 256, (120, 160, 4), np.uint8))
            kind, _ = display.recv()
            while kind not in (
                const.SPICE_MSG_DISPLAY_DRAW_COPY,
                const.SPICE_MSG_DISPLAY_STREAM_DATA,
            ):
                kinds.add(kind)
                kind, _ = display.recv()
            kinds.add(kind)
            display.send(const.SPICE_MSGC_ACK)
        assert (const.SPICE_MSG_DISPLAY_STREAM_CREATE in kinds) == streams
        assert (const.SPICE_MSG_DISPLAY_STREAM_DATA in kinds) == streams
        main.close()
    finally:
        srv.stop()


def test_inputs_reach_the_source(server, source):
    main, session = open_session(server.port)
    inputs = RawClient(server.port, const.SPICE_CHANNEL_INPUTS, session)
    assert inputs.recv() == (const.SPICE_MSG_INPUTS_INIT, b"\0\0")
    inputs.send(const.SPICE_MSGC_INPUTS_KEY_DOWN, struct.pack("<I", 0x1C))
    for i in range(4):
        inputs.send(const.SPICE_MSGC_INPUTS_MOUSE_POSITION, struct.pack("<IIHB", i, i, 0, 0))
    assert inputs.recv() == (const.SPICE_MSG_INPUTS_MOUSE_MOTION_ACK, b"")
    assert source.inputs[0] == InputEvent("key_down", code=0x1C)
    assert source.inputs[-1] == InputEvent("mouse_position", x=3, y=3)
    main.close()


def test_cursor_channel_starts_with_init(server, source):
    main, session = open_session(server.port)
    cursor = RawClient(server.port, const.SPICE_CHANNEL_CURSOR, session)
    assert cursor.recv()[0] == const.SPICE_MSG_SET_ACK
    msg_type, body = cursor.recv()
    assert msg_type == const.SPICE_MSG_CURSOR_INIT
    assert struct.unpack_from("<H", body, 9)[0] == const.SPICE_CURSOR_FLAGS_NONE
    main.close()


def test_closing_main_closes_the_session_channels(server):
    main, session = open_session(server.port)
    display = display_of(server.port, session)
    draws_until_mark(display)
    main.close()
    display.sock.settimeout(5)
    with pytest.raises(EOFError):
        while True:
            display.recv()


def test_websocket_on_the_same_port(server):
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["binary"]) as ws:
        assert ws.subprotocol == "binary"
        ws.send(link_request(const.SPICE_CHANNEL_MAIN))
        reply = b""
        while len(reply) < 16 + 178:
            reply += ws.recv(timeout=5)
        assert reply[:4] == b"REDQ" and struct.unpack_from("<I", reply, 16)[0] == 0


def test_oversized_websocket_message_ends_the_connection_with_a_reason(server, caplog):
    import base64
    import logging

    caplog.set_level(logging.INFO, logger="vgpu.spice.server")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(bytes(16)).decode()
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: binary\r\n\r\n".encode()
    )
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 101")
    # A masked binary frame that announces 1 GiB and then sends nothing more.
    sock.sendall(bytes([0x82, 0x80 | 127]) + struct.pack(">Q", 1 << 30) + bytes(4))
    closing = b""
    while chunk := sock.recv(4096):  # the server closes; a hang times out and fails
        closing += chunk
    assert closing[:1] == b"\x88"  # its close frame came first
    sock.close()
    deadline = time.monotonic() + 5
    while not any("exceeds limit" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.05)


def test_wrong_password_gets_permission_denied_and_nothing_else(source):
    srv = ServerThread(source, ServerOptions(password="right"))
    try:
        wrong = RawClient(srv.port, const.SPICE_CHANNEL_MAIN, password="wrong")
        assert wrong.link_result == const.SPICE_LINK_ERR_PERMISSION_DENIED
        wrong.sock.settimeout(5)
        assert wrong.sock.recv(100) == b""  # closed, nothing served
        main, _session = open_session(srv.port, password="right")
        main.close()
    finally:
        srv.stop()


def test_websocket_over_tls(source, tmp_path):
    import ssl

    from spice_testkit import make_x509_dir
    from websockets.sync.client import connect

    from vgpu.serve import tls_context

    x509 = make_x509_dir(tmp_path)
    srv = ServerThread(source, tls=tls_context(x509))
    try:
        client_tls = ssl.create_default_context(cafile=str(x509 / "ca-cert.pem"))
        url = f"wss://127.0.0.1:{srv.tls_port}/"
        with connect(url, subprotocols=["binary"], ssl=client_tls) as ws:
            ws.send(link_request(const.SPICE_CHANNEL_MAIN))
            reply = b""
            while len(reply) < 16 + 178:
                reply += ws.recv(timeout=5)
            assert reply[:4] == b"REDQ" and struct.unpack_from("<I", reply, 16)[0] == 0
    finally:
        srv.stop()


def test_plain_http_get_outside_the_page_is_refused_and_closed(server):
    """A plain GET (no WebSocket upgrade) gets spice-html5's page (tests/spice/
    test_webpage.py); anything outside its folder is refused and the connection closed."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 4")
    sock.close()


def test_garbage_instead_of_spice_is_dropped(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"HELO there\r\n")
    assert sock.recv(100) == b""
    sock.close()


# -- network fuzz: a hostile client on each channel; another client keeps being served

FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
TYPES = st.sampled_from([1, 2, 3, 4, 6, 101, 102, 103, 104, 105, 107, 111, 112, 113, 114, 999])
KIND_NAMES = {
    const.SPICE_CHANNEL_MAIN: "main",
    const.SPICE_CHANNEL_DISPLAY: "display",
    const.SPICE_CHANNEL_INPUTS: "inputs",
    const.SPICE_CHANNEL_CURSOR: "cursor",
}
random_messages = st.lists(
    st.one_of(
        st.tuples(TYPES, st.binary(max_size=40)).map(lambda m: mini(*m)), st.binary(max_size=64)
    ),
    min_size=1,
    max_size=8,
)


@pytest.fixture(scope="module")
def fuzz_setup():
    source = SyntheticSource()
    source.publish(pattern(64, 48))
    srv = ServerThread(source, ServerOptions(compression=Compression(streaming="off")))
    main, session = open_session(srv.port)
    watcher = display_of(srv.port, session)
    draws_until_mark(watcher)
    yield source, srv, session, watcher
    main.close()
    srv.stop()


FRAME_VALUES = itertools.count(1)


@pytest.mark.parametrize(
    "kind",
    [
        const.SPICE_CHANNEL_MAIN,
        const.SPICE_CHANNEL_DISPLAY,
        const.SPICE_CHANNEL_INPUTS,
        const.SPICE_CHANNEL_CURSOR,
    ],
)
@FUZZ
@given(data=st.data())
def test_hostile_client_closes_only_its_connection(fuzz_setup, kind, data):
    source, srv, session, watcher = fuzz_setup
    mutated = st.lists(mutation, min_size=1, max_size=6).map(
        lambda edits: [mutate(VALID[KIND_NAMES[kind]], edits)]
    )
    messages = data.draw(st.one_of(random_messages, mutated))
    victim = RawClient(srv.port, kind, session if kind != const.SPICE_CHANNEL_MAIN else 0)
    assert victim.link_result == const.SPICE_LINK_ERR_OK
    victim.sock.settimeout(5)
    try:
        for message in messages:
            victim.sock.sendall(message)
        # Whatever the server made of it, it ends this connection once we stop talking.
        victim.sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server closed first: fine
    deadline = time.monotonic() + 5
    try:
        while victim.sock.recv(65536):  # a hang raises socket.timeout and fails the test
            assert time.monotonic() < deadline
    except ConnectionResetError:
        pass
    victim.close()
    # The watcher still gets the next frame (each example's unlike the last: a frame the
    # same as the client's picture sends nothing).
    source.publish(np.full((48, 64, 4), next(FRAME_VALUES) % 256, np.uint8), damage=((1, 2, 3, 4),))
    while True:
        msg_type, body = watcher.recv()
        if msg_type == const.SPICE_MSG_DISPLAY_DRAW_COPY:
            break
    watcher.send(const.SPICE_MSGC_ACK)
    assert draw_rect(body) == (1, 2, 3, 4)


def test_backlog_of_a_socket_closed_under_the_sender_is_what_the_transport_holds():
    """A client that leaves while its sender measures the backlog: the socket's fileno is
    -1 then, and the measure must not raise (it ended the sender with an error)."""
    from types import SimpleNamespace

    from vgpu.spice.server import _backlog

    closed = socket.socket()
    closed.close()
    writer = SimpleNamespace(transport=SimpleNamespace(get_write_buffer_size=lambda: 7),
                             get_extra_info=lambda name: closed)
    assert _backlog(writer) == 7
