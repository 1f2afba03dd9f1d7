"""bench/stream.py's own machinery: the CPU meter, the equal-SSIM byte ratio and the
cube pictures it compares codecs on."""

import subprocess
import sys
import threading
import time

import pytest

from vgpu.bench.core import bench_module
from vgpu.guest.anim import read_stamp

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


MJPEG_CURVE = [(0.99, 20.0), (0.995, 30.0), (0.998, 50.0)]


def test_equal_ssim_ratio_interpolates_between_mjpeg_points():
    ratio = STREAM.equal_ssim_ratio
    assert ratio((0.9925, 5.0), MJPEG_CURVE) == pytest.approx(5.0 / 25.0)
    assert ratio((0.99, 4.0), MJPEG_CURVE) == pytest.approx(4.0 / 20.0)
    assert ratio((0.995, 6.0), list(reversed(MJPEG_CURVE))) == pytest.approx(6.0 / 30.0)


def test_equal_ssim_ratio_is_never_flattering_outside_the_curve():
    ratio = STREAM.equal_ssim_ratio
    # better than MJPEG's best: against its best (MJPEG would need more to match)
    assert ratio((0.999, 10.0), MJPEG_CURVE) == pytest.approx(10.0 / 50.0)
    # worse than MJPEG's worst: MJPEG's bytes there are unknown
    assert ratio((0.98, 1.0), MJPEG_CURVE) != ratio((0.98, 1.0), MJPEG_CURVE)  # NaN
    assert ratio((0.99, 1.0), []) != ratio((0.99, 1.0), [])


@pytest.mark.gl
def test_cube_pictures_are_top_down_bgrx_with_their_stamp():
    """The counter reads back from the bottom-left, so rows come top-down; the cube's
    dark blue background (BACKGROUND) has blue above red, so bytes are B, G, R."""
    pictures = STREAM.demo_pictures("cube", 320, 240, 3)
    assert [read_stamp(p) for p in pictures] == [1, 2, 3]
    corner = pictures[0][2, 2]
    assert corner[0] > corner[2] and corner[3] == 255


@pytest.mark.slow
@pytest.mark.gl
def test_the_real_spice_server_streams_a_recording_of_the_anim_demo(tmp_path):
    """The peer's --streaming-video, --video-codecs and --fps reach spice-server: its
    MJPEG stream shows the recording's frames lossy (a lossless frame of this size is
    well over 100 KiB) and close to the anim guest's pictures."""
    built = STREAM.PEER_TOOLS["build_peer"]()
    if isinstance(built, str):
        pytest.skip(built)
    record = tmp_path / "anim.spice"
    STREAM.record_anim(320, 240, 2.5, record)
    got = STREAM.run_peer(built, record, 320, 240, "mjpeg", tmp_path)
    assert got["fps"] > 5
    # spice-server with streaming off sends these frames losslessly: about 55 KiB each
    # and an SSIM of 1.0 (measured with the same recording)
    assert got["kib_frame"] < 40
    assert 0.9 < got["ssim"] < 0.999


def test_the_report_names_each_codecs_encoder_and_why_nvenc_was_passed_over():
    from vgpu.bench.core import Bench
    from vgpu.encode.video import library_for

    got = STREAM.encoder_costs(320, 180, "h264", frames=3)
    assert got["encoder"] == library_for("h264").library  # which tests/encode checks
    ran = {f"h264: {got['encoder']}": 1, "mjpeg: libjpeg-turbo": 2}
    report = STREAM.encoders_used(Bench(), ran)
    assert report.samples == {key: [float(n)] for key, n in ran.items()}
    if got["encoder"] == "libx264":  # no NVIDIA GPU and driver here
        assert report.note.startswith("passed over: h264_nvenc: cannot be opened (")
    else:
        assert report.note == "every codec on its first choice"
