"""`vgpu bench`: runs the workloads in the repository's bench/ folder.

Each bench/<name>.py defines `main(argv) -> int` and prints its comparisons,
measured side by side in one run against the references it names.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"


def available() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a workload in bench/ (or 'all'); 'list' shows them")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the workload")


def run(args: argparse.Namespace) -> int:
    if not BENCH_DIR.is_dir():
        print("vgpu bench needs the repository's bench/ folder (run it from a checkout)",
              file=sys.stderr)
        return 2
    names = available()
    if args.name == "list":
        print("\n".join(names))
        return 0
    chosen = names if args.name == "all" else [args.name]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"unknown workload {unknown[0]!r}; choose from: {', '.join(names)}",
              file=sys.stderr)
        return 2
    status = 0
    for name in chosen:
        print(f"== bench {name}", flush=True)
        module = runpy.run_path(str(BENCH_DIR / f"{name}.py"), run_name=f"bench_{name}")
        status |= int(module["main"](list(args.args)) or 0)
    return status
