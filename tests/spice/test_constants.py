"""Every protocol number in vgpu.spice.constants equals the system's spice-protocol headers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vgpu.spice import constants

HEADERS = Path("/usr/include/spice-1")  # Debian's libspice-protocol-dev


@pytest.mark.skipif(
    shutil.which("cc") is None or not (HEADERS / "spice" / "protocol.h").exists(),
    reason="needs a C compiler and spice-protocol headers",
)
def test_constants_match_spice_protocol_headers(tmp_path):
    names = [n for n in dir(constants) if n.startswith("SPICE_") and n != "SPICE_MAGIC"]
    lines = "\n".join(f'    printf("{n} %lld\\n", (long long)({n}));' for n in names)
    source = tmp_path / "values.c"
    source.write_text(
        "#include <stdio.h>\n#include <spice/protocol.h>\n"
        f"int main(void) {{\n{lines}\n"
        '    printf("SPICE_MAGIC %lld\\n", (long long)SPICE_MAGIC);\n    return 0;\n}\n'
    )
    binary = tmp_path / "values"
    subprocess.run(["cc", f"-I{HEADERS}", str(source), "-o", str(binary)], check=True)
    out = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    values = dict(line.split() for line in out.splitlines())
    for name in names:
        assert int(values[name]) == getattr(constants, name), name
    assert int(values["SPICE_MAGIC"]) == int.from_bytes(constants.SPICE_MAGIC, "little")
