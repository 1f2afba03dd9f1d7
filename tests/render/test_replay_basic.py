"""Real data: the Xspice recording replayed through the renderer equals the picture
spice-gtk showed for the same session, pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from replay_driver import replay

pytestmark = pytest.mark.gl


def test_basic_recording_matches_spice_gtk_screenshot(renderer, data_dir):
    drawn = replay(renderer, data_dir / "basic.spice.xz")
    assert drawn == 912
    frame = renderer.snapshot()
    assert frame is not None
    want = np.asarray(Image.open(data_dir / "basic.png").convert("RGB"))
    got = frame.pixels[..., 2::-1]  # B, G, R, X -> R, G, B
    assert got.shape == want.shape
    differing = int((got != want).any(axis=2).sum())
    assert differing == 0, f"{differing} pixels differ"
