"""Video encoders: the codec choice, the option syntax, rate control, and each encoder's
frames decoded by FFmpeg's own decoders (PyAV), a peer we did not write."""

from __future__ import annotations

import numpy as np
import pytest

from vgpu.encode.video import (
    BACKLOG_FRAMES,
    DUE_MS_MAX,
    DUE_MS_MIN,
    DUE_RELAX_S,
    DUE_STEP_MS,
    LATE_REPORT_MS,
    LIBRARY_CODECS,
    MIN_BITS_PER_PIXEL,
    MIN_FPS,
    MJPEG_QUALITY_MAX,
    MJPEG_QUALITY_MIN,
    PROBE_SIZE,
    START_BITS_PER_PIXEL,
    CodecChoice,
    LibraryEncoder,
    MjpegEncoder,
    Rate,
    RateControl,
    available_codecs,
    bitrate_for,
    choose_codec,
    create_encoder,
    library_for,
    parse_video_codecs,
)

ALL = frozenset({"mjpeg", "vp8", "h264", "vp9", "h265"})
H264, VP8, MJPEG = CodecChoice("pyav", "h264"), CodecChoice("pyav", "vp8"), CodecChoice(
    "spice", "mjpeg"
)


def test_parse_takes_spice_servers_syntax():
    assert parse_video_codecs("gstreamer:h264;gstreamer:vp8;spice:mjpeg", ALL) == [
        H264, VP8, MJPEG,
    ]
    assert parse_video_codecs(" pyav:H264 ; ;pyav:h264", ALL) == [H264]


def test_parse_leaves_out_what_the_host_cannot_encode():
    assert parse_video_codecs("gstreamer:h264;spice:mjpeg", frozenset({"mjpeg"})) == [MJPEG]


@pytest.mark.parametrize("text", ["h264", "x264:h264", "pyav:av1", "spice:h264"])
def test_parse_refuses_malformed_entries(text):
    with pytest.raises(ValueError):
        parse_video_codecs(text, ALL)


def test_choice_follows_the_client_then_the_server():
    order = [H264, VP8, MJPEG]
    assert choose_codec(order, frozenset({"mjpeg", "vp8", "h264"})) == H264
    assert choose_codec(order, frozenset({"mjpeg", "vp8"})) == VP8
    assert choose_codec(order, frozenset({"mjpeg"})) == MJPEG
    assert choose_codec(order, frozenset({"mjpeg", "vp8", "h264"}), ("vp8",)) == VP8
    assert choose_codec(order, frozenset({"mjpeg", "vp8"}), ("vp9", "mjpeg")) == MJPEG
    assert choose_codec([H264], frozenset({"mjpeg"})) is None


# spice-server's MJPEG quality samples (mjpeg_encoder.c, mjpeg_quality_samples).
SPICE_SERVER_MJPEG_QUALITIES = (20, 30, 40, 50, 60, 70, 80)


def test_mjpeg_quality_takes_spice_servers_steps_so_near_rates_share_an_encode():
    width, height = 416, 240
    start = bitrate_for(width, height, 30, START_BITS_PER_PIXEL)
    qualities = []
    for share in np.linspace(0.05, 2.0, 60):
        encoder = MjpegEncoder(width, height, Rate(start, 30))
        encoder.set_rate(Rate(int(start * share), 30))
        qualities.append(encoder.quality)
        assert encoder.quality in (*SPICE_SERVER_MJPEG_QUALITIES, MJPEG_QUALITY_MAX)
    assert min(qualities) == MJPEG_QUALITY_MIN and max(qualities) == MJPEG_QUALITY_MAX
    # rates a few percent apart (rate control's small steps) ask for one quality
    near = set()
    for share in (0.97, 0.98, 1.0, 1.02):
        encoder = MjpegEncoder(width, height, Rate(start, 30))
        encoder.set_rate(Rate(int(start * share), 30))
        near.add(encoder.quality)
    assert near == {70}


def test_rate_control_skips_frames_while_the_socket_is_full_and_slows_down():
    rate = RateControl(1280, 720, 60.0, now=0.0)
    assert rate.want_frame(0, 0.0)
    rate.sent(20_000, 0.0)
    assert not rate.want_frame(int(BACKLOG_FRAMES * 20_000) + 1, 1.0)
    slowed = rate.rate()
    assert slowed.fps < 60 and slowed.bitrate < bitrate_for(1280, 720, 60, START_BITS_PER_PIXEL)
    for step in range(100):  # a link that never clears
        rate.want_frame(10**9, 2.0 + step)
    assert rate.fps == pytest.approx(MIN_FPS)
    assert rate.bits_per_pixel == pytest.approx(MIN_BITS_PER_PIXEL)


def test_rate_control_steps_down_for_many_drops_not_for_one_late_frame():
    rate = RateControl(640, 480, 60.0, now=0.0)
    rate.report(frames=5, drops=1, last_frame_delay_ms=-20, now=1.0)
    assert rate.fps == 60
    rate.report(frames=5, drops=2, last_frame_delay_ms=-20, now=2.0)
    assert rate.fps < 60
    late = RateControl(640, 480, 60.0, now=0.0)
    late.report(frames=5, drops=0, last_frame_delay_ms=-LATE_REPORT_MS - 1, now=1.0)
    assert late.fps < 60


def test_late_frames_widen_the_due_margin_and_a_clear_spell_narrows_it():
    rate = RateControl(640, 480, 60.0, now=0.0)
    assert rate.due_ms == DUE_MS_MIN
    rate.report(frames=5, drops=1, last_frame_delay_ms=-5, now=1.0)
    assert rate.due_ms == DUE_MS_MIN + DUE_STEP_MS
    rate.report(frames=5, drops=0, last_frame_delay_ms=15, now=1.0 + DUE_RELAX_S / 2)
    assert rate.due_ms == DUE_MS_MIN + DUE_STEP_MS
    rate.report(frames=5, drops=0, last_frame_delay_ms=15, now=1.0 + DUE_RELAX_S)
    assert rate.due_ms == DUE_MS_MIN
    for i in range(100):
        rate.report(frames=5, drops=5, last_frame_delay_ms=-300, now=10.0 + i)
    assert rate.due_ms == DUE_MS_MAX


def test_rate_control_comes_back_to_full_rate_on_a_clear_link():
    rate = RateControl(640, 480, 60.0, now=0.0)
    rate.report(frames=5, drops=3, last_frame_delay_ms=0, now=1.0)
    assert rate.fps < 60
    t = 1.0
    while (rate.fps < 60 or rate.bits_per_pixel < START_BITS_PER_PIXEL) and t < 100:
        t += 0.05
        if rate.want_frame(0, t):
            rate.sent(5000, t)
    assert rate.fps == 60 and rate.bits_per_pixel == pytest.approx(START_BITS_PER_PIXEL)


def test_rate_control_paces_to_its_frame_rate():
    rate = RateControl(640, 480, 30.0, now=0.0)
    assert rate.want_frame(0, 10.0)
    rate.sent(1000, 10.0)
    assert not rate.want_frame(0, 10.01)
    assert rate.want_frame(0, 10.0 + 1 / 30 + 1e-6)


def _frames(width, height, count):
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for i in range(count):
        img = np.zeros((height, width, 4), np.uint8)
        img[..., 0] = (x * 2 + 6 * i) % 256
        img[..., 1] = (y * 2) % 256
        img[..., 2] = np.where(((x + 4 * i) // 32 + y // 32) % 2 == 0, 200, 40)
        img[..., 3] = 255
        out.append(img)
    return out


DECODERS = {"h264": "h264", "vp8": "vp8", "vp9": "vp9", "h265": "hevc", "mjpeg": "mjpeg"}


@pytest.mark.parametrize("codec", sorted(ALL))
def test_each_encoder_decodes_with_ffmpeg_close_to_its_input(codec):
    av = pytest.importorskip("av")
    if codec not in available_codecs():
        pytest.skip(f"no {codec} encoder in this PyAV")
    width, height = 192, 128
    choice = CodecChoice("spice" if codec == "mjpeg" else "pyav", codec)
    encoder = create_encoder(choice, width, height, Rate(bitrate_for(width, height, 30, 1.0), 30))
    decoder = av.CodecContext.create(DECODERS[codec], "r")
    frames = _frames(width, height, 8)
    shown = []
    for frame in frames:
        data = encoder.encode(frame)
        assert data, "a realtime encoder gives every frame at once"
        for packet in decoder.parse(data) if codec != "mjpeg" else [av.Packet(data)]:
            shown += decoder.decode(packet)
    if codec != "mjpeg":  # the parser holds the last frame until told the stream ended
        for packet in decoder.parse(None):
            shown += decoder.decode(packet)
        shown += decoder.decode(None)
    assert len(shown) == len(frames)
    for got, want in zip(shown, frames, strict=True):
        rgb = got.to_ndarray(format="bgr24")
        error = np.abs(rgb.astype(int) - want[..., :3].astype(int)).mean()
        assert error < 10, f"{codec}: mean error {error:.1f}"


def test_library_encoder_refuses_odd_sizes():
    with pytest.raises(ValueError):
        LibraryEncoder("h264", 101, 100, Rate(1_000_000, 30))


@pytest.mark.parametrize("codec", ["h264", "vp8"])
def test_a_new_bitrate_changes_the_frame_sizes(codec):
    av = pytest.importorskip("av")
    width, height = 320, 240
    encoder = LibraryEncoder(codec, width, height, Rate(2_000_000, 30))
    decoder = av.CodecContext.create(codec, "r")
    frames = _frames(width, height, 60)
    sizes, shown = [], 0
    for i, frame in enumerate(frames):
        if i == 30:
            # H.264 codes at constant quality under the rate as a cap: these frames take
            # about 0.5 Mbit/s of the 2 allowed, so the cap that must bite is below that
            encoder.set_rate(Rate(100_000, 30))
        data = encoder.encode(frame)
        sizes.append(len(data))
        for packet in decoder.parse(data):
            shown += len(decoder.decode(packet))
    assert shown >= len(frames) - 1  # the stream stays decodable across the change
    assert sum(sizes[45:]) < sum(sizes[15:30]) / 3


def _ffmpeg_opens(library: str) -> str | None:
    """FFmpeg's own answer, through PyAV directly: None when `library` opens here at
    PROBE_SIZE, else its error."""
    import fractions

    av = pytest.importorskip("av")
    context = av.CodecContext.create(library, "w")
    context.width, context.height = PROBE_SIZE
    context.pix_fmt = "yuv420p"
    context.time_base = fractions.Fraction(1, 30)
    try:
        context.open()
    except av.error.FFmpegError as e:
        return str(e)
    return None


@pytest.fixture
def fresh_choice():
    from vgpu.encode import video

    video._probe.cache_clear()
    yield
    video._probe.cache_clear()


def test_h264_takes_nvenc_where_ffmpeg_opens_it_else_x264_and_says_why(fresh_choice, caplog):
    av = pytest.importorskip("av")
    assert "h264_nvenc" in av.codecs_available  # PyAV's wheels carry it, GPU or not
    failure = _ffmpeg_opens("h264_nvenc")
    caplog.set_level("INFO", logger="vgpu.encode.video")
    encoder = LibraryEncoder("h264", 320, 240, Rate(1_000_000, 30))
    frames = _frames(320, 240, 5)
    decoder = av.CodecContext.create("h264", "r")
    shown = 0
    for frame in frames:
        for packet in decoder.parse(encoder.encode(frame)):
            shown += len(decoder.decode(packet))
    assert shown >= len(frames) - 1  # the parser may hold the last one
    fallbacks = [r.getMessage() for r in caplog.records if "h264 encoder" in r.getMessage()]
    if failure is None:  # an NVIDIA host with its driver
        assert encoder.library == "h264_nvenc"
        assert fallbacks == []
    else:
        assert encoder.library == "libx264"
        assert len(fallbacks) == 1
        assert "h264_nvenc: cannot be opened" in fallbacks[0]
        LibraryEncoder("h264", 320, 240, Rate(1_000_000, 30)).encode(frames[0])
        assert len([r for r in caplog.records if "h264 encoder" in r.getMessage()]) == 1


def test_an_encoder_missing_from_the_build_is_passed_over(fresh_choice, caplog, monkeypatch):
    pytest.importorskip("av")
    monkeypatch.setitem(LIBRARY_CODECS, "h264", ("h264_nosuchenc", "libx264"))
    caplog.set_level("INFO", logger="vgpu.encode.video")
    choice = library_for("h264")
    assert choice.library == "libx264"
    assert choice.passed_over[0] == "h264_nosuchenc: not in this PyAV build"
    assert "h264_nosuchenc: not in this PyAV build" in caplog.text


def test_a_stream_the_first_choice_cannot_open_goes_to_the_cpu(fresh_choice, caplog,
                                                               monkeypatch):
    # Opened at the probe's size, refused for this stream (NVENC's limit on sessions at
    # once): that stream is coded by x264, and the log says so.
    av = pytest.importorskip("av")
    from vgpu.encode import video

    real_open = video._open_library

    def refusing(library, *args):
        if library == "h264_nvenc":
            raise av.error.PermissionError(1, "Operation not permitted")
        return real_open(library, *args)

    monkeypatch.setattr(video, "_open_library", refusing)
    encoder = LibraryEncoder("h264", 320, 240, Rate(1_000_000, 30))
    encoder.library = "h264_nvenc"  # as library_for answers on an NVENC host
    assert encoder.encode(_frames(320, 240, 1)[0])
    assert encoder.library == "libx264"
    assert "h264 encoder: libx264 for this 320x240 stream" in caplog.text


def test_rate_control_takes_every_frame_the_senders_pacing_lets_through():
    # The sender's Pacer lets a frame go as soon as 3/4 of a period after the one before
    # (after one it let through late); rate control at the full rate skips none of them.
    from vgpu.display import Pacer

    pacer, rate = Pacer(60.0), RateControl(640, 480, 60.0, now=0.0)
    rng = np.random.default_rng(3)
    for i in range(600):
        ready = 1.0 + i / 60 + (0.5 / 60 if i % 2 else 0.0) + rng.uniform(0, 1e-3)
        at = ready + pacer.wait(ready)
        pacer.went(at)
        assert rate.want_frame(0, at), f"frame {i} skipped"
        rate.sent(5000, at)
