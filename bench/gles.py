"""glmark2-es2 through vgpu beside glmark2-es2 directly on the same llvmpipe.

Per size, glmark2-es2 runs off-screen (`--off-screen -s WxH`) directly (Mesa's libEGL and
libGLESv2) and as the guest of `vgpu run --headless` (vgpu's libraries over the 3D ring,
executed by the same Mesa), rounds interleaved by the harness: every scene's FPS and
glmark2's score, for both (issue 15's target: the score through vgpu at least 80% of
direct). glmark2 needs an X display even off-screen: $DISPLAY, or an Xvfb started here.

    vgpu bench gles [--quick]

The scenes are glmark2 2023.01's default benchmark (Debian 12), each cut to a few seconds
(`:duration=`) so that a round stays short; --quick runs four of them at 800x600.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from vgpu.bench import HIGHER, Bench, Measurement, workload

ROOT = Path(__file__).resolve().parent.parent
SCENE = re.compile(r"^\[(?P<scene>[^\]]+)\] (?P<opts>.*?): FPS: (?P<fps>\d+)", re.M)
SCORE = re.compile(r"glmark2 Score: (\d+)")
XVFB_START_S = 1.0
"""Xvfb accepts clients within this on this machine."""

DEFAULT_BENCHMARK = (
    "build:use-vbo=false", "build:use-vbo=true", "texture:texture-filter=nearest",
    "texture:texture-filter=linear", "texture:texture-filter=mipmap",
    "shading:shading=gouraud", "shading:shading=blinn-phong-inf", "shading:shading=phong",
    "shading:shading=cel", "bump:bump-render=high-poly", "bump:bump-render=normals",
    "bump:bump-render=height", "effect2d:kernel=0,1,0;1,-4,1;0,1,0;",
    "effect2d:kernel=1,1,1,1,1;1,1,1,1,1;1,1,1,1,1;", "pulsar:light=false:quads=5:texture=false",
    "desktop:blur-radius=5:effect=blur:passes=1:separable=true:windows=4",
    "desktop:effect=shadow:windows=4",
    "buffer:columns=200:interleave=false:update-dispersion=0.9:update-fraction=0.5:"
    "update-method=map",
    "buffer:columns=200:interleave=false:update-dispersion=0.9:update-fraction=0.5:"
    "update-method=subdata",
    "buffer:columns=200:interleave=true:update-dispersion=0.9:update-fraction=0.5:"
    "update-method=map",
    "ideas:speed=duration", "jellyfish", "terrain", "shadow", "refract",
    "conditionals:fragment-steps=0:vertex-steps=0", "conditionals:fragment-steps=5:vertex-steps=0",
    "conditionals:fragment-steps=0:vertex-steps=5",
    "function:fragment-complexity=low:fragment-steps=5",
    "function:fragment-complexity=medium:fragment-steps=5",
    "loop:fragment-loop=false:fragment-steps=5:vertex-steps=5",
    "loop:fragment-steps=5:fragment-uniform=false:vertex-steps=5",
    "loop:fragment-steps=5:fragment-uniform=true:vertex-steps=5",
)
"""glmark2-es2 2023.01's default benchmark, as it names its scenes."""

QUICK = ("build:use-vbo=false", "texture:texture-filter=linear", "shading:shading=phong",
         "desktop:effect=shadow:windows=4")
SCENE_SECONDS, QUICK_SCENE_SECONDS = 3, 1
"""Each scene's duration (glmark2's default is 10 s): FPS settles within a second (with
--quick, 3 s scenes made gles 29 s of the 76 s of vgpu bench all --quick)."""


def run_glmark2(size: str, scenes: tuple[str, ...], through_vgpu: bool,
                env: dict[str, str], seconds: int = SCENE_SECONDS) -> dict[str, float]:
    cmd = ["glmark2-es2", "--off-screen", "-s", size]
    for s in scenes:
        cmd += ["-b", f"{s}:duration={seconds}"]
    if through_vgpu:
        cmd = [sys.executable, "-m", "vgpu.cli", "run", "--headless", "--", *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False).stdout
    figures: dict[str, float] = {}
    for m in SCENE.finditer(out):
        opts = ":".join(o for o in m["opts"].split(":") if not o.startswith("duration="))
        figures[f"{m['scene']}:{opts}" if opts else m["scene"]] = float(m["fps"])
    score = SCORE.search(out)
    figures["score"] = float(score.group(1)) if score else float("nan")
    return figures


@contextlib.contextmanager
def x_display(env: dict[str, str]) -> Iterator[dict[str, str]]:
    if env.get("DISPLAY"):
        yield env
        return
    display = f":{90 + os.getpid() % 100}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1920x1080x24"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(XVFB_START_S)
    try:
        yield dict(env, DISPLAY=display)
    finally:
        xvfb.terminate()
        xvfb.wait()


@workload("gles", "glmark2-es2 per scene: through vgpu run vs directly on llvmpipe",
          references=("direct",))
def gles(b: Bench) -> Iterator[Measurement]:
    if shutil.which("glmark2-es2") is None:
        yield b.value("glmark2-es2", "FPS", {"vgpu": float("nan")},
                      note="glmark2-es2 is not installed (Debian: glmark2-es2-x11)")
        return
    scenes = QUICK if b.quick else DEFAULT_BENCHMARK
    sizes = ("800x600",) if b.quick else ("800x600", "1920x1080")
    seconds = QUICK_SCENE_SECONDS if b.quick else SCENE_SECONDS
    figures = {s: ("FPS", HIGHER) for s in scenes}
    figures["score"] = ("glmark2 score", HIGHER)
    with x_display(dict(os.environ, PYTHONPATH=str(ROOT))) as env:
        for size in sizes:
            yield from b.observe(
                {"vgpu": lambda size=size: run_glmark2(size, scenes, True, env, seconds),
                 "direct": lambda size=size: run_glmark2(size, scenes, False, env, seconds)},
                figures, prefix=f"{size} ", rounds=b.rounds(3, 1))
