"""An out-of-process 3D guest: the rotating cube, drawn through the 3D ring over the device's
unix socket.

    vgpu serve --guest /run/user/$UID/vgpu.sock &
    python examples/cube_guest.py /run/user/$UID/vgpu.sock

The cube is vgpu.guest.cube's CubeScene, code written for moderngl: here it gets a
vgpu.guest.gl context instead, whose calls become commands on the ring.
"""

from __future__ import annotations

import argparse
import signal
import threading

from vgpu.guest.cube import run_cube
from vgpu.guest.driver import GuestDriver
from vgpu.guest.remote import RemoteAttachment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket", help="the device's guest socket (vgpu serve --guest)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    driver = GuestDriver(RemoteAttachment.connect(args.socket))
    try:
        driver.reset()  # a driver resets the device when it loads
        run_cube(driver, stop, args.width, args.height)
    finally:
        driver.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
