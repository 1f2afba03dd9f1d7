"""Real data: Xspice recordings replayed through the renderer equal the picture spice-gtk
showed for the same session, pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from replay_driver import replay

pytestmark = pytest.mark.gl

HERE = Path(__file__).resolve().parent / "data"


def _check(renderer, record: Path, picture: Path, drawables: int) -> None:
    assert replay(renderer, record) == drawables
    frame = renderer.snapshot()
    assert frame is not None
    want = np.asarray(Image.open(picture).convert("RGB"))
    got = frame.pixels[..., 2::-1]  # B, G, R, X -> R, G, B
    assert got.shape == want.shape
    differing = int((got != want).any(axis=2).sum())
    assert differing == 0, f"{differing} pixels differ"


def test_basic_recording_matches_spice_gtk_screenshot(renderer, data_dir):
    _check(renderer, data_dir / "basic.spice.xz", data_dir / "basic.png", 912)


# images: photo-like xwud pictures (some partly off-screen) over xsetroot -bitmap tiles;
# render: RENDER clients (Xft text, xclock/xlogo -render, x11perf aa/composite tests), which
# Xspice draws in software (it sends no COMPOSITE); windows: twm moves, resizes and raises
# overlapping windows, one dragged by its title bar, one partly off-screen.
@pytest.mark.parametrize(("name", "drawables"), [("texts", 1062), ("scroll", 5342),
                                                 ("images", 841), ("render", 576),
                                                 ("windows", 5830)])
def test_own_recordings_match_screenshots(renderer, name, drawables):
    _check(renderer, HERE / f"{name}.spice.xz", HERE / f"{name}.png", drawables)


@pytest.mark.slow
def test_x11perf_recording_matches_screenshot(renderer):
    _check(renderer, HERE / "perf.spice.xz", HERE / "perf.png", 32737)
