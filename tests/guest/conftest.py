"""The guest tests share the device tests' fixtures and strategies (tests/device)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "device"))

from qxl_support import backend, capture, device, guest  # noqa: F401
