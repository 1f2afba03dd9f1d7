"""`vgpu bench`: one way to measure vgpu beside the software it is compared with.

Writing a workload
------------------
A workload module is a file `bench/NAME.py` in the repository (files starting with
"_" are skipped). `vgpu bench` imports every such file; a module registers one or more
workloads with the `workload` decorator::

    from vgpu.bench import Bench, Measurement, workload

    @workload("encode", "the C encoders on sample frames", references=("lz4", "zlib"))
    def encode(b: Bench) -> Iterator[Measurement]:
        frame = ...                                   # set-up is not timed
        yield b.time("LZ desktop", {                  # vgpu first, then its references
            "vgpu LZ": lambda: encode_lz(frame),
            "lz4": lambda: lz4.block.compress(frame),
        }, work=frame.nbytes / 1e9, unit="GB/s")
        yield b.value("LZ desktop size", "bytes", {"vgpu LZ": n1, "lz4": n2})

The function takes a `Bench` and returns (or yields) `Measurement`s; it never prints
and never times anything itself. `Bench` gives:

- `b.time(name, contenders, work=..., unit=..., rounds=...)`: the core runs every
  contender (a callable, or a `Contender` with untimed `before`/`after`) `rounds`
  times, interleaved round by round, after a warm-up; samples are `work / seconds`
  (higher is better) or, without `work`, milliseconds (lower is better).
- `b.observe(contenders, figures, prefix=...)`: for end-to-end runs that yield several
  figures at once (bytes, CPU seconds, frames per second); each contender returns
  `{figure: value}`, `figures` maps each to `(unit, HIGHER or LOWER)`.
- `b.value(name, unit, {contender: value})`: figures that do not vary between runs.
- `b.quick` and `b.rounds(full, quick)`: `--quick` must finish every workload together in
  under a minute on two cores, so a workload shrinks its inputs when `b.quick` is set.

Every workload has a budget in bench/budget.toml: its wall seconds on a quiet 2-core
machine, full run and --quick. The command prints each workload's seconds beside it, and
tests/bench checks that the budgets add up to under issue 11's bounds (core.BUDGET_TOTAL_S):
a new workload, or more rounds, takes its seconds from the others or shrinks.

Rules for a module: import cheaply and do nothing at import time (`vgpu bench list`
imports every module); keep heavy set-up inside the workload function; names are unique
(`workload` refuses a second one); name measurements "CASE: FIGURE" when one run yields
several figures per case (the plot then gives each figure a panel); when a reference
cannot run on this machine, still measure vgpu and say why in the measurement's `note`.

A workload that needs options of its own (`vgpu bench soak --fuzz`) declares them:
`@workload(..., options=(FUZZ, Option("--clients", "clients at once", int, 50)))` and
reads `b.option("--clients")`; workloads that share a flag share one `Option` (FUZZ and
SEED in core), and the command refuses a flag that no chosen workload takes. A module
that uses another bench module's functions gets it with `core.bench_module("NAME")`,
never by running the file again (runpy would register its workloads a second time).

Shared inputs live in `vgpu.bench.common` (the null backend, bench/data's recordings
and sample frames, the stock SPICE client, vgpu's server on a thread, a byte-counting
proxy); use them instead of private copies.
The command adds the progress bar, the table, the JSON file, the plot and `compare`.
"""

from vgpu.bench.command import add_arguments, run
from vgpu.bench.core import (
    HIGHER,
    LOWER,
    Bench,
    Contender,
    Measurement,
    Option,
    Seconds,
    workload,
)

__all__ = ["HIGHER", "LOWER", "Bench", "Contender", "Measurement", "Option", "Seconds",
           "add_arguments", "run", "workload"]
