"""What a `vgpu bench` run leaves behind: the table, the JSON file, the plot, and the
comparison of two runs. Nothing here measures; everything reads `Measurement`s."""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import math
import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgpu.bench.core import BENCH_DIR, HIGHER, Measurement, Spread

SCHEMA = "vgpu-bench/1"
"""Written into every JSON file; `load` refuses files of another schema."""

PACKAGES = ("vgpu", "numpy", "moderngl", "glcontext", "cffi", "pycairo", "lz4", "zstandard",
            "pillow", "rich", "matplotlib")
"""Python packages whose versions decide the figures (ours and the references')."""

DEBIAN_PACKAGES = ("libgl1-mesa-dri", "libegl-mesa0", "libpixman-1-0", "libcairo2",
                   "libjpeg62-turbo", "liblz4-1", "libzstd1", "zlib1g", "libspice-server1",
                   "libspice-client-glib-2.0-8")
"""System libraries behind the references (pixman, libjpeg-turbo, spice-server,
spice-gtk) and behind GL (Mesa), as the package manager names them."""


# --- the machine -----------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_bytes": memory, "system": platform.platform(),
            "python": platform.python_version()}


def gl_info() -> dict[str, str]:
    """The GL the renderer gets here (the vendor's EGL on a GPU machine, else llvmpipe)."""
    try:
        from vgpu.render.context import create_context

        ctx = create_context()
    except Exception as exc:  # no GL at all: the JSON says so instead of failing the run
        return {"error": str(exc)}
    try:
        return {k.removeprefix("GL_").lower(): str(ctx.info[k])
                for k in ("GL_VENDOR", "GL_RENDERER", "GL_VERSION")}
    finally:
        ctx.release()


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n",
                               *DEBIAN_PACKAGES], capture_output=True, text=True, timeout=10)
        for line in proc.stdout.splitlines():
            name, _, version = line.partition(" ")
            if version:
                out[name] = version
    except (OSError, subprocess.TimeoutExpired):
        pass
    return out


def cpu_seconds() -> float:
    """CPU time of this process (every thread) and of the children it has waited for
    (the stock clients, the peer server, glmark2): what a run costs however busy the
    machine is, where wall time also counts the other programs' turns."""
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def load_average() -> float | None:
    """The machine's one-minute load average: beside wall times, how busy it was."""
    try:
        return round(os.getloadavg()[0], 1)
    except OSError:
        return None


def git_commit() -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(BENCH_DIR), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None


# --- JSON ------------------------------------------------------------------------------

def run_record(measurements: Iterable[Measurement], *, workloads: list[str], quick: bool,
               seconds: float, errors: dict[str, str],
               workload_seconds: dict[str, float] | None = None,
               workload_cpu_seconds: dict[str, float] | None = None,
               steps: list[list] | None = None) -> dict[str, Any]:
    """The JSON file's content. `steps` are [workload, step, seconds] in the order they
    ran, a step being what the progress bar named (a measurement, or a phase a workload
    announced): where a workload's time went."""
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "workloads": workloads, "quick": quick, "seconds": round(seconds, 1),
        "workload_seconds": workload_seconds or {},
        "workload_cpu_seconds": workload_cpu_seconds or {},
        "steps": steps or [],
        "load_average": load_average(),
        "commit": git_commit(), "machine": machine_info(), "gl": gl_info(),
        "packages": package_versions(), "errors": errors,
        "measurements": [m.as_dict() for m in measurements],
    }


def save(record: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n")


def load(path: Path) -> tuple[dict[str, Any], list[Measurement]]:
    record = json.loads(Path(path).read_text())
    if record.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a {SCHEMA} file (schema {record.get('schema')!r})")
    return record, [Measurement.from_dict(d) for d in record["measurements"]]


def machine_line(record: dict[str, Any]) -> str:
    m, gl = record["machine"], record["gl"]
    memory = f"{m['memory_bytes'] / 2**30:.0f} GiB" if m.get("memory_bytes") else "?"
    renderer = gl.get("renderer", gl.get("error", "?"))
    return (f"{m['cpu']}, {m['usable_cores']} of {m['cores']} cores, {memory}; "
            f"GL: {renderer} ({gl.get('version', '?')})")


# --- the table -------------------------------------------------------------------------

def fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    size = abs(value)
    if size >= 1e5:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def spread_text(s: Spread) -> str:
    if s.n <= 1:
        return fmt(s.median)
    return f"{fmt(s.median)} [{fmt(s.p10)}-{fmt(s.p90)}]"


def results_table(measurements: list[Measurement]) -> Any:
    """A rich Table: one row per contender, the ratio to vgpu on each reference's row."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape("vgpu bench: medians [p10-p90]"), show_lines=False)
    for col in ("workload", "measurement", "unit", "contender", "median [p10-p90]",
                "vgpu / it"):
        table.add_column(escape(col), justify="right" if col in ("median [p10-p90]", "vgpu / it")
                         else "left")
    last = None
    for m in measurements:
        arrow = "↑" if m.better == HIGHER else "↓"
        for i, contender in enumerate(m.samples):
            ratio = "" if i == 0 else spread_text(m.ratio(contender)) + "x"
            table.add_row(m.workload if m.workload != last else "",
                          m.name if i == 0 else "", f"{m.unit} {arrow}" if i == 0 else "",
                          contender, spread_text(m.spread(contender)), ratio,
                          end_section=i == len(m.samples) - 1)
            last = m.workload
    return table


def time_table(record: dict[str, Any], budget: dict[str, float]) -> Any:
    """Where a run's time went: each workload's wall seconds beside its budget (what it
    takes on a quiet 2-core machine), its share of the run, and its CPU seconds (this
    process and its children: on a busy machine wall time grows, CPU time much less)."""
    from rich.table import Table

    total = record["seconds"] or float("nan")
    table = Table(title="time per workload" + (" (--quick)" if record["quick"] else ""))
    for col in ("workload", "budget s", "wall s", "share", "CPU s"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    cpu = record.get("workload_cpu_seconds", {})
    walls = record["workload_seconds"]

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for name, wall in walls.items():
        table.add_row(name, seconds(budget.get(name)), seconds(wall),
                      f"{100 * wall / total:.0f}%", seconds(cpu.get(name)))
    budgeted = [budget[n] for n in walls if n in budget]
    table.add_row("all", seconds(sum(budgeted) if budgeted else None),
                  seconds(record["seconds"]), "", seconds(sum(cpu.values()) if cpu else None),
                  end_section=True)
    return table


def markdown_table(measurements: list[Measurement]) -> str:
    """The same table as Markdown, for the README."""
    lines = ["| workload | measurement | unit | vgpu | reference | reference's "
             "| vgpu / reference |",
             "|---|---|---|---|---|---|---|"]
    for m in measurements:
        arrow = "↑" if m.better == HIGHER else "↓"
        mine = spread_text(m.spread(m.subject))
        refs = m.references or [None]
        for ref in refs:
            if ref is None:
                lines.append(f"| {m.workload} | {m.name} | {m.unit} {arrow} | {mine} | | | |")
            else:
                lines.append(f"| {m.workload} | {m.name} | {m.unit} {arrow} | {mine} | {ref} | "
                             f"{spread_text(m.spread(ref))} | {spread_text(m.ratio(ref))}x |")
    return "\n".join(lines) + "\n"


# --- the plot ------------------------------------------------------------------------

def _panels(measurements: list[Measurement]) -> list[tuple[str, list[Measurement]]]:
    """What goes in one panel: a workload's comparisons in one unit, or, where names
    read "CASE: FIGURE" (end-to-end sessions), one figure across every case."""
    panels: dict[str, list[Measurement]] = {}
    for m in measurements:
        if len(m.samples) < 2 or not all(m.spread(c).median > 0 for c in m.samples):
            continue  # nothing beside vgpu, or zeros a log scale cannot show
        _, sep, figure = m.name.rpartition(": ")
        panels.setdefault(f"{m.workload}: {figure if sep else m.unit}", []).append(m)
    return list(panels.items())


def plot(measurements: list[Measurement], path: Path, title: str) -> None:
    """vgpu beside each reference: one bar per comparison, vgpu's figure over the
    reference's (round by round where the rounds were interleaved), whiskers from p10 to
    p90 of that ratio, log scale; green where vgpu does better, red where it does worse.
    One panel per workload, or per figure of an end-to-end workload. Figures without a
    reference are in the table and the JSON only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    panels = _panels(measurements)
    if not panels:  # still a file where one was asked for, saying why it is empty
        fig = plt.figure(figsize=(6, 1))
        fig.text(0.5, 0.5, "no comparisons: these measurements have no reference",
                 ha="center", va="center", fontsize=9)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return
    rows = [sum(len(m.references) for m in ms) for _, ms in panels]
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             figsize=(9, 0.8 + 0.12 * sum(rows) + 0.5 * len(panels)),
                             gridspec_kw={"height_ratios": [max(r, 3) for r in rows]})
    for ax, (name, ms) in zip(axes[:, 0], panels, strict=True):
        labels, values, lows, highs, cols = [], [], [], [], []
        for m in ms:
            case = m.name.rpartition(": ")[0] or m.name
            for ref in m.references:
                r = m.ratio(ref)
                labels.append(f"{case} / {ref}")
                values.append(r.median)
                lows.append(max(0.0, r.median - r.p10))
                highs.append(max(0.0, r.p90 - r.median))
                ahead = r.median > 1 if m.better == HIGHER else r.median < 1
                cols.append("tab:gray" if r.median == 1 else
                            "tab:green" if ahead else "tab:red")
        y = list(range(len(labels)))[::-1]
        # bars grow from 1 (equal) towards the ratio, either way
        ax.barh(y, [v - 1 for v in values], left=1.0, xerr=[lows, highs], color=cols,
                height=0.75, capsize=1.5, error_kw={"linewidth": 0.6})
        ax.set_yticks(y, labels, fontsize=5.5)
        ax.set_ylim(-0.6, len(labels) - 0.4)
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=0.6)
        ax.set_title(f"{name}: vgpu / reference ({ms[0].unit}: "
                     f"{'higher' if ms[0].better == HIGHER else 'lower'} is better)",
                     fontsize=7)
        ax.tick_params(axis="x", labelsize=6)
    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- comparing two runs --------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    workload: str
    name: str
    contender: str
    unit: str
    better: str
    before: Spread | None
    after: Spread | None

    @property
    def factor(self) -> float:
        if self.before is None or self.after is None or not self.before.median:
            return float("nan")
        return self.after.median / self.before.median

    @property
    def verdict(self) -> str:
        """"better"/"worse" when each median lies outside the other run's p10-p90 spread
        (with single values: when they differ), else "same"; "new"/"gone" when one run
        lacks the figure."""
        if self.before is None:
            return "new"
        if self.after is None:
            return "gone"
        a, b = self.before, self.after
        if math.isnan(a.median) or math.isnan(b.median):
            return "same"
        outside = (not a.p10 <= b.median <= a.p90) and (not b.p10 <= a.median <= b.p90)
        if not outside:
            return "same"
        return "better" if (b.median > a.median) == (self.better == HIGHER) else "worse"


def compare(before: list[Measurement], after: list[Measurement]) -> list[Change]:
    def keyed(ms: list[Measurement]) -> dict[tuple[str, str, str], tuple[Measurement, str]]:
        return {(m.workload, m.name, c): (m, c) for m in ms for c in m.samples}

    a, b = keyed(before), keyed(after)
    out = []
    for key in list(a) + [k for k in b if k not in a]:
        m = (a.get(key) or b[key])[0]
        out.append(Change(key[0], key[1], key[2], m.unit, m.better,
                          a[key][0].spread(key[2]) if key in a else None,
                          b[key][0].spread(key[2]) if key in b else None))
    return out


def compare_table(changes: list[Change], everything: bool = False) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape("what moved beyond its spread (medians [p10-p90])"))
    for col in ("workload", "measurement", "contender", "unit", "before", "after", "after/before",
                "verdict"):
        table.add_column(col)
    style = {"better": "green", "worse": "red", "new": "cyan", "gone": "yellow", "same": ""}
    for c in changes:
        if c.verdict == "same" and not everything:
            continue
        table.add_row(c.workload, c.name, c.contender, c.unit,
                      spread_text(c.before) if c.before else "-",
                      spread_text(c.after) if c.after else "-",
                      f"{c.factor:.3g}x", f"[{style[c.verdict]}]{c.verdict}[/]" if style[
                          c.verdict] else c.verdict)
    return table


def compare_plot(changes: list[Change], path: Path, title: str) -> None:
    """after/before of every figure both runs have, with the after run's spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = [c for c in changes if c.before is not None and c.after is not None
            and c.before.median]
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.2 * len(both)))
    colour = {"better": "tab:green", "worse": "tab:red", "same": "tab:gray"}
    y = list(range(len(both)))[::-1]
    vals = [c.factor for c in both]
    lows = [max(0.0, (c.after.median - c.after.p10) / c.before.median) for c in both]  # type: ignore[union-attr]
    highs = [max(0.0, (c.after.p90 - c.after.median) / c.before.median) for c in both]  # type: ignore[union-attr]
    ax.barh(y, vals, xerr=[lows, highs], color=[colour[c.verdict] for c in both], height=0.7,
            capsize=2)
    ax.set_yticks(y, [f"{c.workload} · {c.name} · {c.contender} ({c.unit})" for c in both],
                  fontsize=6)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.6)
    ax.set_title(title + " — after / before (green better, red worse, grey within spread)",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
