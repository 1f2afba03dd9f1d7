"""A guest that dies in the middle of its work, for the fault tests of `vgpu serve --guest`.

    python tests/machine/dying_guest.py SOCKET MODE

It attaches, resets the device, creates a 320x240 primary and fills it with
COLOR, waits until the device has drawn it (a synchronous UPDATE_AREA), then,
by MODE, puts a fill ("command") or an off-screen surface create ("surface")
on the ring, or ("frame") presents one 3D frame into the top-left quarter and
submits half of the next one to the 3D ring, and kills itself with SIGKILL
before the device can answer: the device is left with work in flight from a
guest that is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

from vgpu.device.commands import QRect
from vgpu.guest.desktop import fill
from vgpu.guest.remote import connect_driver

WIDTH, HEIGHT = 320, 240
COLOR = 0x00AA5500  # x8r8g8b8
SETTLE_S = 0.3
"""Longer than a frame period (1/60 s) with margin: the frame with COLOR is published."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("mode", choices=("command", "surface", "frame"))
    args = parser.parse_args()
    driver = connect_driver(args.socket)
    driver.reset()
    driver.create_primary(WIDTH, HEIGHT)
    whole = QRect(0, 0, HEIGHT, WIDTH)  # top, left, bottom, right
    driver.submit(fill(whole, COLOR))
    driver.update_area(0, whole)
    time.sleep(SETTLE_S)
    print("drawn", flush=True)
    if args.mode == "command":
        driver.submit(fill(QRect(0, 0, HEIGHT // 2, WIDTH // 2), 0x00FFFFFF))
    elif args.mode == "surface":
        driver.create_surface(1, 256, 256)
    else:
        from vgpu.guest import gl

        ctx = gl.create_context(driver, (WIDTH // 2, HEIGHT // 2))
        ctx.clear(1.0, 1.0, 1.0, 1.0)
        ctx.wait(ctx.present())
        ctx.clear(0.0, 0.0, 1.0, 1.0)  # the next frame, never presented
        ctx.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
