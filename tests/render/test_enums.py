"""The renderer's enumeration numbers against the system's spice-protocol headers: the values
enums.py types itself, and, for those it takes from the ABI header, that each of its names
maps to the right header name."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vgpu.render import enums


def _header_dir() -> Path:
    if shutil.which("pkg-config") is None:
        pytest.skip("pkg-config not installed")
    res = subprocess.run(["pkg-config", "--cflags", "spice-protocol"], capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
        pytest.skip("spice-protocol headers not installed")
    inc = Path(res.stdout.split()[0][2:])
    return inc / "spice"


def _enum_values(text: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for body in re.findall(r"enum\s*\w*\s*\{(.*?)\}", text, re.S):
        nxt = 0
        for item in body.split(","):
            item = re.sub(r"//.*|/\*.*?\*/", "", item, flags=re.S).strip()
            if not item:
                continue
            name, _, expr = item.partition("=")
            name = name.strip()
            if expr.strip():
                expr = re.sub(r"\b([A-Z_][A-Z0-9_]+)\b", lambda m: str(values[m.group(1)]),
                              expr.strip())
                nxt = int(eval(expr, {}))  # integer constant expressions from the header
            values[name] = nxt
            nxt += 1
    return values


def test_values_match_headers():
    d = _header_dir()
    vals = _enum_values((d / "enums.h").read_text()) | _enum_values((d / "qxl_dev.h").read_text())
    checked = 0
    for name in dir(enums):
        if not name.isupper():
            continue
        full = name if name.startswith("QXL_") else "SPICE_" + name  # qxl_dev.h's own
        full = full.replace("SPICE_SCALE_MODE", "SPICE_IMAGE_SCALE_MODE")
        assert full in vals, full
        assert getattr(enums, name) == vals[full], name
        checked += 1
    assert checked > 40
