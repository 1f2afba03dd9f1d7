"""The benchmark harness's core: statistics, interleaving, the JSON file, compare's verdict."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from vgpu.bench import HIGHER, LOWER, Bench, Contender, Measurement, Seconds, report
from vgpu.bench.core import (
    ALL_LIMIT_S,
    BENCH_DIR,
    BUDGET_TOTAL_S,
    FUZZ,
    REGISTRY,
    Option,
    Spread,
    bench_module,
    budgets,
    discover,
    run_workload,
    workload,
)


@pytest.mark.parametrize("samples", [[3.0], [5.0, 1.0], [4.0, 9.0, 1.0, 7.0, 2.0],
                                     list(np.random.default_rng(1).random(37))])
def test_spread_matches_numpy_percentiles(samples):
    s = Spread.of(samples)
    # numpy's default (linear) percentiles are the reference
    expected = np.percentile(samples, [0, 10, 50, 90, 100])
    assert [s.min, s.p10, s.median, s.p90, s.max] == pytest.approx(expected.tolist())
    assert s.n == len(samples)


def test_spread_ignores_nan_and_survives_empty():
    assert Spread.of([1.0, float("nan"), 3.0]).median == 2.0
    assert Spread.of([]).n == 0


def test_time_interleaves_rounds_and_rotates_who_goes_first():
    order: list[str] = []
    bench = Bench(repeats=4)
    bench.time("x", {"a": lambda: order.append("a"), "b": lambda: order.append("b"),
                     "c": lambda: order.append("c")}, warmup=0)
    rounds = [order[i:i + 3] for i in range(0, 12, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)  # every round has each once
    assert [r[0] for r in rounds] == ["a", "b", "c", "a"]


def test_time_gives_rates_for_work_and_milliseconds_without():
    bench = Bench(repeats=3)
    rate = bench.time("sleep", {"vgpu": lambda: time.sleep(0.01)}, work=100, unit="ops/s",
                      warmup=0)
    assert rate.better == HIGHER and rate.unit == "ops/s"
    assert all(2000 < v <= 10000 for v in rate.samples["vgpu"])  # 100 / >= 0.01 s
    ms = bench.time("sleep", {"vgpu": lambda: time.sleep(0.01)}, warmup=0)
    assert ms.better == LOWER and all(v >= 10 for v in ms.samples["vgpu"])


def test_before_and_after_are_not_timed_and_seconds_override():
    bench = Bench(repeats=2)
    m = bench.time("x", {"vgpu": Contender(lambda: None, before=lambda: time.sleep(0.02),
                                           after=lambda: time.sleep(0.02)),
                         "remote": lambda: Seconds(0.5)}, warmup=0)
    assert max(m.samples["vgpu"]) < 15  # ms: the sleeps around it did not count
    assert m.samples["remote"] == [500.0, 500.0]


def test_ratio_is_taken_round_by_round():
    m = Measurement("x", "/s", HIGHER, {"vgpu": [10.0, 20.0, 40.0], "ref": [5.0, 20.0, 10.0]})
    r = m.ratio("ref")
    assert r.median == 2.0 and r.min == 1.0 and r.max == 4.0
    # with a single reference value (a constant) it is the ratio of the medians
    m.samples["constant"] = [10.0]
    assert m.ratio("constant").median == 2.0


def test_observe_collects_each_figure_per_contender():
    bench = Bench(repeats=2)
    calls = iter(range(100))
    ms = bench.observe({"vgpu": lambda: {"bytes": next(calls), "fps": 60.0},
                        "peer": lambda: {"bytes": 7.0}},
                       {"bytes": ("B", LOWER), "fps": ("frames/s", HIGHER)}, prefix="s: ")
    by_name = {m.name: m for m in ms}
    assert list(by_name) == ["s: bytes", "s: fps"]
    assert by_name["s: bytes"].samples == {"vgpu": [0.0, 1.0], "peer": [7.0, 7.0]}
    assert np.isnan(by_name["s: fps"].samples["peer"]).all()  # a figure it did not give


def _record(ms: list[Measurement]) -> dict:
    return report.run_record(ms, workloads=["w"], quick=True, seconds=1.0, errors={})


def test_json_keeps_every_sample_and_the_machine(tmp_path):
    m = Measurement("fill", "Mpx/s", HIGHER, {"vgpu": [1.0, 2.0, 3.0], "pixman": [2.0, 2.0, 2.0]},
                    note="n", workload="render")
    path = tmp_path / "run.json"
    report.save(_record([m]), path)
    raw = json.loads(path.read_text())
    assert raw["schema"] == report.SCHEMA
    assert {"cpu", "cores", "memory_bytes"} <= raw["machine"].keys()
    assert "renderer" in raw["gl"] or "error" in raw["gl"]
    assert "numpy" in raw["packages"]
    series = raw["measurements"][0]["series"]
    assert series["vgpu"]["samples"] == [1.0, 2.0, 3.0] and series["vgpu"]["median"] == 2.0
    assert raw["measurements"][0]["ratios"]["pixman"]["median"] == 1.0
    _, (back,) = report.load(path)
    assert back == m


def test_load_refuses_other_files(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"schema": "something else", "measurements": []}))
    with pytest.raises(ValueError):
        report.load(path)


def _m(samples: list[float], better: str = HIGHER) -> Measurement:
    return Measurement("fill", "Mpx/s", better, {"vgpu": samples}, workload="render")


@pytest.mark.parametrize(("before", "after", "better", "verdict"), [
    ([100, 101, 99, 100, 102], [100, 103, 98, 101, 99], HIGHER, "same"),   # overlapping
    ([100, 101, 99, 100, 102], [130, 131, 129, 132, 128], HIGHER, "better"),
    ([100, 101, 99, 100, 102], [130, 131, 129, 132, 128], LOWER, "worse"),  # ms went up
    ([100, 101, 99, 100, 102], [70, 71, 69, 72, 68], HIGHER, "worse"),
    ([100, 80, 120, 90, 110], [115, 116, 114, 115, 117], HIGHER, "same"),  # within a's spread
    ([12500.0], [12500.0], LOWER, "same"),  # single values: equal
    ([12500.0], [12400.0], LOWER, "better"),  # single values: any change moves
])
def test_compare_verdict(before, after, better, verdict):
    (change,) = report.compare([_m(before, better)], [_m(after, better)])
    assert change.verdict == verdict


def test_compare_reports_new_and_gone():
    a = [_m([1.0]), Measurement("gone", "s", LOWER, {"vgpu": [1.0]}, workload="w")]
    b = [_m([1.0]), Measurement("new", "s", LOWER, {"vgpu": [1.0]}, workload="w")]
    verdicts = {c.name: c.verdict for c in report.compare(a, b)}
    assert verdicts == {"fill": "same", "gone": "gone", "new": "new"}


def test_table_plot_and_compare_plot_render(tmp_path):
    ms = [Measurement("fill", "Mpx/s", HIGHER, {"vgpu": [1.0, 2.0], "pixman": [2.0, 3.0]},
                      workload="render"),
          Measurement("size", "bytes", LOWER, {"vgpu": [10.0]}, workload="encode")]
    report.plot(ms, tmp_path / "p.png", "t")
    report.compare_plot(report.compare(ms, ms), tmp_path / "c.png", "t")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert "| render | fill | Mpx/s" in report.markdown_table(ms)


def test_the_time_table_puts_each_workload_beside_its_budget():
    record = report.run_record([], workloads=["render", "peer"], quick=False, seconds=100.0,
                               errors={}, workload_seconds={"render": 25.0, "peer": 75.0},
                               workload_cpu_seconds={"render": 40.0, "peer": 30.0})
    assert record["workload_cpu_seconds"] == {"render": 40.0, "peer": 30.0}
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(report.time_table(record, {"render": 30.0}))
    rows = {line.split()[1]: line.split()[3:-1] for line in console.export_text().splitlines()
            if line.startswith("│")}
    assert rows["render"] == ["30.0", "│", "25.0", "│", "25%", "│", "40.0"]
    assert rows["peer"] == ["-", "│", "75.0", "│", "75%", "│", "30.0"]
    assert rows["all"][:3] == ["30.0", "│", "100.0"] and rows["all"][-1] == "70.0"


def test_every_workload_has_a_budget_and_they_fit_the_issues_bounds():
    """bench/budget.toml names every workload, for a full run and for --quick, and the
    budgets add up to at most BUDGET_TOTAL_S, under issue 11's bounds."""
    registry, table = discover(), budgets()
    for mode in ("full", "quick"):
        assert sorted(table[mode]) == sorted(registry), mode
        assert sum(table[mode].values()) <= BUDGET_TOTAL_S[mode] < ALL_LIMIT_S[mode], mode
        assert all(table["quick"][n] <= table["full"][n] for n in registry)


def test_every_bench_module_registers_workloads_with_their_references():
    registry = discover()
    assert {"render", "encode", "replay", "parse", "spice", "peer"} <= registry.keys()
    assert "pixman (pycairo)" in registry["render"].references


def test_every_bench_module_registers_and_vgpu_bench_list_lists_them_all():
    """Each bench/*.py registers at least one workload of its own, and `vgpu bench list`
    (a fresh process, as a user runs it) prints every one: a module that runs another
    with runpy registers that one's workloads twice and the command fails."""
    registry = discover()
    by_module = {path.stem: [w.name for w in registry.values()
                             if w.run.__module__ == f"vgpu_bench_{path.stem}"]
                 for path in sorted(BENCH_DIR.glob("*.py")) if not path.stem.startswith("_")}
    assert all(by_module.values()), {m: w for m, w in by_module.items() if not w}
    proc = subprocess.run([sys.executable, "-m", "vgpu.cli", "bench", "list"],
                          capture_output=True, text=True, cwd=BENCH_DIR.parent, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert listed == sorted(registry)


def test_a_module_imported_twice_is_one_module():
    """bench_module gives the module discover() imported: running the file again would
    register its workloads a second time."""
    discover()
    assert bench_module("stream") is sys.modules["vgpu_bench_stream"]
    assert REGISTRY["stream"].run is bench_module("stream").stream


def test_workload_options_reach_the_workload_and_clash_when_declared_twice():
    flag = Option("--test-count", "a count", int, 3)
    seen = []

    @workload("test-options", "a", options=(flag, FUZZ))
    def first(b):
        seen.append((b.option("--test-count"), b.option("--fuzz")))
        return []

    try:
        from vgpu.bench.command import add_arguments
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(["test-options", "--test-count", "7", "--fuzz"])
        bench = Bench(options={o.flag: getattr(args, o.dest) for o in REGISTRY[
            "test-options"].options})
        run_workload(REGISTRY["test-options"], bench)
        assert seen == [(7, True)]
        with pytest.raises(ValueError, match="--test-count"):
            workload("test-options-2", "b", options=(Option("--test-count", "other", str),))(
                lambda b: [])
    finally:
        REGISTRY.pop("test-options")


def test_a_name_registered_twice_is_refused():
    @workload("test-twice", "a")
    def first(b):
        return []

    try:
        with pytest.raises(ValueError):
            @workload("test-twice", "b")
            def second(b):
                return []
    finally:
        REGISTRY.pop("test-twice")
