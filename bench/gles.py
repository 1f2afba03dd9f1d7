"""glmark2-es2 through vgpu beside glmark2-es2 directly on the same llvmpipe.

Per size, glmark2-es2 runs off-screen (`--off-screen -s WxH`) directly (Mesa's libEGL and
libGLESv2) and as the guest of `vgpu run --headless` (vgpu's libraries over the 3D ring,
executed by the same Mesa), rounds interleaved by the harness: every scene's FPS and
glmark2's score, for both (issue 15's target: the score through vgpu at least 80% of
direct). glmark2 needs an X display even off-screen: $DISPLAY, or an Xvfb started here.

    vgpu bench gles [--quick | --glmark2-default]

A run plays one scene of 14 of the 16 kinds in glmark2 2023.01's default benchmark
(Debian 12) at 800x600, each cut to half a second (`:duration=`), 5 rounds; --quick three
scenes for one round; --glmark2-default the whole default benchmark (33 scenes) at
800x600 and 1920x1080, 3 s scenes, 3 rounds (about 20 minutes on 2 cores).
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

from vgpu.bench import HIGHER, Bench, Measurement, Option, workload

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

KINDS = (
    "build:use-vbo=true", "texture:texture-filter=linear", "shading:shading=phong",
    "bump:bump-render=high-poly", "effect2d:kernel=0,1,0;1,-4,1;0,1,0;",
    "pulsar:light=false:quads=5:texture=false", "desktop:effect=shadow:windows=4",
    "buffer:columns=200:interleave=false:update-dispersion=0.9:update-fraction=0.5:"
    "update-method=map",
    "ideas:speed=duration", "jellyfish", "shadow", "conditionals:fragment-steps=5:vertex-steps=0",
    "function:fragment-complexity=medium:fragment-steps=5",
    "loop:fragment-steps=5:fragment-uniform=false:vertex-steps=5",
)
"""One scene of each kind in the default benchmark but terrain and refract (1 or 2 FPS on
llvmpipe at load average 12: half a second holds a frame; --glmark2-default plays them):
the full run's. The whole benchmark in two sizes (3 s scenes, 3 rounds) took about 20
minutes by itself; all 16 kinds at half a second, 5 rounds, took 223 s at load average 12
on 2 cores (vgpu bench gles)."""
QUICK = ("build:use-vbo=false", "texture:texture-filter=linear", "shading:shading=phong")
SCENE_SECONDS, QUICK_SCENE_SECONDS, DEFAULT_SCENE_SECONDS = 0.5, 0.5, 3.0
"""Each scene's duration (glmark2's default is 10 s). A scene's FPS is glmark2's over that
time (whole frames: coarse for the slowest scenes, ideas through vgpu at 4 FPS median at
load average 12), and the spread over the rounds says how steady it is."""
ROUNDS, DEFAULT_ROUNDS = 5, 3
WHOLE = Option("--glmark2-default", "gles: glmark2's whole default benchmark (33 scenes) "
               "at 800x600 and 1920x1080, 3 s scenes (about 20 minutes)")


def run_glmark2(size: str, scenes: tuple[str, ...], through_vgpu: bool,
                env: dict[str, str], seconds: float = SCENE_SECONDS) -> dict[str, float]:
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
          references=("direct",), options=(WHOLE,))
def gles(b: Bench) -> Iterator[Measurement]:
    if shutil.which("glmark2-es2") is None:
        yield b.value("glmark2-es2", "FPS", {"vgpu": float("nan")},
                      note="glmark2-es2 is not installed (Debian: glmark2-es2-x11)")
        return
    if b.option("--glmark2-default"):
        scenes, sizes, seconds = DEFAULT_BENCHMARK, ("800x600", "1920x1080"), DEFAULT_SCENE_SECONDS
        rounds = DEFAULT_ROUNDS
    else:
        scenes = QUICK if b.quick else KINDS
        sizes, seconds = ("800x600",), QUICK_SCENE_SECONDS if b.quick else SCENE_SECONDS
        rounds = b.rounds(ROUNDS, 1)
    figures = {s: ("FPS", HIGHER) for s in scenes}
    figures["score"] = ("glmark2 score", HIGHER)
    with x_display(dict(os.environ, PYTHONPATH=str(ROOT))) as env:
        for size in sizes:
            yield from b.observe(
                {"vgpu": lambda size=size: run_glmark2(size, scenes, True, env, seconds),
                 "direct": lambda size=size: run_glmark2(size, scenes, False, env, seconds)},
                figures, prefix=f"{size} ", rounds=rounds)
