"""bench/peer's vgpu-spice-peer: the real spice-server serving a record file to stock clients."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from spice_peer import SpicePeer, screenshot


def test_the_peer_serves_the_xspice_fixture_as_xspice_showed_it(
        peer: Path, data_dir: Path, tmp_path: Path) -> None:
    if shutil.which("spicy-screenshot") is None:
        pytest.skip("spicy-screenshot is not installed")
    record = tmp_path / "basic.spice"
    record.write_bytes(lzma.decompress((data_dir / "basic.spice.xz").read_bytes()))
    with SpicePeer(peer, record, options=("--image-compression", "off")) as server:
        assert server.wait_done() == 914
        shot = np.asarray(Image.open(screenshot(server.port, tmp_path / "shot.ppm")))
    # the screenshot spicy-screenshot took of Xspice itself when the file was recorded
    want = np.asarray(Image.open(data_dir / "basic.png").convert("RGB"))
    assert shot.shape == want.shape and int((shot != want).any(axis=-1).sum()) == 0


def test_wait_client_holds_the_replay_until_a_display_connects(
        peer: Path, data_dir: Path, tmp_path: Path) -> None:
    if shutil.which("spicy-screenshot") is None:
        pytest.skip("spicy-screenshot is not installed")
    record = tmp_path / "basic.spice"
    record.write_bytes(lzma.decompress((data_dir / "basic.spice.xz").read_bytes()))
    with SpicePeer(peer, record, options=("--wait-client",)) as server:
        with pytest.raises(RuntimeError):
            server.wait_done(timeout=1.0)
        screenshot(server.port, tmp_path / "shot.ppm")
        assert server.wait_done() == 914
