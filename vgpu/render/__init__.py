"""The OpenGL renderer: surfaces, 2D operations, the image cache, damage and readback."""
