"""Real VMs: QEMU's qxl with a Debian 12 guest (Linux's qxl DRM driver, xf86-video-qxl),
recorded by spice-server and replayed through `vgpu replay`'s path (guest memory, the
device, the renderer) to the picture that spice-gtk showed from the live VM, or, for the
recording whose live picture spice-server cannot reproduce either, to spice-server's own
replay of it. scripts/qemu-guest/ makes these recordings; data/README.txt tells how."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgpu.replay.player import replay

pytestmark = pytest.mark.gl

HERE = Path(__file__).resolve().parent / "data"


def _differing(renderer, picture: Path) -> int:
    want = np.asarray(Image.open(picture).convert("RGB"))
    got = renderer.read_pixels(0)[..., 2::-1]  # B, G, R, X -> R, G, B
    assert got.shape == want.shape
    return int((got != want).any(axis=2).sum())


# kms-desktop: VGA-mode primaries, the DRM driver's 64x64 then 1024x768 primary, text,
# scrolling, window moves (drawables the driver sends outside the 64x64 primary are dropped,
# as spice-server drops them); ums-composite: xf86-video-qxl driving the device, a mode
# change with a client connected, COMPOSITEs (xcompmgr shadows, a translucent xterm).
@pytest.mark.parametrize("name", ["qemu-kms-desktop", "qemu-ums-composite"])
def test_qemu_recording_matches_live_screenshot(renderer, name: str) -> None:
    result = replay(HERE / f"{name}.spice.xz", renderer)
    assert result.device.guest_bug is None
    assert _differing(renderer, HERE / f"{name}.png") == 0


def test_kms_xrandr_recording_matches_spice_server_replay(renderer) -> None:
    # an xrandr mode change under the DRM driver; tests/replay checks the picture against
    # spice-server's replay of the same file
    result = replay(HERE / "qemu-kms-xrandr.spice.xz", renderer)
    assert result.device.stats["dropped"] > 0  # the blits onto the 64x64 primary
    assert _differing(renderer, HERE / "qemu-kms-xrandr.spice-server.png") == 0
