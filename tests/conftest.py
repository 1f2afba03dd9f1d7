"""Shared test fixtures."""

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def gl3d_missing() -> str | None:
    """Why the whole 3D ring path (the guest driver, the device's ring, the renderer's
    executor) is not in this tree yet, or None when it is."""
    import importlib.util

    if importlib.util.find_spec("vgpu.render.gl3d") is None:
        return "no 3D executor yet (vgpu.render.gl3d, gl3d-host)"
    return None


@pytest.fixture(scope="session")
def gl3d_stack() -> None:
    """Skips a test that needs the whole 3D ring path while it is missing."""
    reason = gl3d_missing()
    if reason:
        pytest.skip(reason)
