"""Turns one of our C headers into text that cffi's cdef() accepts.

Our headers are the single source of truth for binary layouts: the C compiler
reads them as they are, and cffi reads the same declarations with the
preprocessor lines it cannot parse (include guards, #include, #pragma pack)
left out. Integer #defines are kept: cdef understands those.
"""

import os
from pathlib import Path


def cdef_text(header: Path) -> str:
    kept = []
    for line in header.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith("#define"):
            continue
        if stripped.startswith("#define") and len(stripped.split()) < 3:
            continue  # a bare guard macro such as `#define QXL_ABI_H`
        kept.append(line)
    return "\n".join(kept)


def compile_flags() -> tuple[list[str], list[str]]:
    """Compiler and linker flags of every C extension: warnings on, and with
    VGPU_SANITIZE=1 the ASan/UBSan build the sanitizer tests load."""
    cflags = ["-O2", "-Wall", "-Wextra"]
    ldflags: list[str] = []
    if os.environ.get("VGPU_SANITIZE") == "1":
        sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]
        cflags += sanitize
        ldflags += sanitize
    return cflags, ldflags
