"""The spice-html5 page on the SPICE port: the HTTP answers, against the package's files."""

from __future__ import annotations

import socket

import pytest
from spice_testkit import ServerThread, SyntheticSource, pattern

from vgpu.spice.webpage import INDEX, MISSING, html5_dir, http_response, is_websocket_upgrade

needs_package = pytest.mark.skipif(html5_dir() is None, reason="spice-html5 is not installed")


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, body


@needs_package
def test_root_is_spice_auto_html_and_modules_are_javascript():
    root = html5_dir()
    status, headers, body = _split(http_response(_get("/?x=1"), root))
    assert status == "HTTP/1.1 200 OK" and body == (root / INDEX).read_bytes()
    assert int(headers["Content-Length"]) == len(body)
    status, headers, body = _split(http_response(_get("/main.js"), root))
    assert headers["Content-Type"].startswith("text/javascript")
    assert body == (root / "main.js").read_bytes()


@needs_package
@pytest.mark.parametrize(
    "path", ["/../etc/passwd", "/thirdparty/../../x", "/%2e%2e/x", "/.hidden", "/nope.js"]
)
def test_nothing_outside_the_folder(path):
    status, _, _ = _split(http_response(_get(path), html5_dir()))
    assert status == "HTTP/1.1 404 Not Found"


def test_missing_package_says_so():
    status, _, body = _split(http_response(_get("/"), None))
    assert status == "HTTP/1.1 404 Not Found" and MISSING.encode() in body


def test_bad_request_line():
    assert http_response(b"GET\r\n\r\n", None).startswith(b"HTTP/1.1 400")


def test_websocket_upgrade_is_told_apart():
    assert is_websocket_upgrade(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade")
    assert not is_websocket_upgrade(_get("/"))


@needs_package
def test_the_spice_port_answers_a_plain_get():
    source = SyntheticSource()
    source.publish(pattern(64, 48))
    server = ServerThread(source)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(_get("/"))
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        status, _, body = _split(data)
        assert status == "HTTP/1.1 200 OK" and body == (html5_dir() / INDEX).read_bytes()
    finally:
        server.stop()
