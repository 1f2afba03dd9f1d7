"""GL fixtures: one EGL context for the whole session (creating one costs), a fresh
Renderer on it per test."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def gl_ctx():
    pytest.importorskip("moderngl")
    from vgpu.render.gl import create_context

    try:
        ctx = create_context()
    except Exception as exc:  # no EGL/GL on this machine
        pytest.skip(f"no OpenGL context: {exc}")
    yield ctx
    ctx.release()


@pytest.fixture
def renderer(gl_ctx):
    from vgpu.render import Renderer

    r = Renderer(gl_ctx)
    yield r
    r.close()
