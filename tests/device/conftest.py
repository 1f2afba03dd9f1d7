"""Device test fixtures live in qxl_support (the guest tests share them)."""

from qxl_support import backend, capture, device, guest  # noqa: F401
