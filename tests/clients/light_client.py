"""Light SPICE clients for load and churn: many in one process, over TCP or WebSocket.

    python tests/clients/light_client.py --port P --clients 40 --seconds 10 [--websocket]
        [--stalled 1] [--read-size 4096] [--read-pause-ms 1] [--churn]

Each client links a main and a display channel (ticketing disabled: the ticket is
not checked), acks its display channel and answers PINGs as spice-gtk does, and reads
its display channel slowly: at most --read-size bytes, then a pause. A stalled client
links both channels and then never reads again. With --churn, clients connect all
four channels, watch for a random moment and leave, cleanly or abruptly (a half-sent
message and a reset), until --seconds are up. Each client prints JSON lines:
{"event": "linked", ...} once its display channel is linked, {"event": "done", "kind",
"local_port" (its display connection's), "draws", "bytes", "sessions"} at the end, or
{"event": "failed"}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import struct
import time

from vgpu.spice import constants as const

LINK_HEADER = struct.Struct("<4sIII")
MINI = struct.Struct("<HI")
PONG = struct.Struct("<IQ")  # a PING's id and timestamp, echoed
COMMON_CAPS = (
    1 << const.SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION
    | 1 << const.SPICE_COMMON_CAP_AUTH_SPICE
    | 1 << const.SPICE_COMMON_CAP_MINI_HEADER
)
TICKET = bytes(128)  # any ticket passes with ticketing disabled
CHURN_WATCH_S = (0.05, 0.6)  # how long a churning client watches before it leaves
CHURN_QUIET_S = 5.0  # a display silent this long (the demo draws 30 times a second) fails


def link_message(channel_type: int, connection_id: int) -> bytes:
    body = struct.pack("<IBBIIII", connection_id, channel_type, 0, 1, 0, 18, COMMON_CAPS)
    return LINK_HEADER.pack(const.SPICE_MAGIC, 2, 2, len(body)) + body


class Wire:
    """One connection's bytes, over a plain socket or WebSocket binary messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.local_port = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ws = None

    @classmethod
    async def open(cls, port: int, websocket: bool) -> Wire:
        wire = cls()
        if websocket:
            from websockets.asyncio.client import connect

            wire._ws = await connect(f"ws://127.0.0.1:{port}/", subprotocols=["binary"],
                                     max_size=None, compression=None)
            wire.local_port = wire._ws.transport.get_extra_info("sockname")[1]
        else:
            wire._reader, wire._writer = await asyncio.open_connection("127.0.0.1", port)
            wire.local_port = wire._writer.get_extra_info("sockname")[1]
        return wire

    async def send(self, data: bytes) -> None:
        if self._ws is not None:
            await self._ws.send(data)
        else:
            assert self._writer is not None
            self._writer.write(data)
            await self._writer.drain()

    async def _more(self, size: int) -> None:
        if self._ws is not None:
            data = await self._ws.recv()
        else:
            assert self._reader is not None
            data = await self._reader.read(size)
        if not data:
            raise EOFError("server closed")
        self._buffer += data

    async def exactly(self, n: int, read_size: int = 65536) -> bytes:
        while len(self._buffer) < n:
            await self._more(read_size)
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    async def message(self, read_size: int, pause: float) -> tuple[int, bytes]:
        """The next mini-header message's type and size, read `read_size` at a time."""
        while len(self._buffer) < MINI.size:
            await self._more(read_size)
            await asyncio.sleep(pause)
        msg_type, size = MINI.unpack_from(self._buffer)
        while len(self._buffer) < MINI.size + size:
            await self._more(read_size)
            await asyncio.sleep(pause)
        body = bytes(self._buffer[MINI.size:MINI.size + size])
        del self._buffer[:MINI.size + size]
        return msg_type, body

    async def close(self, abrupt: bool = False) -> None:
        if self._ws is not None:
            if abrupt:
                self._ws.transport.abort()
            else:
                await self._ws.close()
            return
        assert self._writer is not None
        if abrupt:
            sock = self._writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._writer.transport.abort()  # a reset, not a goodbye
            return
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def link(port: int, websocket: bool, channel_type: int, connection_id: int) -> Wire:
    wire = await Wire.open(port, websocket)
    await wire.send(link_message(channel_type, connection_id))
    _magic, _major, _minor, size = LINK_HEADER.unpack(await wire.exactly(LINK_HEADER.size))
    reply = await wire.exactly(size)
    if struct.unpack_from("<I", reply)[0] != const.SPICE_LINK_ERR_OK:
        raise ConnectionError("link refused")
    await wire.send(struct.pack("<I", const.SPICE_COMMON_CAP_AUTH_SPICE) + TICKET)
    (result,) = struct.unpack("<I", await wire.exactly(4))
    if result != const.SPICE_LINK_ERR_OK:
        raise ConnectionError(f"link result {result}")
    return wire


class Result:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.local_port = 0
        self.draws = 0
        self.bytes = 0
        self.sessions = 0

    def line(self, event: str = "done") -> str:
        return json.dumps({"event": event, "kind": self.kind, "local_port": self.local_port,
                           "draws": self.draws, "bytes": self.bytes, "sessions": self.sessions})

    def linked(self, display: Wire) -> None:
        """Says at once which display connection is whose (a load test matches them)."""
        self.local_port, self.sessions = display.local_port, 1
        print(self.line("linked"), flush=True)


async def pong(wire: Wire, ping: bytes) -> None:
    """Answers a PING as every SPICE client must (spice-gtk's spice_channel_handle_ping):
    its id and timestamp back. The server times stream frames by them; a client that
    never answers looks ever further behind and gets no stream frames at all."""
    await wire.send(MINI.pack(const.SPICE_MSGC_PONG, PONG.size) + ping[:PONG.size])


async def answer_pings(main: Wire) -> None:
    """The main channel after its INIT, read as a client does: PINGs answered."""
    while True:
        msg_type, body = await main.message(65536, 0)
        if msg_type == const.SPICE_MSG_PING:
            await pong(main, body)


async def main_session_id(main: Wire) -> int:
    while True:
        msg_type, body = await main.message(65536, 0)
        if msg_type == const.SPICE_MSG_MAIN_INIT:
            return struct.unpack_from("<I", body)[0]


async def watch(display: Wire, result: Result, read_size: int, pause: float,
                until: float) -> None:
    """Reads the display channel slowly, acking as spice-gtk does, until `until`."""
    window = 0
    unacked = 0
    while time.monotonic() < until:
        msg_type, body = await display.message(read_size, pause)
        if msg_type == const.SPICE_MSG_SET_ACK:
            generation, window = struct.unpack("<II", body)
            await display.send(MINI.pack(const.SPICE_MSGC_ACK_SYNC, 4)
                               + struct.pack("<I", generation))
            continue
        result.bytes += MINI.size + len(body)
        if msg_type == const.SPICE_MSG_PING:
            await pong(display, body)
        elif msg_type == const.SPICE_MSG_DISPLAY_DRAW_COPY:
            result.draws += 1
        unacked += 1
        if window and unacked >= window:
            unacked = 0
            await display.send(MINI.pack(const.SPICE_MSGC_ACK, 0))


async def open_session(port: int, websocket: bool) -> tuple[Wire, Wire, int]:
    main = await link(port, websocket, const.SPICE_CHANNEL_MAIN, 0)
    session_id = await main_session_id(main)
    display = await link(port, websocket, const.SPICE_CHANNEL_DISPLAY, session_id)
    await display.send(MINI.pack(const.SPICE_MSGC_DISPLAY_INIT, 14) + bytes(14))
    return main, display, session_id


async def slow_reader(port: int, websocket: bool, args: argparse.Namespace, until: float) -> Result:
    result = Result("ws" if websocket else "tcp")
    main, display, _ = await open_session(port, websocket)
    result.linked(display)
    reader = asyncio.ensure_future(answer_pings(main))
    try:
        await watch(display, result, args.read_size, args.read_pause_ms / 1000, until)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await display.close()
        await main.close()
    return result


async def stalled(port: int, websocket: bool, until: float) -> Result:
    result = Result("stalled-ws" if websocket else "stalled")
    main, display, _ = await open_session(port, websocket)
    result.linked(display)
    await asyncio.sleep(max(0.0, until - time.monotonic()))  # never reads
    await display.close(abrupt=True)
    await main.close(abrupt=True)
    return result


async def churner(
    port: int, websocket: bool, args: argparse.Namespace, until: float, rng: random.Random
) -> Result:
    """Sessions that come, watch and go (cleanly or abruptly) until `until`."""
    result = Result("churn-ws" if websocket else "churn")
    while time.monotonic() < until:
        main, display, session_id = await open_session(port, websocket)
        others = [
            await link(port, websocket, kind, session_id)
            for kind in (const.SPICE_CHANNEL_INPUTS, const.SPICE_CHANNEL_CURSOR)
        ]
        watch_until = time.monotonic() + rng.uniform(*CHURN_WATCH_S)
        await asyncio.wait_for(
            watch(display, result, args.read_size, args.read_pause_ms / 1000, watch_until),
            CHURN_WATCH_S[1] + CHURN_QUIET_S,
        )
        abrupt = rng.random() < 0.5
        if abrupt:  # half a message first: the server sees a cut mid-message
            await display.send(MINI.pack(const.SPICE_MSGC_ACK_SYNC, 4) + b"\x01")
        for wire in (*others, display, main):
            await wire.close(abrupt=abrupt)
        result.sessions += 1
    return result


async def run(args: argparse.Namespace) -> list[Result]:
    until = time.monotonic() + args.seconds
    rng = random.Random(args.seed)
    tasks = []
    for i in range(args.clients):
        if i < args.stalled:
            tasks.append(stalled(args.port, args.websocket, until))
        elif args.churn:
            tasks.append(
                churner(args.port, args.websocket, args, until, random.Random(rng.random()))
            )
        else:
            tasks.append(slow_reader(args.port, args.websocket, args, until))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    out = []
    for r in results:
        if isinstance(r, BaseException):
            print(json.dumps({"event": "failed", "kind": "failed", "error": repr(r)}), flush=True)
            continue
        out.append(r)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--stalled", type=int, default=0, help="how many never read")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--websocket", action="store_true")
    parser.add_argument("--churn", action="store_true")
    parser.add_argument("--read-size", type=int, default=4096)
    parser.add_argument("--read-pause-ms", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    for r in results:
        print(r.line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
