"""The C encoders and the QUIC decoder under AddressSanitizer and UBSan: a C driver
built with the sources runs random and adversarial frames through every entry point,
every QUIC stream, cut, bit-flipped and relabelled as the other decoded types, back through
the decoder, and noise after headers of every decoded type."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ENCODE = HERE.parents[1] / "csrc" / "encode"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-g", "-O1"]
# Random cases per run: a couple of seconds with the sanitizers on.
CASES = 2000


def test_encoders_clean_under_asan_and_ubsan() -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    with tempfile.TemporaryDirectory(prefix="vgpu-asan-") as tmp:
        exe = Path(tmp) / "driver"
        build = subprocess.run(
            [cc, *SANITIZE, "-Wall", "-Wextra", "-Werror", f"-I{ENCODE}",
             str(HERE / "sanitize_driver.c"), *map(str, sorted(ENCODE.glob("*.c"))),
             "-llz4", "-ljpeg", "-o", str(exe)],
            capture_output=True, text=True)
        if build.returncode != 0 and "sanitizer" in build.stderr and "cannot find" in build.stderr:
            pytest.skip(f"sanitizer runtime not installed: {build.stderr.strip()[-200:]}")
        assert build.returncode == 0, build.stderr
        run = subprocess.run([str(exe), str(CASES), "12345"], capture_output=True, text=True,
                             timeout=240, env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
                                               "UBSAN_OPTIONS": "print_stacktrace=1"})
        assert run.returncode == 0, run.stdout + run.stderr[-4000:]
        assert "runtime error" not in run.stderr and "ERROR: AddressSanitizer" not in run.stderr
        assert f"{CASES} cases, 0 failures" in run.stdout
