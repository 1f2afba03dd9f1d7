"""`vgpu serve`: run a guest's display and serve it to SPICE clients.

Options are named as QEMU's -spice and Xspice name them, so users can carry
their habits over: --port, --tls-port with --x509-dir, --password,
--disable-ticketing, --image-compression, --jpeg-wan-compression,
--streaming-video.

Exit status: 0 after SIGINT/SIGTERM, 2 for bad options, 1 when a port cannot be
listened on, and GL_STUCK_EXIT when the 3D watchdog gave up on a stuck batch
(`--gl-watchdog`): a supervisor restarts the display then, as after a GPU reset.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from vgpu.encode.video import DEFAULT_VIDEO_CODECS
from vgpu.spice.constants import SPICE_MAX_PASSWORD_LENGTH
from vgpu.spice.imaging import IMAGE_COMPRESSIONS, JPEG_WAN_COMPRESSIONS, STREAMING_VIDEOS

X509_FILES = ("ca-cert.pem", "server-cert.pem", "server-key.pem")  # QEMU's names

DEFAULT_PORT = 5930
"""The plain port when no port is named at all; QEMU's -spice has none, but a bare
`vgpu serve --demo desktop` should be reachable. With --tls-port alone there is no
plain port, as in QEMU: a user who asks for TLS must not also be served in clear."""


def plain_port(args: argparse.Namespace) -> int | None:
    """The clear-text port to open, or None for TLS only."""
    if args.port is not None:
        return int(args.port)
    return None if args.tls_port is not None else DEFAULT_PORT


GL_STUCK_EXIT = 3
"""Exit status when a 3D batch never ended: distinct from bad options (2) and from a
port that cannot be listened on (1), so a supervisor can tell a hang from a typo."""

STUCK_STOP_S = 1.0
"""How long `vgpu serve` waits for its threads when a 3D batch is stuck: the render
thread never returns from it, so waiting longer only delays the restart."""


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("a number of seconds above 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--addr", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port",
        type=int,
        help=f"plain SPICE and WebSocket port ({DEFAULT_PORT} unless --tls-port is given alone)",
    )
    parser.add_argument("--tls-port", type=int, help="SPICE over TLS port (needs --x509-dir)")
    parser.add_argument(
        "--x509-dir", type=Path, help="folder with ca-cert.pem, server-cert.pem, server-key.pem"
    )
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password", help="the ticket clients must send")
    secret.add_argument("--password-file", type=Path, help="file whose first line is the password")
    secret.add_argument(
        "--disable-ticketing",
        action="store_true",
        help="accept clients without a password (the default when no password is given)",
    )
    guest = parser.add_mutually_exclusive_group()
    guest.add_argument("--guest", metavar="SOCKET", help="an out-of-process guest's socket")
    guest.add_argument(
        "--demo", metavar="NAME",
        help="a built-in guest: desktop, cube (3D), anim (a full-screen animation), "
        "or replay:FILE (a recording)",
    )
    parser.add_argument("--record", type=Path, help="record the guest's commands to FILE")
    parser.add_argument(
        "--wait-client",
        action="store_true",
        help="hold a --demo replay until the first display channel connects (to watch it live)",
    )
    parser.add_argument(
        "--image-compression",
        choices=IMAGE_COMPRESSIONS,
        default="auto_glz",
        help="still images: LZ by default (GLZ is served as LZ), quic, lz4, or off (raw)",
    )
    parser.add_argument(
        "--jpeg-wan-compression",
        choices=JPEG_WAN_COMPRESSIONS,
        default="auto",
        help="lossy JPEG for still images: only 'always' enables it (no WAN detection)",
    )
    parser.add_argument(
        "--streaming-video",
        choices=STREAMING_VIDEOS,
        default="filter",
        help="video streams (see --video-codecs) for regions that change every frame",
    )
    parser.add_argument(
        "--video-codecs",
        default=DEFAULT_VIDEO_CODECS,
        help="stream codecs in the server's order, spice-server's syntax "
        "(gstreamer:h264;gstreamer:vp8;spice:mjpeg; the encoder part may be pyav); "
        "each client gets the first one it decodes, or the one it prefers",
    )
    parser.add_argument(
        "--gl-watchdog",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="give up (exit status 3) when a 3D batch is still running this long after it "
        "was reported stuck (2 s); default 10",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every connection")


def _password(args: argparse.Namespace) -> str | None:
    if args.password_file is not None:
        lines = args.password_file.read_text().splitlines()
        return lines[0] if lines else ""
    return args.password


def tls_context(x509_dir: Path) -> ssl.SSLContext:
    missing = [name for name in X509_FILES if not (x509_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{x509_dir}: missing {', '.join(missing)}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(x509_dir / "server-cert.pem", x509_dir / "server-key.pem")
    return context


WATCH_INTERVAL_S = 0.01
"""How often serve looks for the first display channel and the end of a replay: well
below a frame, so a held replay starts within one frame of the client."""


async def _watch_replay(machine: Any, server: Any, stop: asyncio.Event) -> None:
    """Releases a held replay when the first display channel connects, and prints
    "replay done" once the replay has fed its last command (benchmarks wait for it)."""
    while not stop.is_set():
        if not machine.client_connected.is_set() and server.display_stats:
            machine.client_connected.set()
        if machine.guest_done.is_set():
            print("replay done", flush=True)
            return
        await asyncio.sleep(WATCH_INTERVAL_S)


def run(args: argparse.Namespace) -> int:
    from vgpu.machine import DEFAULT_GL_WATCHDOG_S, Machine
    from vgpu.spice.imaging import Compression
    from vgpu.spice.server import ServerOptions, SpiceServer

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    if args.tls_port is not None and args.x509_dir is None:
        print("--tls-port needs --x509-dir", file=sys.stderr)
        return 2
    password = _password(args)
    if password is not None and len(password.encode()) > SPICE_MAX_PASSWORD_LENGTH:
        print(f"the password is longer than {SPICE_MAX_PASSWORD_LENGTH} bytes", file=sys.stderr)
        return 2
    try:
        tls = tls_context(args.x509_dir) if args.tls_port is not None else None
    except (OSError, ssl.SSLError) as exc:
        print(f"TLS: {exc}", file=sys.stderr)
        return 2
    try:
        compression = Compression(
            args.image_compression, args.jpeg_wan_compression, args.streaming_video,
            args.video_codecs,
        )
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    options = ServerOptions(password=password, compression=compression)
    if args.demo is None and args.guest is None:
        print(
            "choose a guest: --demo desktop, --demo cube, --demo anim, --demo replay:FILE "
            "or --guest SOCKET",
            file=sys.stderr,
        )
        return 2
    if args.wait_client and not (args.demo or "").startswith("replay:"):
        print("--wait-client holds a replay: use it with --demo replay:FILE", file=sys.stderr)
        return 2
    for option, path in (("--guest", args.guest), ("--record", args.record)):
        if path is not None and not Path(path).parent.is_dir():
            print(f"{option} {path}: no folder {Path(path).parent}", file=sys.stderr)
            return 2
    try:
        machine = Machine.create(
            demo=args.demo,
            guest_socket=args.guest,
            record=args.record,
            gl_watchdog=args.gl_watchdog or DEFAULT_GL_WATCHDOG_S,
            hard_watchdog=True,
            wait_client=args.wait_client,
        )
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    port = plain_port(args)

    async def serve() -> None:
        server = SpiceServer(machine, options)
        watcher: asyncio.Task[None] | None = None
        try:
            # Both ports first: a port in use ends the run before any thread starts.
            plain = None if port is None else await server.listen(args.addr, port)
            secure = None if tls is None else await server.listen(args.addr, args.tls_port, tls)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            machine.on_fatal = lambda reason: loop.call_soon_threadsafe(stop.set)
            await loop.run_in_executor(None, machine.start)
            _print_urls(args, plain, secure, password)
            if machine.fatal is not None:  # before the handler was in place
                stop.set()
            watcher = asyncio.create_task(_watch_replay(machine, server, stop))
            await stop.wait()
        finally:
            if watcher is not None:
                watcher.cancel()
            await server.close()  # tells every client goodbye

    try:
        asyncio.run(serve())
    except OSError as exc:
        print(f"cannot listen: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # the machine did not start (GL, the guest socket)
        print(f"vgpu serve: {exc}", file=sys.stderr)
        return 1
    finally:
        machine.stop(STUCK_STOP_S if machine.fatal is not None else None)
    if machine.recorded is not None:
        print(f"recorded {machine.recorded} events to {args.record}", flush=True)
    if machine.fatal is not None:
        print(f"vgpu serve: {machine.fatal}", file=sys.stderr)
        return GL_STUCK_EXIT
    return 0


def _print_urls(
    args: argparse.Namespace, plain: int | None, secure: int | None, password: str | None
) -> None:
    host = args.addr if ":" not in args.addr else f"[{args.addr}]"
    if plain is not None:
        print(f"SPICE: spice://{host}:{plain}  (remote-viewer, spicy)", flush=True)
    if secure is not None:
        print(
            f"SPICE over TLS: spice://{host}?tls-port={secure}  "
            f"(remote-viewer --spice-ca-file={args.x509_dir / 'ca-cert.pem'})",
            flush=True,
        )
    from vgpu.spice.webpage import MISSING, html5_dir

    if html5_dir() is None:
        print(f"Browser: none; {MISSING}", flush=True)
    elif plain is not None:
        print(f"Browser: http://{host}:{plain}/  (spice-html5, on the same port)", flush=True)
    else:
        print(f"Browser: https://{host}:{secure}/  (spice-html5, on the same port)", flush=True)
    if password is None:
        print("No password: any client that reaches the port may connect.", flush=True)
