"""Unmodified GL ES programs as vgpu guests (`vgpu run`, libEGL/libGLESv2 from csrc/gles/),
each compared with the same program run directly on Mesa's llvmpipe."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
VGPU_RUN = [sys.executable, "-m", "vgpu.cli", "run"]
HERE = Path(__file__).resolve().parent
GLMARK2 = shutil.which("glmark2-es2")
ES2GEARS = shutil.which("es2gears_x11") or shutil.which("es2gears_x11.x86_64-linux-gnu")
VALIDATION = re.compile(r"^\[(?P<scene>[^\]]+)\] (?P<opts>.*?): Validation: (?P<result>\w+)",
                        re.M)

pytestmark = [
    pytest.mark.gl,
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed"),
]


@pytest.fixture(scope="module")
def env():
    """An Xvfb screen of 1920x1080 (glmark2 needs X even off-screen) and the libraries."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "csrc" / "gles"),
                    f"PYTHON={sys.executable}"], check=True)
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1920x1080x24"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        display = f.readline().strip()
    yield dict(os.environ, DISPLAY=f":{display}", PYTHONPATH=str(ROOT))
    xvfb.terminate()
    xvfb.wait()


def run(cmd, env, timeout=600):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def validations(out: str) -> dict[str, str]:
    return {f"{m['scene']} {m['opts']}": m["result"] for m in VALIDATION.finditer(out)}


def compare_validation(env, scenes: list[str]) -> dict[str, str]:
    """Validation results directly and through vgpu, which must agree; through vgpu every
    call is checked with the host's glGetError (VGPU_GLES_CHECK) and none may fail."""
    args = ["glmark2-es2", "--validate"] + [a for s in scenes for a in ("-b", s)]
    direct = validations(run(args, env).stdout)
    result = run([*VGPU_RUN, "--headless", "--", *args], dict(env, VGPU_GLES_CHECK="1"))
    through = validations(result.stdout)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "GL error" not in result.stderr and "not implemented" not in result.stderr, \
        result.stderr[-2000:]
    assert set(direct) == set(through), (direct, through)
    assert "vgpu" in result.stdout  # GL_RENDERER names vgpu: the run went through it
    succeeded = {k for k, v in direct.items() if v == "Success"}
    assert {k for k, v in through.items() if v == "Success"} == succeeded, (direct, through)
    return direct


@pytest.fixture(scope="module")
def abuse(tmp_path_factory):
    exe = tmp_path_factory.mktemp("abuse") / "abuse"
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(HERE / "abuse.c"), "-lEGL", "-lGLESv2"], check=True)
    return exe


def test_a_program_reads_back_what_mesa_draws_directly(env, abuse):
    direct = run([str(abuse), "good"], dict(env, EGL_PLATFORM="surfaceless"))
    through = run([*VGPU_RUN, "--headless", "--", str(abuse), "good"], env)
    assert direct.returncode == 0 and through.returncode == 0, through.stderr[-2000:]
    assert through.stdout == direct.stdout
    assert "error 0x0" in direct.stdout


def test_bad_programs_leave_the_device_serving_the_next(env, abuse):
    """Double frees, deleted objects, wild sizes, then death mid-frame (SIGKILL): the next
    program on the same running vgpu draws and reads back as on Mesa directly."""
    direct_bad = run([str(abuse), "bad"], dict(env, EGL_PLATFORM="surfaceless"))
    direct_good = run([str(abuse), "good"], dict(env, EGL_PLATFORM="surfaceless"))
    script = f"{abuse} bad; echo bad-status $?; {abuse} good; {abuse} good"
    through = run([*VGPU_RUN, "--headless", "--", "sh", "-c", script], env)
    assert through.returncode == 0, through.stderr[-2000:]
    first_error = direct_bad.stdout.splitlines()[0]
    assert through.stdout.splitlines() == [first_error, "bad-status 137",
                                           *[direct_good.stdout.strip()] * 2]


@pytest.mark.skipif(ES2GEARS is None, reason="es2gears_x11 (mesa-utils-bin) is not installed")
def test_es2gears_runs_and_shows_its_gears(env, tmp_path):
    png = tmp_path / "gears.png"
    result = run([*VGPU_RUN, "--headless", "--frame-out", str(png), "--",
                             "timeout", "4", ES2GEARS], env)
    assert result.returncode == 124, result.stderr[-2000:]  # ran until timeout ended it
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    # its window (300x300 at the screen's top left) holds the red, green and blue gears
    window = rgb[:300, :300]
    for channel in range(3):
        others = [c for c in range(3) if c != channel]
        mask = (window[..., channel] > 120) & (window[..., others].max(axis=-1) < 60)
        assert mask.sum() > 200, f"no gear of colour {channel}"
    assert rgb[400:, 400:].max() == 0  # nothing outside the window


@pytest.mark.skipif(GLMARK2 is None, reason="glmark2-es2 (glmark2-es2-x11) is not installed")
def test_glmark2_scenes_validate_as_directly(env):
    """A few quick scenes: client arrays, VBOs, mipmapped textures, mapped buffers."""
    results = compare_validation(env, ["build:use-vbo=false", "build:use-vbo=true",
                                       "texture:texture-filter=mipmap",
                                       "buffer:update-method=map:interleave=false"])
    assert list(results.values()) == ["Success"] * 4


@pytest.mark.slow
@pytest.mark.skipif(GLMARK2 is None, reason="glmark2-es2 (glmark2-es2-x11) is not installed")
def test_glmark2_default_benchmark_validates_as_directly(env):
    """Every scene of glmark2's default benchmark (26-27 validate on Debian 12)."""
    results = compare_validation(env, [])
    assert sum(v == "Success" for v in results.values()) >= 26


@pytest.mark.slow
@pytest.mark.skipif(GLMARK2 is None, reason="glmark2-es2 (glmark2-es2-x11) is not installed")
@pytest.mark.skipif(shutil.which("spicy-screenshot") is None,
                    reason="spicy-screenshot (spice-client-gtk) is not installed")
def test_a_spice_client_sees_glmark2_move(env, tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "machine"))
    from test_cli_end_to_end import free_port, screenshot

    port = free_port()
    proc = subprocess.Popen([*VGPU_RUN, "--port", str(port), "--", "glmark2-es2", "-b",
                                        "build:duration=30"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        shots = []
        deadline = time.monotonic() + 60
        while len(shots) < 2:
            rgb = screenshot(port, tmp_path / f"{len(shots)}.png")
            # glmark2's 800x600 window sits at the screen's top left
            if rgb[:600, :800].max() > 0 and (not shots or not np.array_equal(rgb, shots[0])):
                shots.append(rgb)
            assert time.monotonic() < deadline, "the client never saw the scene move"
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_process_speaking_the_socket_badly_is_closed_and_the_next_runs(env, abuse):
    script = f"{sys.executable} {HERE / 'hostile_client.py'}; {abuse} good"
    direct_good = run([str(abuse), "good"], dict(env, EGL_PLATFORM="surfaceless"))
    through = run([*VGPU_RUN, "--headless", "--", "sh", "-c", script], env)
    assert through.returncode == 0, through.stderr[-2000:]
    assert through.stdout.splitlines() == ["outside arena closed: True",
                                           "unknown message closed: True", "garbage sent",
                                           direct_good.stdout.strip()]
