"""`vgpu bench` and `vgpu serve --wait-client` as a user runs them."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vgpu.bench.common import SYSTEM_PYTHON, SpiceClient, recording, screenshot

ROOT = Path(__file__).resolve().parents[2]
VGPU = [sys.executable, "-m", "vgpu.cli"]


def test_bench_writes_json_and_plot_and_compare_reads_them(tmp_path):
    a, b, plot = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "a.png"
    for out in (a, b):
        proc = subprocess.run([*VGPU, "bench", "parse", "--quick", "--json", str(out),
                               "--plot", str(plot)], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(a.read_text())
    assert record["workloads"] == ["parse"] and record["quick"] is True
    names = {m["name"] for m in record["measurements"]}
    assert {"parse fill", "parse mix", "device path, mix"} <= names
    # where the time went: each measurement a step, adding up to the workload's seconds
    steps = record["steps"]
    assert [s[1] for s in steps] == ["starting", *(m["name"] for m in record["measurements"])]
    assert all(s[0] == "parse" and s[2] >= 0 for s in steps)
    assert sum(s[2] for s in steps) == pytest.approx(record["workload_seconds"]["parse"], abs=0.2)
    assert record["workload_cpu_seconds"]["parse"] > 0
    assert plot.read_bytes()[:4] == b"\x89PNG"
    proc = subprocess.run([*VGPU, "bench", "compare", str(a), str(b), "--all-rows"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "parse mix" in proc.stdout


def test_bench_refuses_unknown_workloads():
    proc = subprocess.run([*VGPU, "bench", "no-such-workload"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "unknown workload" in proc.stderr


def test_bench_refuses_an_option_of_other_workloads():
    proc = subprocess.run([*VGPU, "bench", "parse", "--fuzz"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "--fuzz is not an option of parse" in proc.stderr
    assert "soak" in proc.stderr


def test_wait_client_needs_a_replay():
    proc = subprocess.run([*VGPU, "serve", "--demo", "desktop", "--wait-client", "--port", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "--wait-client" in proc.stderr


@pytest.mark.gl
@pytest.mark.skipif(shutil.which(SYSTEM_PYTHON) is None, reason="no system python for spice-gtk")
def test_wait_client_holds_the_replay_until_a_client_watches(tmp_path):
    """Nothing is played before spice-gtk connects; then the whole recording is, and the
    client ends with Xspice's own screenshot of the session."""
    server = subprocess.Popen([*VGPU, "serve", "--demo", f"replay:{recording('basic')}",
                               "--wait-client", "--port", "0"], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("SPICE: spice://"), first
        port = int(first.split()[1].rsplit(":", 1)[1])
        for _ in range(2):  # the other lines of the banner
            server.stdout.readline()
        time.sleep(2.0)  # a replay that did not wait would be done by now (about 0.2 s)
        assert server.poll() is None


        assert not select.select([server.stdout], [], [], 0)[0], "it played before a client"
        with SpiceClient(port) as client:
            assert server.stdout.readline().strip() == "replay done"
            dump = tmp_path / "screen.bgrx"
            deadline = time.monotonic() + 30
            want = screenshot("basic")
            while True:
                time.sleep(0.5)
                client.send(f"dump {dump}")
                time.sleep(0.3)
                if dump.exists() and dump.stat().st_size == want.size // 3 * 4:
                    got = np.fromfile(dump, np.uint8).reshape(*want.shape[:2], 4)[..., 2::-1]
                    if np.array_equal(got, want) or time.monotonic() > deadline:
                        break
            assert np.array_equal(got, want)
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.slow
@pytest.mark.gl
@pytest.mark.skipif(shutil.which(SYSTEM_PYTHON) is None, reason="no system python for spice-gtk")
def test_bench_peer_runs_both_servers_to_the_same_picture(tmp_path):
    """The basic recording through vgpu and the real spice-server (when it builds here),
    one spice-gtk client each, live and late: both show the same picture, Xspice's."""
    out = tmp_path / "peer.json"
    proc = subprocess.run([*VGPU, "bench", "peer", "--quick", "--json", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    by_name = {m["name"]: m for m in json.loads(out.read_text())["measurements"]}
    late = by_name["basic auto_glz: late display KB"]["series"]
    assert late["vgpu"]["median"] > 0
    for mode in ("live", "late"):
        unlike = by_name[f"basic auto_glz: {mode} pixels unlike Xspice's screenshot"]["series"]
        assert all(s["median"] == 0 for s in unlike.values()), unlike
    if "spice-server" not in late:
        pytest.skip("the spice-server peer does not build here (libspice-server-dev)")
    assert late["spice-server"]["median"] > 0
    for mode in ("live", "late"):
        equal = by_name[f"basic auto_glz: {mode} pictures equal"]["series"]
        assert equal["vgpu = spice-server"]["samples"] == [1.0]
