"""The spice-html5 page, served on the SPICE port itself: `http://HOST:PORT/` shows the display.

A browser's plain GET (no WebSocket upgrade) gets the files of the system's
spice-html5 package, found at run time; `/` is its spice_auto.html, which
connects its WebSocket to the host and port that served it, the same port.
Pure functions (request head in, response bytes out); the server does the IO.
It never serves anything outside the spice-html5 folder.
"""

from __future__ import annotations

import re
from pathlib import Path

SPICE_HTML5_DIRS = (Path("/usr/share/spice-html5"),)
"""Where distributions install spice-html5 (Debian's and Fedora's package both use this)."""

INDEX = "spice_auto.html"
"""What `/` serves: the page that connects to the host and port it came from."""

MAX_REQUEST_HEAD = 8 * 1024
"""A browser's GET with its headers is well under 2 KiB; a longer head is refused."""

MAX_FILE_BYTES = 4 * 1024 * 1024
"""spice-html5's largest file is under 200 KiB; the bound keeps a stray file out."""

SAFE_PATH = re.compile(r"^/(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]*$")
"""Plain path segments only: no '..' tricks, no encoded characters."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",  # module scripts need a JavaScript type
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

MISSING = (
    "spice-html5 is not installed on this server (Debian package spice-html5), so there "
    "is no web page to show. Connect with remote-viewer spice://HOST:PORT instead."
)


def html5_dir() -> Path | None:
    """The spice-html5 folder of this machine, or None where it is not installed."""
    return next((d for d in SPICE_HTML5_DIRS if (d / INDEX).is_file()), None)


def is_websocket_upgrade(head: bytes) -> bool:
    """Whether an HTTP request head asks for a WebSocket (spice-html5's connection)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-cache\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def http_response(head: bytes, root: Path | None) -> bytes:
    """The whole response to one plain HTTP GET's head (the server tells a GET by its
    first bytes, as it tells SPICE and WebSocket); `root`: html5_dir()."""
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/"):
        return _response("400 Bad Request", "text/plain", b"bad request\n")
    path = parts[1].split("?", 1)[0]
    if root is None:
        return _response("404 Not Found", "text/plain; charset=utf-8", MISSING.encode() + b"\n")
    if path == "/":
        path = "/" + INDEX
    if not SAFE_PATH.match(path) or "/." in path:
        return _response("404 Not Found", "text/plain", b"not found\n")
    file = root / path.lstrip("/")
    try:
        if not file.is_file() or file.stat().st_size > MAX_FILE_BYTES:
            return _response("404 Not Found", "text/plain", b"not found\n")
        body = file.read_bytes()
    except OSError:
        return _response("404 Not Found", "text/plain", b"not found\n")
    return _response("200 OK", CONTENT_TYPES.get(file.suffix, "application/octet-stream"), body)
