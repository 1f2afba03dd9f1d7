"""The OpenGL renderer: surfaces, 2D operations, the image cache, damage and readback.

`Renderer` (vgpu.render.gl) implements `vgpu.device.backend.DisplayBackend` on one moderngl
context and adds `snapshot()` (the primary as an immutable `vgpu.display.Frame`), `flush()`,
`read_pixels()`, `surface_ids()`, `last_damage` and `close()`. Every refused operation raises
`RenderError`. `vgpu.render.reference` models the same semantics in numpy, for tests.
"""

from vgpu.render.errors import RenderError

__all__ = ["RenderError", "Renderer"]


def __getattr__(name: str) -> object:
    # The GL module loads moderngl; importing the error type alone must not need it.
    if name == "Renderer":
        from vgpu.render.gl import Renderer

        return Renderer
    raise AttributeError(name)
