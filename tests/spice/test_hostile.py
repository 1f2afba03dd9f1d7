"""Hostile peers at the door: tickets on every channel, bytes before authentication,
broken WebSocket handshakes, and the goodbye the server owes every linked channel."""

from __future__ import annotations

import base64
import logging
import socket
import struct
import threading
import time

import pytest
from spice_testkit import RawClient, ServerThread, SyntheticSource, link_request, pattern

from vgpu.spice import constants as const
from vgpu.spice.link import TICKET_BYTES
from vgpu.spice.server import MAX_PREAUTH_BYTES, ServerOptions
from vgpu.spice.webpage import MAX_REQUEST_HEAD

PASSWORD = "right"
CHANNELS = [const.SPICE_CHANNEL_MAIN, const.SPICE_CHANNEL_DISPLAY, const.SPICE_CHANNEL_INPUTS,
            const.SPICE_CHANNEL_CURSOR]


@pytest.fixture
def guarded():
    source = SyntheticSource()
    source.publish(pattern(64, 48))
    srv = ServerThread(source, ServerOptions(password=PASSWORD))
    yield srv
    srv.stop()


def session_of(port: int) -> tuple[RawClient, int]:
    main = RawClient(port, const.SPICE_CHANNEL_MAIN, password=PASSWORD)
    assert main.link_result == const.SPICE_LINK_ERR_OK
    return main, struct.unpack_from("<I", main.recv_until(const.SPICE_MSG_MAIN_INIT))[0]


def assert_refused_and_closed(client: RawClient, error: int) -> None:
    assert client.link_result == error
    client.sock.settimeout(5)
    assert client.sock.recv(100) == b""  # nothing past the link result
    client.close()


BAD_TICKETS = {
    "wrong": dict(password="wrong"),
    "empty password": dict(password=""),
    "zero bytes": dict(ticket=bytes(TICKET_BYTES)),
}


@pytest.mark.parametrize("bad", BAD_TICKETS, ids=list(BAD_TICKETS))
@pytest.mark.parametrize("channel", CHANNELS)
def test_a_bad_ticket_never_gets_past_the_link_on_any_channel(guarded, channel, bad):
    main, session = session_of(guarded.port)
    # With the session's own connection id, and with none: the ticket is checked first.
    for connection_id in (session, 0):
        client = RawClient(guarded.port, channel, connection_id, **BAD_TICKETS[bad])
        assert_refused_and_closed(client, const.SPICE_LINK_ERR_PERMISSION_DENIED)
    assert guarded.call(_others(guarded, session)) == 0
    main.close()


async def _others(srv: ServerThread, session: int) -> int:
    return len(srv.server._sessions[session].others)


@pytest.mark.parametrize("channel", CHANNELS[1:])
def test_a_good_ticket_with_a_wrong_connection_id_is_refused(guarded, channel):
    main, session = session_of(guarded.port)
    for wrong in (session ^ 1, 0, 0xFFFFFFFF):
        client = RawClient(guarded.port, channel, wrong, password=PASSWORD)
        assert_refused_and_closed(client, const.SPICE_LINK_ERR_BAD_CONNECTION_ID)
    good = RawClient(guarded.port, channel, session, password=PASSWORD)
    assert good.link_result == const.SPICE_LINK_ERR_OK
    good.close()
    main.close()


def upgrade_request(extra_headers: str = "", protocol: bool = True) -> bytes:
    key = base64.b64encode(bytes(16)).decode()
    return (
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        + ("Sec-WebSocket-Protocol: binary\r\n" if protocol else "")
        + extra_headers + "\r\n"
    ).encode()


def read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(65536):  # the server closes; a hang times out and fails
        data += chunk
    return data


def server_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("vgpu.spice", "websockets"))]


def wait_records(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord]:
    deadline = time.monotonic() + 5
    while len(server_records(caplog)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # and no more come
    return server_records(caplog)


WEBSOCKET_GARBAGE = {
    # the case: websockets has failed the handshake before it is answered
    "upgrade then garbage": upgrade_request(protocol=False) + b"\x00garbage" * 10,
    "upgrade with protocol then garbage": upgrade_request() + b"\x00\x01\x02garbage\r\n\r\n",
    "broken request line": b"GET / HTTP/1.1\r\n\x00\x01garbage\r\n\r\n",
    "request line too long": b"GET /" + b"x" * 20000 + b" HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("data", WEBSOCKET_GARBAGE.values(), ids=list(WEBSOCKET_GARBAGE))
def test_broken_websocket_handshake_is_one_log_line(guarded, caplog, data):
    caplog.set_level(logging.INFO)
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
        sock.sendall(data)
        read_until_closed(sock)
        sock.close()
    records = wait_records(caplog, 3)
    assert len(records) == 3, [r.getMessage() for r in records]
    assert all(r.exc_info is None and r.levelno <= logging.INFO for r in records), [
        r.getMessage() for r in records
    ]
    main, _ = session_of(guarded.port)  # and the server serves on
    main.close()


def test_websocket_handshake_past_the_preauth_bound_is_dropped(guarded, caplog):
    caplog.set_level(logging.INFO, logger="vgpu.spice.server")
    header_line = 2000  # under websockets' own line limit, so only our bound applies
    count = 2 * MAX_PREAUTH_BYTES // header_line
    headers = "".join(f"X-Pad-{i}: {'p' * header_line}\r\n" for i in range(count))
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
    with pytest.raises(OSError):  # the server stops reading and closes mid-request
        sock.sendall(upgrade_request(headers))
        read_until_closed(sock)
        raise ConnectionResetError
    sock.close()
    records = wait_records(caplog, 1)
    # the request head's own bound (webpage.MAX_REQUEST_HEAD, read before the server knows a
    # page from an upgrade) is below the pre-authentication bound, so it is the one that acts
    assert MAX_REQUEST_HEAD < MAX_PREAUTH_BYTES
    assert [r for r in records if f"over {MAX_REQUEST_HEAD} bytes" in r.getMessage()], [
        r.getMessage() for r in records
    ]


def test_websocket_message_before_the_link_is_bounded_by_the_preauth_bound(guarded, caplog):
    caplog.set_level(logging.INFO, logger="vgpu.spice.server")
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
    sock.sendall(upgrade_request())
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 101")
    # A masked binary frame announcing one byte more than the bound (and far under the
    # limit that holds once linked).
    size = MAX_PREAUTH_BYTES + 1
    sock.sendall(bytes([0x82, 0x80 | 127]) + struct.pack(">Q", size) + bytes(4))
    assert read_until_closed(sock)[:1] == b"\x88"  # a close frame, then the end
    sock.close()
    records = wait_records(caplog, 1)
    assert any("exceeds limit" in r.getMessage() for r in records)


def test_plain_link_past_the_preauth_bound_is_dropped(guarded, caplog):
    caplog.set_level(logging.INFO, logger="vgpu.spice.server")
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
    with pytest.raises(OSError):
        # a link, then a ticket with far more than any client sends before the result
        sock.sendall(link_request(const.SPICE_CHANNEL_MAIN) + bytes(4 * MAX_PREAUTH_BYTES))
        read_until_closed(sock)
        raise ConnectionResetError
    sock.close()
    records = wait_records(caplog, 1)
    assert any(f"more than {MAX_PREAUTH_BYTES}" in r.getMessage() for r in records), [
        r.getMessage() for r in records
    ]


def test_closing_the_server_says_goodbye_on_every_linked_channel(guarded):
    main, session = session_of(guarded.port)
    others = [RawClient(guarded.port, kind, session, password=PASSWORD) for kind in CHANNELS[1:]]
    assert all(o.link_result == const.SPICE_LINK_ERR_OK for o in others)
    display = others[0]
    generation, _window = struct.unpack("<II", display.recv_until(const.SPICE_MSG_SET_ACK))
    display.send(const.SPICE_MSGC_ACK_SYNC, struct.pack("<I", generation))
    display.recv_until(const.SPICE_MSG_DISPLAY_MARK)
    # Frames keep coming while the server closes: the goodbye must still be the last
    # message (a sender running on past it would put a frame after it).
    stop = threading.Event()

    def publish() -> None:
        seed = 0
        while not stop.is_set():
            seed += 1
            guarded.source.publish(pattern(64, 48, seed=seed % 7), damage=((0, 0, 64, 48),))
            time.sleep(0.002)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        time.sleep(0.3)
        guarded.call(guarded.server.close())
    finally:
        stop.set()
        publisher.join(5)
    for client in (main, *others):
        client.sock.settimeout(5)
        timestamp, reason = struct.unpack("<QI", client.recv_until(const.SPICE_MSG_DISCONNECTING))
        assert reason == const.SPICE_LINK_ERR_OK and timestamp > 0
        with pytest.raises(EOFError):
            client.recv()
        client.close()
