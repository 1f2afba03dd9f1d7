"""Test helpers for the SPICE server: a synthetic display source, a server on a thread,
and the stock spice-gtk client as a subprocess."""

from __future__ import annotations

import asyncio
import datetime
import functools
import http.server
import ipaddress
import queue
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from vgpu.display import CursorBus, Frame, FrameBus, InputEvent, Move, Placement, Rect
from vgpu.spice import constants as const
from vgpu.spice.server import ServerOptions, SpiceServer

CLIENTS = Path(__file__).resolve().parent.parent / "clients"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has the SpiceClientGLib gi bindings


def _has_glib_client() -> bool:
    probe = "import gi; gi.require_version('SpiceClientGLib', '2.0')"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_glib = pytest.mark.skipif(not _has_glib_client(), reason="no SpiceClientGLib for python3")


class SyntheticSource:
    """Stands in for the machine: frames published from the test, inputs recorded."""

    def __init__(self) -> None:
        self.frames = FrameBus()
        self.cursor = CursorBus()
        self.inputs: list[InputEvent] = []
        self._serial = 0
        self._surface = 0
        self._lock = threading.Lock()

    def send_input(self, event: InputEvent) -> None:
        with self._lock:
            self.inputs.append(event)

    def publish(
        self, pixels: np.ndarray, damage: tuple[Rect, ...] | None = None, resize: bool = False,
        placements: tuple[Placement, ...] = (), moves: tuple[Move, ...] = (),
    ) -> Frame:
        pixels = np.ascontiguousarray(pixels)
        pixels.setflags(write=False)
        latest = self.frames.latest()
        if resize or latest is None or latest.pixels.shape != pixels.shape:
            self._surface += 1
        self._serial += 1
        h, w = pixels.shape[:2]
        frame = Frame(self._serial, self._surface, pixels, damage or ((0, 0, w, h),),
                      placements=placements, moves=moves)
        self.frames.publish(frame)
        return frame


def pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Gradients, hard edges and noise: a picture where any decoding slip shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 4), np.uint8)
    img[..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)
    img[..., 2] = ((x // 16 + y // 16) % 2 * 200).astype(np.uint8)
    noise = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
    img[: height // 4, : width // 4, :3] = noise
    img[..., 3] = 255
    return img


class ServerThread:
    """A SpiceServer running on its own event loop thread, as `vgpu serve` runs it."""

    def __init__(
        self,
        source: SyntheticSource,
        options: ServerOptions | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.source = source
        self.loop = asyncio.new_event_loop()
        self.server = SpiceServer(source, options)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self.call(self.server.listen("127.0.0.1", 0))
        self.tls_port = self.call(self.server.listen("127.0.0.1", 0, tls)) if tls else None

    def call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class GlibClient:
    """tests/clients/spice_glib_client.py as a subprocess; its stdout lines as a queue."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(CLIENTS / "spice_glib_client.py"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("eof")

    def wait_for(self, match: Callable[[str], bool], timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"client never printed the expected line; saw {self.seen[-20:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if match(line):
                return line
            if line == "eof":
                raise EOFError(f"client exited; saw {self.seen[-20:]}")

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def dump(self, path: Path, width: int, height: int) -> np.ndarray:
        self.command(f"dump {path}")
        self.wait_for(lambda line: line.startswith("dumped"))
        return np.fromfile(path, np.uint8).reshape(height, width, 4)

    def poll_dump(
        self,
        path: Path,
        width: int,
        height: int,
        done: Callable[[np.ndarray], bool],
        timeout: float = 10,
        interval: float = 0.05,
    ) -> tuple[bool, np.ndarray]:
        """Dumps the primary surface until `done` holds for it or `timeout` passes;
        returns whether it held, and the last dump."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.dump(path, width, height)
            if done(got):
                return True, got
            if time.monotonic() >= deadline:
                return False, got
            time.sleep(interval)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command("quit")
                self.proc.wait(5)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


HTML5_DIR = Path("/usr/share/spice-html5")  # Debian's spice-html5 package


class StaticHttp:
    """Serves spice-html5's files on a local port for the browser."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


CANVAS_PIXELS_JS = """
() => {
  const c = document.querySelector('canvas#spice_surface_0');
  if (!c) return null;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = '';
  for (let i = 0; i < d.length; i += 0x8000)
    s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
  return [c.width, c.height, btoa(s)];
}
"""


def html5_canvas(page: object) -> np.ndarray | None:
    """The spice-html5 primary canvas as (h, w, 4) R,G,B,A, or None before it exists."""
    import base64

    got = page.evaluate(CANVAS_PIXELS_JS)  # type: ignore[attr-defined]
    if got is None:
        return None
    width, height, data = got
    return np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)


# -- a minimal SPICE client side, for driving the server's machines without a stock client


def link_request(
    channel_type: int,
    channel_id: int = 0,
    connection_id: int = 0,
    common_caps: tuple[int, ...] = (0, 1, 3),  # AUTH_SELECTION, AUTH_SPICE, MINI_HEADER
    channel_caps: tuple[int, ...] = (),
) -> bytes:
    from vgpu.spice.wire import caps_words

    common, channel = caps_words(common_caps), caps_words(channel_caps)
    body = struct.pack(
        "<IBBIII", connection_id, channel_type, channel_id, len(common), len(channel), 18
    )
    body += struct.pack(f"<{len(common) + len(channel)}I", *common, *channel)
    return struct.pack("<4sIII", b"REDQ", 2, 2, len(body)) + body


def encrypt_ticket(reply_body: bytes, password: str) -> bytes:
    """The client's half: RSA-OAEP/SHA-1 over the NUL-terminated password."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key = serialization.load_der_public_key(reply_body[4 : 4 + 162])
    return key.encrypt(  # type: ignore[union-attr]
        password.encode() + b"\0",
        padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    )


def mini(msg_type: int, body: bytes = b"") -> bytes:
    return struct.pack("<HI", msg_type, len(body)) + body


def split_messages(data: bytes) -> list[tuple[int, bytes]]:
    """Mini-header framed server messages (whole ones only)."""
    out = []
    pos = 0
    while pos + 6 <= len(data):
        msg_type, size = struct.unpack_from("<HI", data, pos)
        if pos + 6 + size > len(data):
            break
        out.append((msg_type, data[pos + 6 : pos + 6 + size]))
        pos += 6 + size
    return out


class RawClient:
    """A blocking socket client that links one channel and then speaks mini-header messages."""

    def __init__(
        self,
        port: int,
        channel_type: int,
        connection_id: int = 0,
        password: str = "",
        channel_caps: tuple[int, ...] = (),
        ticket: bytes | None = None,
    ) -> None:
        """`ticket`: raw bytes to send instead of the password encrypted with the key."""
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(link_request(channel_type, 0, connection_id, channel_caps=channel_caps))
        _magic, _major, _minor, size = struct.unpack("<4sIII", self._exact(16))
        reply = self._exact(size)
        self.reply_error = struct.unpack_from("<I", reply)[0]
        self.link_result: int | None = None
        self._buffer = b""
        if self.reply_error:
            return
        if ticket is None:
            ticket = encrypt_ticket(reply, password)
        self.sock.sendall(struct.pack("<I", 1) + ticket)
        self.link_result = struct.unpack("<I", self._exact(4))[0]

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("server closed")
            data += chunk
        return data

    def send(self, msg_type: int, body: bytes = b"") -> None:
        self.sock.sendall(mini(msg_type, body))

    def recv(self) -> tuple[int, bytes]:
        msg_type, size = struct.unpack("<HI", self._exact(6))
        return msg_type, self._exact(size)

    def recv_until(self, msg_type: int, limit: int = 1000) -> bytes:
        for _ in range(limit):
            got_type, body = self.recv()
            if got_type == msg_type:
                return body
        raise AssertionError(f"no message {msg_type} in {limit}")

    def close(self) -> None:
        self.sock.close()


def make_x509_dir(folder: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1, under QEMU's file names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vgpu test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca-cert.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server-cert.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server-key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder


# -- fuzzing vocabulary shared by the sans-IO and the network fuzz tests

mutation = st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from("rid"))


def mutate(data: bytes, edits: list[tuple[int, int, str]]) -> bytes:
    out = bytearray(data)
    for pos, value, kind in edits:
        if not out:
            break
        pos %= len(out)
        if kind == "r":
            out[pos] = value
        elif kind == "i":
            out.insert(pos, value)
        else:
            del out[pos]
    return bytes(out)


VALID = {
    "main": mini(const.SPICE_MSGC_MAIN_CLIENT_INFO, bytes(8))
    + mini(const.SPICE_MSGC_MAIN_ATTACH_CHANNELS)
    + mini(const.SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST, struct.pack("<H", 2))
    + mini(const.SPICE_MSGC_MAIN_AGENT_START, struct.pack("<I", 10))
    + mini(const.SPICE_MSGC_PONG, struct.pack("<IQ", 1, 2)),
    "display": mini(const.SPICE_MSGC_DISPLAY_INIT, struct.pack("<BqBi", 1, 1 << 20, 0, 0))
    + mini(const.SPICE_MSGC_ACK_SYNC, struct.pack("<I", 1))
    + mini(const.SPICE_MSGC_ACK)
    + mini(const.SPICE_MSGC_DISPLAY_PREFERRED_COMPRESSION, b"\x07")
    + mini(const.SPICE_MSGC_DISPLAY_STREAM_REPORT, bytes(32)),
    "inputs": mini(const.SPICE_MSGC_INPUTS_KEY_DOWN, struct.pack("<I", 0x1E))
    + mini(const.SPICE_MSGC_INPUTS_KEY_SCANCODE, b"\xe0\x48\xe0\xc8")
    + mini(const.SPICE_MSGC_INPUTS_MOUSE_POSITION, struct.pack("<IIHB", 5, 6, 1, 0))
    + mini(const.SPICE_MSGC_INPUTS_MOUSE_MOTION, struct.pack("<iiH", -1, 1, 0))
    + mini(const.SPICE_MSGC_INPUTS_MOUSE_PRESS, struct.pack("<BH", 1, 1)),
    "cursor": mini(const.SPICE_MSGC_ACK_SYNC, struct.pack("<I", 1)) + mini(const.SPICE_MSGC_ACK),
}
