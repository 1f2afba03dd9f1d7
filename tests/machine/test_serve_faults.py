"""`vgpu serve` under faults: wrong arguments, a busy port, TLS alone, signals, guests that die.

Each case runs the command as a user does and checks what the user sees: one line
and an exit status, the ports it listens on, the stock client's picture, and the
SPICE goodbye a client gets when the server is stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli_end_to_end import (
    ROOT,
    VGPU,
    free_port,
    looks_like_the_desktop,
    screenshot,
    wait_for_picture,
)

from vgpu.spice import constants as const

sys.path.insert(0, str(ROOT / "tests" / "spice"))
from spice_testkit import RawClient, make_x509_dir

DYING_GUEST = Path(__file__).resolve().parent / "dying_guest.py"
DYING_COLOR_RGB = [0xAA, 0x55, 0x00]  # dying_guest.COLOR as the client's RGB
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def run_serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VGPU, "serve", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def test_busy_port_is_one_line_and_a_clean_failure():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_serve("--demo", "desktop", "--port", str(port))
    assert result.returncode == 1, result
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_guest_socket_in_a_missing_folder_is_one_line_and_a_clean_failure(tmp_path):
    result = run_serve("--guest", str(tmp_path / "missing" / "x.sock"),
                       "--port", str(free_port()))
    assert result.returncode == 2, result
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "missing" in result.stderr and "Traceback" not in result.stderr


def listening_ports(pid: int) -> set[int]:
    """TCP ports process `pid` listens on, from /proc (its socket inodes in the tables)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*VGPU, "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV)


def wait_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 60) -> list[str]:
    """stdout lines up to the first that starts with `prefix`."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no line {prefix!r}: {''.join(lines)}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


@pytest.mark.gl
def test_tls_port_alone_listens_on_nothing_in_clear(tmp_path):
    tls_port = free_port()
    proc = start("--demo", "desktop", "--tls-port", str(tls_port),
                 "--x509-dir", str(make_x509_dir(tmp_path)), "--password", "p")
    try:
        lines = wait_line(proc, "SPICE over TLS")
        assert not any(line.startswith("SPICE: ") for line in lines), lines
        assert listening_ports(proc.pid) == {tls_port}
    finally:
        code, out = stop(proc)
    assert code == 0 and "Traceback" not in out, out


@pytest.mark.gl
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_end_serve_cleanly_with_a_goodbye_on_every_channel(sig):
    port = free_port()
    proc = start("--demo", "desktop", "--port", str(port))
    try:
        wait_line(proc, "SPICE: ")
        main = RawClient(port, const.SPICE_CHANNEL_MAIN)
        assert main.link_result == const.SPICE_LINK_ERR_OK
        session = main.recv_until(const.SPICE_MSG_MAIN_INIT)
        display = RawClient(port, const.SPICE_CHANNEL_DISPLAY,
                            int.from_bytes(session[:4], "little"))
        assert display.link_result == const.SPICE_LINK_ERR_OK
        display.recv_until(const.SPICE_MSG_SET_ACK)
    finally:
        code, out = stop(proc, sig)
    assert code == 0 and "Traceback" not in out, out
    for client in (main, display):
        client.sock.settimeout(10)
        goodbye = client.recv_until(const.SPICE_MSG_DISCONNECTING)
        assert len(goodbye) == 12  # SpiceMsgDisconnect: time stamp, reason
        with pytest.raises(EOFError):
            client.recv()
        client.close()


def wait_for_socket(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "the device never listened for a guest"
        time.sleep(0.1)


def dying_picture(rgb: np.ndarray) -> bool:
    """What dying_guest drew before it died: its colour outside the quarter it may add."""
    return rgb.shape == (240, 320, 3) and rgb[200, 300].tolist() == DYING_COLOR_RGB


@pytest.mark.gl
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["command", "surface", "frame"])
def test_guest_killed_mid_command_leaves_the_last_frame_and_the_next_guest_resets(tmp_path, mode):
    sock = tmp_path / "guest.sock"
    port = free_port()
    proc = start("--guest", str(sock), "--port", str(port))
    guests: list[subprocess.Popen[str]] = []
    try:
        wait_for_socket(sock)
        dying = subprocess.Popen(
            [sys.executable, str(DYING_GUEST), str(sock), mode],
            env=ENV,
            stdout=subprocess.PIPE,
            text=True,
        )
        guests.append(dying)
        dying.wait(timeout=30)
        assert dying.returncode == -signal.SIGKILL, dying.stdout.read() if dying.stdout else ""
        # The device serves the last frame of the guest that died.
        assert dying_picture(screenshot(port, tmp_path / "dead.ppm"))
        # The next guest attaches, resets the device and draws.
        desktop = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "desktop_guest.py"), str(sock)], env=ENV
        )
        guests.append(desktop)
        wait_for_picture(port, tmp_path / "next.ppm", looks_like_the_desktop)
    finally:
        for guest in guests:
            if guest.poll() is None:
                guest.kill()
            guest.wait(timeout=10)
        code, out = stop(proc)
    assert code == 0 and "Traceback" not in out, out
