"""An out-of-process guest: the desktop demo, attached to a device over its unix socket.

    vgpu serve --guest /run/user/$UID/vgpu.sock &
    python examples/desktop_guest.py /run/user/$UID/vgpu.sock

With --cube it is the 3D demo instead: vgpu.guest.cube's CubeScene, code written for
moderngl, given a vgpu.guest.gl context whose calls become commands on the 3D ring.

This process maps the device's memory (received over the socket) and drives it
exactly as the built-in demo does; killing it leaves the device serving its last
picture, and a new guest can attach.
"""

from __future__ import annotations

import argparse
import signal
import threading

from vgpu.guest.cube import run_cube
from vgpu.guest.desktop import DesktopScene, run_desktop
from vgpu.guest.driver import GuestDriver
from vgpu.guest.remote import RemoteAttachment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket", help="the device's guest socket (vgpu serve --guest)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--cube", action="store_true", help="the 3D cube instead")
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    driver = GuestDriver(RemoteAttachment.connect(args.socket))
    try:
        driver.reset()  # a driver resets the device when it loads
        driver.create_primary(args.width, args.height)
        if args.cube:
            run_cube(driver, stop, args.width, args.height)
        else:
            run_desktop(driver, stop, DesktopScene(args.width, args.height))
    finally:
        driver.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
