"""GL fixtures: one EGL context for the whole session (creating one costs), a fresh
Renderer on it per test; `dest_renderer` runs a test once per way of reading the destination
(framebuffer fetch where the GL offers it, scratch copies everywhere)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def gl_ctx():
    pytest.importorskip("moderngl")
    from vgpu.render.context import create_context

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


@pytest.fixture(params=["fetch", "copies"])
def dest_renderer(gl_ctx, request):
    from vgpu.render import Renderer
    from vgpu.render.context import FRAMEBUFFER_FETCH

    fetch = request.param == "fetch"
    if fetch and FRAMEBUFFER_FETCH not in gl_ctx.extensions:
        pytest.skip(f"this GL does not offer {FRAMEBUFFER_FETCH}")
    r = Renderer(gl_ctx, framebuffer_fetch=fetch)
    yield r
    r.close()
