"""UPDATE_AREA write-back with the GL renderer, whose read_area gives only what guest memory
lacks: over any sequence of draws, 3D presents and UPDATE_AREAs, guest memory (modelled here
as the device writes it: each piece copied in) equals the rendered surface on every area
written back. A piece left out by the renderer's bookkeeping (unsynced rects split around an
area, merged, collapsed past MAX_DAMAGE_RECTS; a present by copy written into the host
shadow, one by drawing into the texture only) shows up as a stale pixel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.render.gl3d_helpers import FakeGuest, batch, enum, gl, vgpu
from vgpu.device.commands import (
    Drawable,
    Fill,
    QMask,
    QPoint,
    QRect,
    SolidBrush,
)
from vgpu.render import enums as E
from vgpu.render import pixels as px

pytestmark = pytest.mark.gl

W, H = 40, 24
SID = 5
FORMATS = [E.SURFACE_FMT_32_xRGB, E.SURFACE_FMT_16_565]
PRESENT_PATHS = ["copy", "draw"]  # Gl3dExecutor.present_copy: by copies, or by drawing
NO_MASK = QMask(0, QPoint(0, 0), None)


@pytest.fixture(scope="module")
def gl_renderer():
    from vgpu.render import Renderer
    from vgpu.render.context import create_context

    try:
        ctx = create_context()
    except Exception as e:  # no EGL here: the renderer's own tests say why
        pytest.skip(f"no OpenGL context: {e}")
    r = Renderer(ctx)
    yield r
    r.close()
    ctx.release()


def _box(draw: st.DrawFn) -> tuple[int, int, int, int]:
    x0, y0 = draw(st.integers(0, W - 1)), draw(st.integers(0, H - 1))
    return x0, y0, draw(st.integers(x0 + 1, W)), draw(st.integers(y0 + 1, H))


@st.composite
def steps(draw: st.DrawFn) -> list[tuple]:
    """Fills (some clipped to two rects, so not all take the fast path; some tiny, so that
    more than MAX_DAMAGE_RECTS pile up), 3D presents of a cleared drawable and UPDATE_AREAs
    of random areas."""
    out = []
    for _ in range(draw(st.integers(1, 90))):
        kind = draw(st.sampled_from(["fill", "fill", "dot", "clipped", "update", "present"]))
        if kind == "present":
            out.append(("present", _box(draw), draw(st.integers(0, 2**24 - 1))))
        elif kind == "dot":
            x, y = draw(st.integers(0, W - 1)), draw(st.integers(0, H - 1))
            out.append(("fill", (x, y, x + 1, y + 1), None, draw(st.integers(0, 2**24 - 1))))
        elif kind == "update":
            out.append(("update", _box(draw)))
        else:
            clip = [_box(draw), _box(draw)] if kind == "clipped" else None
            out.append(("fill", _box(draw), clip, draw(st.integers(0, 2**24 - 1))))
    return out


def _rect(box: tuple[int, int, int, int]) -> QRect:
    x0, y0, x1, y1 = box
    return QRect(y0, x0, y1, x1)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fmt=st.sampled_from(FORMATS), path=st.sampled_from(PRESENT_PATHS),
       with_data=st.booleans(), seq=steps(), seed=st.integers(0, 2**32 - 1))
def test_guest_memory_matches_the_surface_on_every_area_written_back(gl_renderer, fmt, path,
                                                                     with_data, seq, seed):
    from vgpu.render.gl3d import Gl3dExecutor

    r = gl_renderer
    r.reset()
    r.reset_3d()  # the 3D executor's contexts and drawables go too
    if r.gl3d is None:
        r.gl3d = Gl3dExecutor(r)
    r.gl3d.present_copy = path == "copy"
    guest = FakeGuest()
    nbytes = px.SURFACE_BPP[fmt] // 8
    # guest memory: the initial content the surface is made from, or anything (the renderer
    # starts from zeros and must write all of it back)
    raw = np.random.default_rng(seed).integers(0, 256, (H, W * nbytes), dtype=np.uint8)
    mem = px.to_memory(px.from_memory(raw, fmt, W, H), fmt)  # as the renderer keeps it
    r.surface_created(SID, W, H, W * nbytes, fmt, mem.copy() if with_data else None)
    r.execute_3d(batch(vgpu("CONTEXT_CREATE", 1, 3, 0), vgpu("SURFACE_CREATE", 1, W, H, 0, 0),
                       vgpu("MAKE_CURRENT", 1, 1)), guest)
    for step in seq:
        if step[0] == "present":
            _, (x0, y0, x1, y1), color = step
            r.execute_3d(batch(gl("glClearColor", *(c / 255 for c in color.to_bytes(3, "big")),
                                  1.0),
                               gl("glClear", enum("GL_COLOR_BUFFER_BIT")),
                               vgpu("PRESENT", 0, 0, 0, x1 - x0, y1 - y0, SID, x0, y0, 0)),
                         guest)
            continue
        if step[0] == "fill":
            _, box, clip, color = step
            clips = tuple(_rect(c) for c in clip) if clip is not None else None
            r.execute(Drawable(bbox=_rect(box), clip=clips, surface_id=SID,
                               op=Fill(SolidBrush(color), E.ROPD_OP_PUT, NO_MASK)))
            continue
        x0, y0, x1, y1 = step[1]
        for (t, left, b, right), pixels in r.read_area(SID, _rect(step[1])):
            assert y0 <= t < b <= y1 and x0 <= left < right <= x1
            mem[t:b, left * nbytes:right * nbytes] = pixels
        shown = px.to_memory(r.read_pixels(SID), fmt)
        stale = np.argwhere(mem[y0:y1, x0 * nbytes:x1 * nbytes]
                            != shown[y0:y1, x0 * nbytes:x1 * nbytes])
        assert len(stale) == 0, f"guest memory stale at {stale[0]} of {step[1]}"
    assert guest.counts == {"errors": 0, "lost_contexts": 0}
