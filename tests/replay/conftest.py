"""Fixtures of the replay tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from spice_check import build_checker

# bench/peer's helper, shared with the bench workloads
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "peer"))
from spice_peer import build_peer


@pytest.fixture(scope="session")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_checker(tmp_path_factory.mktemp("spice"))


@pytest.fixture(scope="session")
def peer() -> Path:
    exe = build_peer()
    if isinstance(exe, str):
        pytest.skip(exe)
    return exe

# tests/spice's GlibClient, the spice-gtk library client the cursor tests watch with
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spice"))
