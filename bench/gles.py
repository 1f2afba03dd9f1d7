"""glmark2-es2 through vgpu against glmark2-es2 directly on the same llvmpipe, in one run.

Each size runs glmark2-es2 off-screen (`--off-screen -s WxH`) twice, rounds interleaved:
directly (Mesa's libEGL/libGLESv2) and as the guest of `vgpu run --headless` (vgpu's
libraries over the 3D ring, executed by the same Mesa). Per scene the FPS of both and
their ratio, then glmark2's score and its ratio (issue 15's target: through vgpu at least
80% of direct). glmark2 needs an X display even off-screen: $DISPLAY, or an Xvfb started
here.

    vgpu bench gles [--sizes 800x600,1920x1080] [--scenes build,texture,...] [--rounds 1]

Without --scenes, glmark2's default benchmark (about 6 minutes per run on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENE = re.compile(r"^\[(?P<scene>[^\]]+)\] (?P<opts>.*?): FPS: (?P<fps>\d+)", re.M)
SCORE = re.compile(r"glmark2 Score: (\d+)")
XVFB_START_S = 1.0
"""Xvfb is ready to accept clients within this on this machine."""


def run_glmark2(size: str, scenes: list[str], through_vgpu: bool,
                env: dict[str, str]) -> tuple[dict[str, int], int]:
    cmd = ["glmark2-es2", "--off-screen", "-s", size]
    for s in scenes:
        cmd += ["-b", s]
    if through_vgpu:
        cmd = [sys.executable, "-m", "vgpu.cli", "run", "--headless", "--", *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False).stdout
    fps = {f"{m['scene']} {m['opts']}": int(m["fps"]) for m in SCENE.finditer(out)}
    score = SCORE.search(out)
    return fps, int(score.group(1)) if score else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vgpu bench gles")
    parser.add_argument("--sizes", default="800x600,1920x1080")
    parser.add_argument("--scenes", default="", help="comma-separated glmark2 -b benchmarks")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    if shutil.which("glmark2-es2") is None:
        print("glmark2-es2 is not installed (Debian: glmark2-es2-x11)", file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    xvfb = None
    if not env.get("DISPLAY"):
        display = f":{90 + os.getpid() % 100}"
        xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1920x1080x24"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(XVFB_START_S)
        env["DISPLAY"] = display
    scenes = [s for s in args.scenes.split(",") if s]
    try:
        for size in args.sizes.split(","):
            direct: list[tuple[dict[str, int], int]] = []
            vgpu: list[tuple[dict[str, int], int]] = []
            for _ in range(args.rounds):
                direct.append(run_glmark2(size, scenes, False, env))
                vgpu.append(run_glmark2(size, scenes, True, env))
            print(f"-- glmark2-es2 --off-screen -s {size}: FPS direct / through vgpu "
                  f"(median of {args.rounds})")
            for name in direct[0][0]:
                d = statistics.median(r[0].get(name, 0) for r in direct)
                v = statistics.median(r[0].get(name, 0) for r in vgpu)
                ratio = f"{v / d:6.1%}" if d else "   n/a"
                print(f"  {d:6.0f} {v:6.0f}  {ratio}  {name}")
            d = statistics.median(r[1] for r in direct)
            v = statistics.median(r[1] for r in vgpu)
            print(f"  score: direct {d:.0f}, through vgpu {v:.0f}, "
                  f"ratio {v / d if d else 0:.1%} (target >= 80%)", flush=True)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
