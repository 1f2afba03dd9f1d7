"""The 3D executor's C (csrc/gl3d/, with the decoders generated as the build does) under
AddressSanitizer and UBSan with real GL (Mesa through EGL): gl3d_sanitize_driver.c runs
mutated, truncated and random batches grown from the fuzz test's seeds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.render.gl3d_helpers import (
    FakeGuest,
    batch,
    enum,
    gl,
    triangle_draw,
    triangle_program,
    vgpu,
)
from tests.render.test_gl3d import clear, setup
from tests.render.test_gl3d_hostile import FUZZ_CTX, seed_body

HERE = Path(__file__).resolve().parent
GL3D = HERE.parents[1] / "csrc" / "gl3d"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-g", "-O1"]
CASES = 1500  # about 30 s with the sanitizers on llvmpipe


@pytest.mark.slow
def test_gl3d_clean_under_asan_and_ubsan() -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    with tempfile.TemporaryDirectory(prefix="vgpu-gl3d-asan-") as tmp:
        gen = Path(tmp) / "gen"
        subprocess.run([sys.executable, str(GL3D / "generate.py"), str(gen)], check=True)
        exe = Path(tmp) / "driver"
        build = subprocess.run(
            [cc, *SANITIZE, "-Wall", "-Wextra", "-Werror", f"-I{GL3D}", f"-I{gen}",
             f"-I{GL3D.parent}",
             str(HERE / "gl3d_sanitize_driver.c"), str(GL3D / "gl3d.c"), str(gen / "gl3d_gen.c"),
             "-lEGL", "-ldl", "-o", str(exe)], capture_output=True, text=True)
        if build.returncode != 0 and "sanitizer" in build.stderr and "cannot find" in build.stderr:
            pytest.skip(f"sanitizer runtime not installed: {build.stderr.strip()[-200:]}")
        assert build.returncode == 0, build.stderr
        guest = FakeGuest()
        prologue = Path(tmp) / "prologue.bin"
        prologue.write_bytes(batch(*setup(), *triangle_program(), *triangle_draw(),
                                   gl("glBindTexture", enum("GL_TEXTURE_2D"), 4),
                                   gl("glTexImage2D", enum("GL_TEXTURE_2D"), 0, enum("GL_RGBA"),
                                      8, 8, 0, enum("GL_RGBA"), enum("GL_UNSIGNED_BYTE"), None)))
        body = Path(tmp) / "body.bin"
        body.write_bytes(batch(*seed_body(guest)))
        staging = Path(tmp) / "present.bin"
        staging.write_bytes(batch(*present_body()))
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
                   UBSAN_OPTIONS="print_stacktrace=1")
        run = subprocess.run([str(exe), str(CASES), "12345", str(prologue), str(body),
                              str(staging)],
                             capture_output=True, text=True, timeout=600, env=env)
        if run.returncode == 3:
            pytest.skip(f"no GL for the driver: {run.stdout.strip()}")
        assert run.returncode == 0, run.stdout + run.stderr[-4000:]
        assert "runtime error" not in run.stderr and "ERROR: AddressSanitizer" not in run.stderr
        assert f"{CASES} cases, 0 failures" in run.stdout
        # PRESENT's copies into an exact host image ran too (its bounds are ASan's)
        copied = re.search(r"(\d+) presents copied", run.stdout)
        assert copied is not None and int(copied.group(1)) > 0, run.stdout
        # and g3_execute's own PRESENTs (staged), g3_present_decode's checks, and the
        # FENCE that g3_run takes at a batch's end
        counts = re.search(r"(\d+) staged, (\d+) decoded, (\d+) fenced", run.stdout)
        assert counts is not None and min(map(int, counts.groups())) > 0, run.stdout


def present_body() -> list[list[int]]:
    """PRESENTs g3_execute runs itself: from a framebuffer of an RGBA8 texture onto surface
    0 (the driver's target), whole, by rects, off its edges."""
    return [
        vgpu("CONTEXT_CREATE", FUZZ_CTX, 3, 1), vgpu("MAKE_CURRENT", FUZZ_CTX, 0),
        gl("glGenTextures", 1, [7]), gl("glBindTexture", enum("GL_TEXTURE_2D"), 7),
        gl("glTexStorage2D", enum("GL_TEXTURE_2D"), 1, enum("GL_RGBA8"), 40, 24),
        gl("glGenFramebuffers", 1, [6]), gl("glBindFramebuffer", enum("GL_FRAMEBUFFER"), 6),
        gl("glFramebufferTexture2D", enum("GL_FRAMEBUFFER"), enum("GL_COLOR_ATTACHMENT0"),
           enum("GL_TEXTURE_2D"), 7, 0),
        *clear(),
        vgpu("PRESENT", 6, 0, 0, 40, 24, 0, 10, 20, 0),
        vgpu("PRESENT", 6, 2, 3, 30, 20, 0, 60, 60, 2, 60, 60, 5, 5, 70, 62, 8, 8),
        vgpu("PRESENT", 6, (-4) & 0xFFFFFFFF, 1, 40, 24, 0, (-3) & 0xFFFFFFFF, 50, 0),
        vgpu("FENCE", 5, 0, 1),
    ]
