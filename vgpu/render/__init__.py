"""The OpenGL renderer: surfaces, 2D operations, the image cache, damage and readback."""

from vgpu.render.errors import RenderError

__all__ = ["RenderError", "Renderer"]


def __getattr__(name: str) -> object:
    # The GL module loads moderngl; importing the error type alone must not need it.
    if name == "Renderer":
        from vgpu.render.gl import Renderer

        return Renderer
    raise AttributeError(name)
