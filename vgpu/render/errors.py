"""The one exception the renderer raises for a bad operation."""


class RenderError(ValueError):
    """An operation the renderer refuses (bad rop, rect, size, surface or data); the device
    turns it into the guest-bug state. Raised before anything reaches GL."""
