"""Fixtures of the replay tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from spice_check import build_checker


@pytest.fixture(scope="session")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_checker(tmp_path_factory.mktemp("spice"))
