"""`vgpu bench NAME... [--quick] [--json FILE] [--plot FILE]`, `vgpu bench list`,
`vgpu bench compare A.json B.json [--plot FILE]`,
`vgpu bench show FILE.json [--match REGEX] [--markdown] [--plot FILE]`.

Workloads may declare options of their own (`vgpu bench soak --fuzz`, see core.Option):
they are added here, after the bench modules are imported, in a group of their own."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help="workloads to run ('all' for every one), 'list', "
                             "'compare A.json B.json', or 'show FILE.json'")
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and smaller inputs: every workload in under a minute")
    parser.add_argument("--repeats", type=int, help="rounds per measurement (default 7, quick 3)")
    parser.add_argument("--json", type=Path, help="write every sample and the machine here")
    parser.add_argument("--plot", type=Path, help="write a PNG plot here")
    parser.add_argument("--all-rows", action="store_true",
                        help="compare: also list figures that did not move")
    parser.add_argument("--match", help="show: only measurements whose 'workload: name' "
                                        "matches this regular expression")
    parser.add_argument("--markdown", action="store_true", help="show: a Markdown table")
    from vgpu.bench.core import BENCH_DIR, all_options, discover

    if not BENCH_DIR.is_dir():
        return
    registry = discover()
    group = parser.add_argument_group("workload options")
    for opt in all_options(registry):
        users = ", ".join(wl.name for wl in registry.values() if opt in wl.options)
        text = f"{opt.help} ({users})"
        if opt.type is bool:
            group.add_argument(opt.flag, dest=opt.dest, action="store_true", help=text)
        else:
            group.add_argument(opt.flag, dest=opt.dest, type=opt.type, default=opt.default,
                               help=f"{text}; default {opt.default}")


def run(args: argparse.Namespace) -> int:
    from vgpu.bench.core import BENCH_DIR, discover

    if args.names[0] == "compare":
        return _compare(args)
    if args.names[0] == "show":
        return _show(args)
    if not BENCH_DIR.is_dir():
        print("vgpu bench needs the repository's bench/ folder (run it from a checkout)",
              file=sys.stderr)
        return 2
    registry = discover()
    if args.names == ["list"]:
        width = max(map(len, registry))
        for wl in registry.values():
            refs = f"  (against {', '.join(wl.references)})" if wl.references else ""
            print(f"{wl.name:<{width}}  {wl.description}{refs}")
        return 0
    names = list(registry) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in registry]
    if unknown:
        print(f"unknown workload {unknown[0]!r}; choose from: {', '.join(registry)}",
              file=sys.stderr)
        return 2
    chosen = [registry[n] for n in names]
    from vgpu.bench.core import all_options

    stray = [o for o in all_options(registry)
             if getattr(args, o.dest) not in (None, False, o.default)
             and not any(o in wl.options for wl in chosen)]
    if stray:
        owners = ", ".join(wl.name for wl in registry.values() if stray[0] in wl.options)
        print(f"{stray[0].flag} is not an option of {', '.join(names)} (it is of {owners})",
              file=sys.stderr)
        return 2
    return _run(args, chosen)


TABLE_WIDTH = 150
"""Columns for the table when the output is not a terminal (a file, a pipe), so that
names are not cut to the default 80."""


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=TABLE_WIDTH)


def _run(args: argparse.Namespace, workloads: list) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from vgpu.bench import report
    from vgpu.bench.core import Bench, budgets, run_workload

    out, err = _console(), Console(stderr=True)
    measurements = []
    errors: dict[str, str] = {}
    took: dict[str, float] = {}
    cpu: dict[str, float] = {}
    steps: list[list] = []  # [workload, step, seconds] as the progress bar names the steps
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
            "{task.completed}/{task.total} workloads"), TimeElapsedColumn(),
            console=err, transient=True) as progress:
        task = progress.add_task("", total=len(workloads))

        step_began = [0.0]

        def end_step() -> None:
            now = time.monotonic()
            if steps and steps[-1][2] is None:
                steps[-1][2] = round(now - step_began[0], 2)
            step_began[0] = now

        def show(name: str, wl_name: str = "") -> None:
            progress.update(task, description=f"{wl_name}: {name}"[:70])
            end_step()
            steps.append([wl_name, name, None])

        for wl in workloads:
            bench = Bench(quick=args.quick, repeats=args.repeats or (3 if args.quick else 7),
                          progress=lambda name, wl_name=wl.name: show(name, wl_name),
                          options={o.flag: getattr(args, o.dest) for o in wl.options})
            show("starting", wl.name)
            began, cpu_began = time.monotonic(), report.cpu_seconds()
            try:
                run_workload(wl, bench, measurements)
            except Exception as exc:  # one broken workload must not lose the others' figures
                errors[wl.name] = f"{type(exc).__name__}: {exc}"
                err.print(f"[red]{wl.name} failed[/]: {errors[wl.name]}")
                err.print(traceback.format_exc(), markup=False, highlight=False)
            end_step()
            took[wl.name] = round(time.monotonic() - began, 1)
            cpu[wl.name] = round(report.cpu_seconds() - cpu_began, 1)
            progress.advance(task)
    seconds = time.monotonic() - started
    record = report.run_record(measurements, workloads=[w.name for w in workloads],
                               quick=args.quick, seconds=seconds, errors=errors,
                               workload_seconds=took, workload_cpu_seconds=cpu,
                               steps=steps)
    out.print(report.results_table(measurements))
    out.print(report.time_table(record, budgets().get("quick" if args.quick else "full", {})))
    out.print(f"{report.machine_line(record)}; {seconds:.0f} s, load average "
              f"{record['load_average']}")
    if args.json:
        report.save(record, args.json)
        out.print(f"samples: {args.json}")
    if args.plot:
        report.plot(measurements, args.plot, f"vgpu bench {' '.join(record['workloads'])} — "
                    + report.machine_line(record))
        out.print(f"plot: {args.plot}")
    return 1 if errors else 0


def _compare(args: argparse.Namespace) -> int:
    from vgpu.bench import report

    if len(args.names) != 3:
        print("usage: vgpu bench compare A.json B.json [--plot FILE]", file=sys.stderr)
        return 2
    try:
        (rec_a, before), (rec_b, after) = (report.load(Path(p)) for p in args.names[1:])
    except (OSError, ValueError, KeyError) as exc:
        print(f"cannot read: {exc}", file=sys.stderr)
        return 2
    out = _console()
    for label, rec in (("A", rec_a), ("B", rec_b)):
        out.print(f"{label}: {rec['created']} {rec.get('commit') or ''} — "
                  f"{report.machine_line(rec)}")
    changes = report.compare(before, after)
    out.print(report.compare_table(changes, everything=args.all_rows))
    counts = {v: sum(c.verdict == v for c in changes)
              for v in ("better", "worse", "same", "new", "gone")}
    out.print(", ".join(f"{n} {v}" for v, n in counts.items()))
    if args.plot:
        report.compare_plot(changes, args.plot, f"{args.names[1]} -> {args.names[2]}")
        out.print(f"plot: {args.plot}")
    return 0


def _show(args: argparse.Namespace) -> int:
    """The table (and plot) of a saved run, or of the part of it that --match selects."""
    import re

    from vgpu.bench import report

    if len(args.names) != 2:
        print("usage: vgpu bench show FILE.json [--match REGEX] [--markdown] [--plot FILE]",
              file=sys.stderr)
        return 2
    try:
        record, measurements = report.load(Path(args.names[1]))
        pattern = re.compile(args.match or "")
    except (OSError, ValueError, KeyError, re.error) as exc:
        print(f"cannot show: {exc}", file=sys.stderr)
        return 2
    chosen = [m for m in measurements if pattern.search(f"{m.workload}: {m.name}")]
    if args.markdown:
        print(report.markdown_table(chosen), end="")
    else:
        out = _console()
        out.print(report.results_table(chosen))
        out.print(report.machine_line(record))
    if args.plot:
        report.plot(chosen, args.plot, report.machine_line(record))
    return 0
