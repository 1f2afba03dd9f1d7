"""Render-thread CPU per 2D operation of bench/render.py's mixes, checkouts interleaved.

    python bench/_render_cpu.py [--rounds 4] [--repeats 9] [--mixes 4,7] CHECKOUT...

Each checkout (a tree with its C extensions built) runs in a worker process of its own,
with its own vgpu and its own bench/render.py, so two revisions of the renderer compare on
the same commands. For every round and mix the workers take turns (the order rotates per
round); a worker reports the least CPU time of its calling thread (`time.thread_time`: the
render thread, not llvmpipe's) over the repeats of: execute every operation, flush,
glFinish. The table gives the median over rounds per operation, and the spread (largest
minus smallest round); the last column divides the last checkout's median by the first's.
Wall time is no use on a shared machine; thread CPU time of the same work, interleaved, is.
(A tool, not a workload: its leading underscore keeps it out of `vgpu bench`.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from types import ModuleType


def _bench_render(tree: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_render",
                                                  os.path.join(tree, "bench", "render.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(tree: str) -> None:
    """Says its PLAN, then answers "MIX REPEATS" lines on stdin with the least CPU seconds
    per operation."""
    render = _bench_render(tree)
    from vgpu.render import Renderer
    from vgpu.render import enums as E

    ctx = render.create_context()
    r = Renderer(ctx)
    r.create_primary(render.W, render.H, render.W * 4, E.SURFACE_FMT_32_xRGB, None)
    commands: dict[int, list] = {}
    print(json.dumps(render.PLAN), flush=True)
    for line in sys.stdin:
        i, repeats = map(int, line.split())
        if i not in commands:
            name, size, count = render.PLAN[i]
            commands[i] = render.Mix(name, size, count, seed=i).commands()
        cmds = commands[i]
        r.flush()
        ctx.finish()
        best = float("inf")
        for _ in range(repeats):
            start = time.thread_time()
            for cmd in cmds:
                r.execute(cmd)
            r.flush()
            ctx.finish()
            best = min(best, time.thread_time() - start)
        print(json.dumps(best / len(cmds)), flush=True)
    r.close()
    ctx.release()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trees", nargs="+", help="checkouts to compare (the first is the reference)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--mixes", help="PLAN indices, comma-separated (default: all)")
    args = ap.parse_args()
    trees = [os.path.abspath(t) for t in args.trees]
    workers = []
    plans = []
    for tree in trees:
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", tree],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tree,
                             env=dict(os.environ, PYTHONPATH=tree))
        assert p.stdout is not None
        plans.append(json.loads(p.stdout.readline()))
        workers.append(p)
    if any(other != plans[0] for other in plans):
        raise SystemExit("the checkouts' bench/render.py differ in PLAN")
    plan = plans[0]
    mixes = ([int(i) for i in args.mixes.split(",")] if args.mixes else range(len(plan)))
    per_op: dict[int, list[list[float]]] = {i: [[] for _ in trees] for i in mixes}
    for rnd in range(args.rounds):
        order = list(range(len(trees)))
        order = order[rnd % len(trees):] + order[:rnd % len(trees)]
        for i in mixes:
            for k in order:
                p = workers[k]
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write(f"{i} {args.repeats}\n")
                p.stdin.flush()
                per_op[i][k].append(json.loads(p.stdout.readline()) * 1e6)
    for p in workers:
        assert p.stdin is not None
        p.stdin.close()
        p.wait()
    print(f"render-thread CPU per operation, us: median of {args.rounds} rounds of the least "
          f"of {args.repeats} runs (spread)")
    print("mix".ljust(16) + "".join(os.path.basename(t).rjust(18) for t in trees)
          + "   last/first")
    for i in mixes:
        name, size, _ = plan[i]
        medians = [statistics.median(v) for v in per_op[i]]
        cells = "".join(f"{m:10.2f} ({max(v) - min(v):4.2f})"
                        for m, v in zip(medians, per_op[i], strict=True))
        print(f"{name} {size}".ljust(16) + cells + f"   {medians[-1] / medians[0]:.3f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        sys.path.insert(0, sys.argv[2])
        worker(sys.argv[2])
    else:
        main()
