"""The built-in animation guest: a full-screen moving picture drawn through the 2D ring.

Every frame is a new image, sent with one COPY of a fresh bitmap (never cached),
so the whole screen changes every refresh, as 3D output or a video player does
through a 2D driver. The picture is smooth and photographic (gradients, soft
rings and a moving light), which lossless codecs compress poorly and video
codecs well. Along the bottom-left edge the frame counter is drawn as 16 blocks
of 16x16 pixels, bright for a set bit: coarse enough to survive lossy video, so
a client (or a benchmark) can tell which frame it shows.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from vgpu.device.abi import lib
from vgpu.device.commands import BitmapImage, Command, ImageDescriptor, QRect
from vgpu.guest.desktop import copy_image
from vgpu.guest.driver import GuestDriver

IMAGE_TYPE_BITMAP = lib.SPICE_IMAGE_TYPE_BITMAP
BITMAP_FMT_32BIT = lib.SPICE_BITMAP_FMT_32BIT
BITMAP_FLAG_TOP_DOWN = lib.QXL_BITMAP_TOP_DOWN

STAMP_BITS = 16
STAMP_BLOCK = 16
"""The frame counter's blocks: 16 bits of 16x16 pixels (bench/stream.py and the
test client read them back)."""

PAN_PIXELS = 8
"""How far the picture moves per frame: fast enough that every pixel changes."""

FRAME_PERIOD_S = 1 / 60
"""The guest draws 60 frames a second, the machine's publication ceiling."""

IMAGE_ID_BASE = 0x7667_7075_1000_0000
"""Image ids of this guest's frames (never flagged for caching, so never reused)."""


def background(width: int, height: int) -> np.ndarray:
    """A (height, 2 * width, 4) B,G,R,X picture that tiles horizontally: the frames
    are windows of it, panning right to left."""
    span = 2 * width
    y, x = np.mgrid[0:height, 0:span].astype(np.float32)
    phase = 2 * np.pi * x / span
    cx, cy = width * 0.6, height * 0.5
    dx = np.abs((x - cx + span / 2) % span - span / 2)  # periodic: no seam where it wraps
    rings = np.sin(np.hypot(dx, y - cy) / 18.0)
    pixels = np.empty((height, span, 4), np.uint8)
    pixels[..., 0] = np.clip(128 + 90 * np.sin(phase) + 30 * rings, 0, 255)  # B
    pixels[..., 1] = np.clip(255 * y / max(1, height - 1) * 0.8 + 25 * rings, 0, 255)  # G
    pixels[..., 2] = np.clip(128 + 90 * np.cos(phase + y / 200.0), 0, 255)  # R
    pixels[..., 3] = 255
    return pixels


def draw_stamp(pixels: np.ndarray, value: int) -> None:
    height = pixels.shape[0]
    for bit in range(STAMP_BITS):
        on = 255 if value >> bit & 1 else 0
        pixels[height - STAMP_BLOCK:, bit * STAMP_BLOCK:(bit + 1) * STAMP_BLOCK, :3] = on


def read_stamp(pixels: np.ndarray) -> int:
    """The frame counter of a (height, width, 4) B,G,R,X picture (green of each
    block's centre above half)."""
    row = pixels[pixels.shape[0] - STAMP_BLOCK // 2]
    centres = row[STAMP_BLOCK // 2:STAMP_BITS * STAMP_BLOCK:STAMP_BLOCK, 1]
    return int(sum(int(g > 127) << bit for bit, g in enumerate(centres)))


class AnimScene:
    """Makes frame n's COPY command: the background's window at the pan offset."""

    def __init__(self, width: int, height: int) -> None:
        if width < STAMP_BITS * STAMP_BLOCK or height < STAMP_BLOCK:
            raise ValueError(f"the animation needs at least {STAMP_BITS * STAMP_BLOCK}x"
                             f"{STAMP_BLOCK} pixels, not {width}x{height}")
        self.width, self.height = width, height
        self._background = background(width, height)
        self.count = 0

    def frame(self) -> np.ndarray:
        offset = self.count * PAN_PIXELS % self.width
        pixels = self._background[:, offset:offset + self.width].copy()
        draw_stamp(pixels, self.count % (1 << STAMP_BITS))
        return pixels

    def tick(self) -> list[Command]:
        self.count += 1
        pixels = self.frame()
        w, h = self.width, self.height
        desc = ImageDescriptor(IMAGE_ID_BASE + self.count, IMAGE_TYPE_BITMAP, 0, w, h)
        image = BitmapImage(desc, BITMAP_FMT_32BIT, BITMAP_FLAG_TOP_DOWN, w, h, w * 4, None,
                            pixels.tobytes())
        return [copy_image(QRect(0, 0, h, w), image)]


def run_anim(driver: GuestDriver, stop: threading.Event, scene: AnimScene) -> None:
    """Drives `scene` through `driver` (primary already created) until `stop` is set,
    one frame per FRAME_PERIOD_S (frames that cannot keep up are late, not skipped)."""
    next_at = time.monotonic()
    while not stop.is_set():
        for cmd in scene.tick():
            driver.submit(cmd)
        driver.collect_releases()
        next_at = max(next_at + FRAME_PERIOD_S, time.monotonic())
        stop.wait(max(0.0, next_at - time.monotonic()))
