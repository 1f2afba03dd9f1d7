"""Deterministic sample frames for encoder benchmarks and tests.

Two kinds of content decide which codec wins: a desktop (flat colours,
windows, text, a screenshot pasted in) and a photograph (smooth shading with
sensor-like noise).  Both are B,G,R,X frames as the encoders take them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Words drawn into the desktop's windows: text is what desktop frames are
# mostly made of besides flat colour.
_WORDS = (
    "vgpu", "spice", "encoder", "frame", "tile", "damage", "window", "terminal", "build",
    "test", "render", "surface", "image", "cache", "stream", "client", "server", "channel",
    "display", "cursor", "input",
)


def bgrx_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) RGB uint8 -> a contiguous (h, w, 4) B,G,R,X frame with X = 255."""
    h, w = rgb.shape[:2]
    out = np.empty((h, w, 4), np.uint8)
    out[..., 0] = rgb[..., 2]
    out[..., 1] = rgb[..., 1]
    out[..., 2] = rgb[..., 0]
    out[..., 3] = 255
    return out


def desktop_frame(width: int = 1920, height: int = 1080,
                  screenshot: np.ndarray | None = None) -> np.ndarray:
    """A desktop: flat background, a panel, windows with title bars and text.

    screenshot: an optional (h, w, 3) RGB image pasted as one more window
    (the benchmark uses the project's Xspice screenshot)."""
    rng = np.random.default_rng(1234)
    img = Image.new("RGB", (width, height), (52, 101, 164))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    draw.rectangle((0, 0, width, 27), fill=(32, 32, 32))
    for k in range(12):
        draw.text((10 + 90 * k, 8), _WORDS[k % len(_WORDS)], fill=(230, 230, 230), font=font)
    if screenshot is not None:
        img.paste(Image.fromarray(screenshot[: height - 60, : width - 60]), (40, 50))
    windows = [(900, 120, 1800, 620), (1100, 560, 1880, 1040), (120, 700, 1000, 1060)]
    for i, (x0, y0, x1, y1) in enumerate(windows):
        draw.rectangle((x0 + 6, y0 + 6, x1 + 6, y1 + 6), fill=(30, 60, 100))  # shadow
        draw.rectangle((x0, y0, x1, y1), fill=(246, 245, 244), outline=(120, 120, 120))
        draw.rectangle((x0, y0, x1, y0 + 30), fill=(222, 221, 218))
        draw.text((x0 + 12, y0 + 10), f"window {i} - {_WORDS[i]}", fill=(40, 40, 40), font=font)
        for bx in range(3):
            draw.ellipse((x1 - 26 - 22 * bx, y0 + 8, x1 - 12 - 22 * bx, y0 + 22),
                         fill=(200, 80, 60) if bx == 0 else (160, 160, 160))
        y = y0 + 42
        while y < y1 - 16:
            words = rng.choice(_WORDS, size=int(rng.integers(3, 14)))
            draw.text((x0 + 14, y), " ".join(words), fill=(20, 20, 20), font=font)
            y += 15
    return bgrx_from_rgb(np.asarray(img))


def photo_frame(width: int = 1920, height: int = 1080, seed: int = 7) -> np.ndarray:
    """A photograph-like frame: smooth low-frequency shading plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        acc = 90.0 + 40.0 * (x / width) + 30.0 * (y / height) * (c - 1)
        for _ in range(6):
            fx, fy = rng.uniform(0.5, 6.0, 2) * (2 * np.pi)
            phase = rng.uniform(0, 2 * np.pi)
            acc = acc + rng.uniform(8, 30) * np.sin(fx * x / width + fy * y / height + phase)
        rgb[..., c] = acc
    rgb += rng.normal(0.0, 3.0, (height, width, 3)).astype(np.float32)
    return bgrx_from_rgb(np.clip(rgb, 0, 255).astype(np.uint8))
