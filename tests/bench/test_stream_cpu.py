"""bench/stream.py's CPU meter: each thread's time lands in its stage, the client's too."""

import subprocess
import sys
import threading
import time

from vgpu.bench.core import bench_module

STREAM = bench_module("stream")

BUSY_S = 0.4
"""CPU seconds each busy thread spends: many clock ticks (10 ms each), so the figure
is well above the meter's resolution."""

CLIENT = """
import sys, threading, time
def spin(seconds, done=None):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    if done is not None:
        done.set()
        time.sleep(30)
sys.stdin.readline()
spin(%(busy)r)
done = threading.Event()
threading.Thread(target=spin, args=(2 * %(busy)r, done), daemon=True).start()
done.wait(30)
print("done", flush=True)
sys.stdin.readline()
"""

def _spin(seconds: float, done: threading.Event, leave: threading.Event) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    done.set()
    leave.wait(30)  # an ended thread's time leaves /proc with it


def test_cpu_meter_puts_each_thread_in_its_stage():
    client = subprocess.Popen([sys.executable, "-c", CLIENT % {"busy": BUSY_S}],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    done, leave = threading.Event(), threading.Event()
    render = threading.Thread(target=_spin, args=(BUSY_S, done, leave), name="vgpu-render")
    try:
        meter = STREAM.CpuMeter(client.pid)
        meter.start()
        client.stdin.write("go\n")
        client.stdin.flush()
        render.start()
        assert done.wait(30)
        assert client.stdout.readline() == "done\n"
        spent = meter.stop()
    finally:
        leave.set()
        client.kill()
        client.wait()
    assert spent["render"] >= 0.8 * BUSY_S
    assert 0.8 * BUSY_S <= spent["client protocol"] < 1.5 * BUSY_S
    assert 1.6 * BUSY_S <= spent["client decode"] < 2.5 * BUSY_S
    assert spent["guest"] < 0.2 * BUSY_S and spent["encode"] < 0.2 * BUSY_S
