"""The measurement core of `vgpu bench`: workloads, repeats, interleaving, statistics.

A workload never times or prints anything itself. It hands the core the contenders
of one comparison (vgpu first, then the references it is compared with) and the core
runs them round by round, interleaved, so that whatever else the machine is doing
falls on every contender alike; a ratio taken round by round survives a noisy machine
better than a ratio of two medians taken minutes apart.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HIGHER, LOWER = "higher", "lower"
"""Which way is better for a measurement: rates go up, times and bytes go down."""

QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)
"""The spread kept for every series: min, p10, median, p90, max."""


@dataclass(frozen=True)
class Spread:
    """min, p10, median, p90 and max of a series of samples."""

    min: float
    p10: float
    median: float
    p90: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Iterable[float]) -> Spread:
        values = sorted(float(s) for s in samples if not math.isnan(s))
        if not values:
            nan = float("nan")
            return cls(nan, nan, nan, nan, nan, 0)
        return cls(*(quantile(values, q) for q in QUANTILES), n=len(values))

    def as_dict(self) -> dict[str, float]:
        return {"min": self.min, "p10": self.p10, "median": self.median, "p90": self.p90,
                "max": self.max, "n": self.n}


def quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values, linear between neighbours (numpy's default)."""
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Measurement:
    """One comparison: the same work done by vgpu (the first series) and its references.

    `samples` maps each contender to its values in `unit`, one per round; rounds are
    interleaved, so sample i of every contender was taken at about the same time.
    """

    name: str
    unit: str
    better: str
    samples: dict[str, list[float]]
    note: str = ""
    workload: str = ""

    @property
    def subject(self) -> str:
        return next(iter(self.samples))

    @property
    def references(self) -> list[str]:
        return list(self.samples)[1:]

    def spread(self, contender: str) -> Spread:
        return Spread.of(self.samples[contender])

    def ratio(self, reference: str) -> Spread:
        """vgpu / reference, round by round where both have the same rounds (the
        interleaved case), else of the medians."""
        mine, theirs = self.samples[self.subject], self.samples[reference]
        if len(mine) == len(theirs) and len(mine) > 1:
            return Spread.of(a / b if b else float("nan")
                             for a, b in zip(mine, theirs, strict=True))
        m, t = Spread.of(mine).median, Spread.of(theirs).median
        return Spread.of([m / t if t else float("nan")])

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload, "name": self.name, "unit": self.unit,
            "better": self.better, "note": self.note, "subject": self.subject,
            "series": {c: {"samples": s, **Spread.of(s).as_dict()}
                       for c, s in self.samples.items()},
            "ratios": {r: self.ratio(r).as_dict() for r in self.references},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        return cls(d["name"], d["unit"], d["better"],
                   {c: list(s["samples"]) for c, s in d["series"].items()},
                   d.get("note", ""), d.get("workload", ""))


@dataclass
class Contender:
    """One side of a timed comparison: `run` is timed; `before` and `after` run untimed
    around it in every round (to bring inputs back into the cache, finish queued GL
    work, build or release what `run` needs). `run` may return `Seconds` it measured
    itself, for work done in another process whose start-up must not count; anything
    else it returns is ignored."""

    run: Callable[[], object]
    before: Callable[[], object] | None = None
    after: Callable[[], object] | None = None


Progress = Callable[[str], None]
"""Told the name of each measurement as it starts (the command's progress bar)."""


@dataclass(frozen=True)
class Option:
    """A command-line option of a workload (`vgpu bench soak --fuzz`): `flag` is the long
    option; `type` bool makes it a switch, else the value is parsed with it; the workload
    reads it as `b.option(flag)`, `default` when not given. Workloads that declare the same
    flag share it, so they must declare it alike (one module-level Option, imported)."""

    flag: str
    help: str
    type: type = bool
    default: Any = None

    @property
    def dest(self) -> str:
        return "workload_" + self.flag.lstrip("-").replace("-", "_")


FUZZ = Option("--fuzz", "fuzzers and differentials at their soak counts (minutes to hours)")
"""Shared by every workload that fuzzes or plays random scenes: the issues' soak counts."""
SEED = Option("--seed", "first seed of the fuzzers' and random scenes' cases", int, 0)


@dataclass
class Bench:
    """What a workload gets: the run's settings and the ways to measure."""

    quick: bool = False
    repeats: int = 7
    progress: Progress = field(default=lambda name: None)
    options: dict[str, Any] = field(default_factory=dict)
    """The workload's own options by flag ("--fuzz"), as the command line gave them."""

    def option(self, flag: str) -> Any:
        return self.options[flag]

    def rounds(self, full: int, quick: int | None = None) -> int:
        """Rounds for a measurement: `full`, or `quick` (default a third) with --quick."""
        return max(1, quick if quick is not None else full // 3) if self.quick else full

    def time(self, name: str, contenders: dict[str, Contender | Callable[[], object]], *,
             work: float | dict[str, float] | None = None, unit: str | None = None,
             rounds: int | None = None, warmup: int = 1, note: str = "") -> Measurement:
        """Times each contender `rounds` times, interleaved, after `warmup` untimed runs.

        With `work` (the amount of work one run does, in `unit`'s numerator; a dict when
        contenders do different amounts) the samples are rates, work / seconds, higher is
        better; without it they are milliseconds."""
        self.progress(name)
        runs = {n: c if isinstance(c, Contender) else Contender(c)
                for n, c in contenders.items()}
        for contender in runs.values():
            for _ in range(warmup):
                _timed(contender)
        samples: dict[str, list[float]] = {n: [] for n in runs}
        order = list(runs)
        for i in range(rounds or self.repeats):
            # the first contender of a round runs on whatever the previous one left
            # (caches, clocks): rotate so no contender always goes first
            k = i % len(order)
            for n in order[k:] + order[:k]:
                seconds = _timed(runs[n])
                done = work[n] if isinstance(work, dict) else work
                samples[n].append(done / seconds if done is not None else seconds * 1e3)
        return Measurement(name, unit or ("ms" if work is None else "/s"),
                           HIGHER if work is not None else LOWER, samples, note)

    def observe(self, contenders: dict[str, Callable[[], dict[str, float]]],
                figures: dict[str, tuple[str, str]], *, prefix: str = "",
                rounds: int | None = None, note: str = "") -> list[Measurement]:
        """For runs that yield several figures at once (an end-to-end session: bytes,
        CPU time, frames per second): each contender returns {figure: value}; `figures`
        names each figure's (unit, better). Rounds are interleaved as in `time`."""
        self.progress(prefix.strip() or ", ".join(figures))
        samples = {f: {n: [] for n in contenders} for f in figures}
        order = list(contenders)
        for i in range(rounds or self.repeats):
            k = i % len(order)
            for n in order[k:] + order[:k]:
                got = contenders[n]()
                for f in figures:
                    samples[f][n].append(float(got.get(f, float("nan"))))
        return [Measurement(prefix + f, unit, better, samples[f], note)
                for f, (unit, better) in figures.items()]

    def value(self, name: str, unit: str, values: dict[str, float | list[float]], *,
              better: str = LOWER, note: str = "") -> Measurement:
        """Figures that do not vary between runs (output sizes, a recording's span)."""
        return Measurement(name, unit, better,
                           {n: list(v) if isinstance(v, list) else [float(v)]
                            for n, v in values.items()}, note)


def _timed(contender: Contender) -> float:
    if contender.before is not None:
        contender.before()
    start = time.perf_counter()
    result = contender.run()
    seconds = time.perf_counter() - start
    if contender.after is not None:
        contender.after()
    return float(result) if isinstance(result, Seconds) else seconds


class Seconds(float):
    """What a contender's `run` returns when it timed its work itself (in another process)."""


# --- the registry ------------------------------------------------------------------------

WorkloadFn = Callable[[Bench], Iterable[Measurement]]


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    run: WorkloadFn
    references: tuple[str, ...]
    options: tuple[Option, ...] = ()


REGISTRY: dict[str, Workload] = {}


def workload(name: str, description: str, references: Iterable[str] = (),
             options: Iterable[Option] = ()) -> Callable[[WorkloadFn], WorkloadFn]:
    """Registers a workload function under `name` (see the package's docstring)."""
    def register(fn: WorkloadFn) -> WorkloadFn:
        if name in REGISTRY and REGISTRY[name].run is not fn:
            raise ValueError(f"two workloads are called {name!r}")
        mine = tuple(options)
        for other in REGISTRY.values():
            for opt in mine:
                clash = next((o for o in other.options if o.flag == opt.flag and o != opt),
                             None)
                if clash is not None:
                    raise ValueError(f"{name!r} and {other.name!r} declare {opt.flag} "
                                     "differently; share one Option")
        REGISTRY[name] = Workload(name, description, fn, tuple(references), mine)
        return fn
    return register


BENCH_DIR = Path(__file__).resolve().parent.parent.parent / "bench"
"""The repository's bench/ folder: one module per group of workloads, data in bench/data."""


BUDGET_FILE = BENCH_DIR / "budget.toml"
"""Each workload's wall seconds on a quiet 2-core machine, full run and --quick."""
ALL_LIMIT_S = {"full": 15 * 60.0, "quick": 60.0}
"""Issue 11's bounds for `vgpu bench all` on 2 cores."""
BUDGET_TOTAL_S = {"full": 14 * 60.0, "quick": 45.0}
"""What the budgets may add up to: room under the bounds for a busier machine (more for
--quick: its fixed costs, imports and the GL context, weigh more). 12 minutes is the aim
for a full run; bench/budget.toml says what keeps it over."""


def budgets(path: Path = BUDGET_FILE) -> dict[str, dict[str, float]]:
    """{"full": {workload: seconds}, "quick": {...}} from bench/budget.toml ({} without it)."""
    import tomllib

    if not path.is_file():
        return {}
    with path.open("rb") as f:
        table = tomllib.load(f)
    return {mode: {k: float(v) for k, v in table.get(mode, {}).items()} for mode in ALL_LIMIT_S}


def discover(bench_dir: Path = BENCH_DIR) -> dict[str, Workload]:
    """Imports every bench/*.py (not _*.py) once; each registers its workloads."""
    for path in sorted(bench_dir.glob("*.py")):
        if not path.stem.startswith("_"):
            bench_module(path.stem, bench_dir)
    return dict(sorted(REGISTRY.items()))


def bench_module(stem: str, bench_dir: Path = BENCH_DIR) -> ModuleType:
    """bench/STEM.py, imported once (a module that uses another's functions gets them
    here: running the file again would register its workloads a second time)."""
    module_name = f"vgpu_bench_{stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, bench_dir / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def all_options(registry: dict[str, Workload]) -> list[Option]:
    """Every workload's options, each flag once."""
    return list({o.flag: o for wl in registry.values() for o in wl.options}.values())


def run_workload(wl: Workload, bench: Bench, out: list[Measurement] | None = None
                 ) -> list[Measurement]:
    """The workload's measurements, appended to `out` as they come: a workload that
    fails after some (a fuzzer that found an escape) keeps those."""
    out = [] if out is None else out
    for m in wl.run(bench):
        m.workload = wl.name
        out.append(m)
    return out
