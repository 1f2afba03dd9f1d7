"""vgpu: a QXL device model rendered with OpenGL and served to stock SPICE clients."""

__version__ = "0.1.0"
