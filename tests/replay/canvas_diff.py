"""One record file, two servers: the real spice-server's picture and vgpu's, side by side.

The real one: bench/peer's vgpu-spice-peer plays the file with spice-server's own
replay reader and worker, and spicy-screenshot (spice-gtk) takes what it serves
(images uncompressed, so the picture is the canvas's pixels). vgpu's: `replay` of
the same file through the guest driver, the device and the GL renderer. Used by
the tests and by bench/canvas_soak.py; loads without pytest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from spice_peer import SpicePeer, screenshot

from vgpu.replay.player import replay


def spice_server_picture(peer: Path, record: Path) -> np.ndarray:
    """The primary surface as spice-server draws `record`: H x W x 3 RGB."""
    with SpicePeer(peer, record, options=("--image-compression", "off")) as server:
        server.wait_done()
        shot = screenshot(server.port, record.with_suffix(".ppm"))
    return np.asarray(Image.open(shot).convert("RGB"))


def vgpu_picture(record: Path, renderer=None) -> np.ndarray:
    """The primary surface as vgpu draws `record`: H x W x 3 RGB (a new GL renderer
    unless one is given)."""
    from vgpu.render import Renderer

    own = renderer is None
    renderer = Renderer() if own else renderer
    try:
        replay(record, renderer)
        return renderer.read_pixels(0)[:, :, 2::-1].copy()
    finally:
        if own:
            renderer.close()


def differing(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels that differ in any channel (all of them when the sizes differ)."""
    if a.shape != b.shape:
        return max(a.shape[0] * a.shape[1], b.shape[0] * b.shape[1])
    return int((a != b).any(axis=-1).sum())
