"""Video encoders for streamed regions: stateful, one per client and per stream.

A stream is a region that changes every frame (3D output, video). Each stream
gets its own `Encoder`, which keeps the codec's state (reference frames, rate
control) from frame to frame; this module never sends anything and knows no
protocol numbers: the SPICE layer maps the codec names here to its own.

One place chooses: `choose_codec` takes the codecs the client decodes, its
preference and the server's ordered list (spice-server's `video-codecs` syntax,
`parse_video_codecs`), and `create_encoder` builds the encoder. MJPEG uses the
stateless C JPEG encoder underneath; H.264, VP8, VP9 and H.265 use FFmpeg's
libx264 (or NVIDIA's NVENC where it opens, `library_for`), libvpx and libx265 through
PyAV (whose wheels carry them), fed I420 planes by our C converter.
"""

from __future__ import annotations

import fractions
import functools
import logging
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vgpu.encode.codecs import bgrx_to_i420, encode_jpeg

log = logging.getLogger(__name__)

VIDEO_CODECS = ("mjpeg", "vp8", "h264", "vp9", "h265")
"""Every codec a stream may use, in SPICE's own numbering order."""

LIBRARY_CODECS = {"h264": ("h264_nvenc", "libx264"), "vp8": ("libvpx",),
                  "vp9": ("libvpx-vp9",), "h265": ("libx265",)}
"""FFmpeg's encoders for each codec encoded through PyAV, in order of preference: H.264
on NVIDIA's hardware encoder (NVENC) where a GPU and its driver let it open, else x264 on
the CPU. PyAV's wheels list h264_nvenc whether or not the host has either; opening it is
the test (library_for)."""

PROBE_SIZE = (256, 144)
"""The frame size a library encoder is opened at to see whether it works on this host:
above NVENC's smallest frame, small enough to cost little on a CPU encoder."""

ENCODER_NAMES = ("spice", "gstreamer", "pyav")
"""The encoder part of a `video-codecs` entry. spice-server's "spice" encoder does
MJPEG only (ours: the C JPEG encoder); "gstreamer" is accepted so QEMU's option
strings work unchanged and means the same library encoders as "pyav"."""

DEFAULT_VIDEO_CODECS = "pyav:h264;pyav:vp8;pyav:vp9;pyav:h265;spice:mjpeg"
"""The server's order when the user names none: H.264 first (the smallest frames
per CPU millisecond here, see bench/stream.py), MJPEG last (for clients that list
nothing else, like spice-html5)."""

LIBRARY_OPTIONS: dict[str, dict[str, str]] = {
    # No B-frames and no lookahead: every frame comes out as it goes in, so the
    # client can show it at once; ultrafast keeps a 1080p frame within one core's
    # frame time.
    "libx264": {"preset": "ultrafast", "tune": "zerolatency"},
    "libx265": {"preset": "ultrafast", "tune": "zerolatency", "x265-params": "log-level=error"},
    # NVENC's fastest preset tuned for ultra-low latency, with the same promises as
    # x264's zerolatency: no B-frames, no lookahead, no frames held in its queue.
    "h264_nvenc": {"preset": "p1", "tune": "ull", "zerolatency": "1", "delay": "0",
                   "rc-lookahead": "0", "bf": "0"},
    # libvpx's realtime mode without lag (frames out at once), at its fastest
    # useful speed for each codec.
    "libvpx": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                   "row-mt": "1"},
}

H264_CRF = 20
"""H.264 codes at constant quality (x264's CRF), under a cap that rate control sets
(VBV, see LibraryEncoder): a frame takes the bits its content needs, not the bitrate's
share. At the same SSIM as the old fixed 0.1 bits per pixel, CRF 20 took a quarter of
those bytes on the panning anim demo and three quarters on the cube, where a fixed
rate spent bits the picture did not need (vgpu bench stream, "rate and quality").
NVENC gets the same number as its constant-quality target (cq, on the same 0-51
quantizer scale) under the same cap; its SSIM and bytes there are not yet measured."""

VBV_FRAMES = 8.0
"""The cap's buffer holds this many frames' share of the bitrate, so a key frame or a
burst of motion may take several frames' share, and rate control's socket backlog check
(BACKLOG_FRAMES) skips the frames after it instead. With two frames' share, x264 starved
every frame on a throttled link: tests/spice/test_video_throttle.py's slow client showed
a median SSIM of 0.59-0.65 at the same delay (about 73 ms), against 0.88-0.94 with eight."""

ENCODER_THREADS = {"libx264": 2, "libx265": 2, "libvpx-vp9": 2, "libvpx": 1, "h264_nvenc": 1}
"""Threads inside one library encoder: this project's small host has two cores.
VP8 gets one: libvpx's VP8 with two threads and one token partition spun at
about 170 ms a 720p frame here, against 7 ms with one (measured with PyAV 18).
NVENC codes on the GPU: a CPU thread only feeds it."""

KEYFRAME_INTERVAL_S = 4.0
"""A key frame at least this often: a client that lost a frame (or joined late
through a proxy) recovers within this time; more often costs bytes."""

MIN_BITS_PER_PIXEL = 0.01
START_BITS_PER_PIXEL = 0.1
"""Bitrate per pixel per frame: 0.1 is a sharp desktop animation with H.264
(1280x720 at 60 frames/s: 5.5 Mbit/s), and rate control never asks for more;
on a slow link it goes down to 0.01, where edges blur but text stays legible."""

MIN_FPS = 2.0
"""The lowest frame rate rate control asks for: slower than this a stream is a
slide show, and still images (drawn once the region goes still) do better."""

BACKLOG_FRAMES = 2.0
"""A stream frame is skipped while the socket holds more than this many frames'
worth of bytes: the client gets the newest picture, and the queue never grows."""

DECREASE = 0.7
INCREASE = 1.15
"""Multiplicative steps of the frame rate, as TCP's congestion control takes them."""

QUALITY_FLOOR_FPS = 10.0
"""Down to this frame rate a slow link costs frames only; below it, bits per pixel
halve. Frames left out cost the encoder nothing, while a new bitrate reopens it
(a key frame, several times a frame's size at a low rate)."""

BPP_STEP = 2.0
REOPEN_INTERVAL_S = 2.0
"""Bits per pixel change by halves and doubles, at most this often: each change is
a key frame."""

MAX_LAG_S = 0.15
"""No new frame while the client has not reached one sent this long ago: the queue
on the way (socket buffers, proxies, a slow link) holds at most this much. A LAN
answers in milliseconds; a frame at 60 frames/s lasts 17."""

LATE_REPORT_MS = 100
"""A STREAM_REPORT whose last frame arrived more than this after its time means a
backlog somewhere on the way (frames are due a little after they are sent, see
DUE_MS_MIN; decoding alone takes a few milliseconds)."""

DUE_MS_MIN = 20
DUE_MS_MAX = 200
DUE_STEP_MS = 10
"""How long after it is sent a stream frame is due on the client's clock. spice-gtk
counts a frame that arrives after its time as a drop, throws away a late MJPEG frame
unseen, and shows a decoded frame no sooner than its time, so this margin is delay
every frame carries. It starts at 20 ms (on the cube at 1280x720, 40 ms took 15 to 20
ms more from present to shown for every codec and showed no more frames, vgpu bench
stream), grows by a step for each report of a frame that came late, and shrinks by a
step after DUE_RELAX_S without one; 200 ms covers a loaded client on a WAN."""

DUE_RELAX_S = 5.0
"""Reports without a late frame for this long take one step off the margin."""

REPORT_DROP_SHARE = 0.2
"""A STREAM_REPORT is congestion when more than this share of its frames were dropped
(spice-gtk counts a frame that arrived after its time as dropped): one frame in a
window of five (the server's STREAM_REPORT_WINDOW) late on a loaded client is a
hiccup, and stepping down for each cost two in five frames (vgpu bench stream)."""

FRAME_SLACK = 0.3
"""A frame that comes up to this share of an interval early is taken all the same:
frames are published and taken with a few milliseconds of jitter, and at the full
rate a frame 1 ms early, skipped, would halve the frame rate sent. More than the
sender's own pacing allows (vgpu.display.PACE_SLACK), so that no frame it takes at the
full rate is skipped here for a rounding."""

DECREASE_INTERVAL_S = 0.5
"""Congestion signals closer together than this are one episode: one step down."""

INCREASE_AFTER_S = 1.0
"""A clear link for this long earns one step up."""

MJPEG_QUALITY_START = 70
"""spice-server's MJPEG encoder starts at 70 too."""
MJPEG_QUALITY_MIN = 20
MJPEG_QUALITY_MAX = 85
"""Below 20 JPEG blocks are plain to see; past 85 the bytes grow fast for little."""
MJPEG_QUALITY_STEP = 10
"""Quality moves in steps as spice-server's (its samples 20, 30 .. 80): clients whose
rates differ a little then ask for the same quality, and the server encodes one JPEG
of a frame for all of them (SpiceServer.encode_stream) instead of one each."""


def available_codecs() -> frozenset[str]:
    """The codecs this host can encode: MJPEG always, the others when PyAV is
    installed with an FFmpeg encoder for them."""
    found = {"mjpeg"}
    try:
        import av
    except ImportError:
        return frozenset(found)
    found.update(name for name, libs in LIBRARY_CODECS.items()
                 if any(lib in av.codecs_available for lib in libs))
    return frozenset(found)


@dataclass(frozen=True)
class LibraryChoice:
    library: str  # FFmpeg's encoder
    passed_over: tuple[str, ...] = ()  # the ones before it, each with why it did not open


_PROBING = threading.Lock()  # streams open their encoders on the pool's threads


def library_for(codec: str) -> LibraryChoice:
    """The FFmpeg encoder this host uses for `codec`: the first of LIBRARY_CODECS that
    opens here (at PROBE_SIZE), found once per process. Where that is not the first
    choice, one line in the log says why not."""
    with _PROBING:
        return _probe(codec)


@functools.cache
def _probe(codec: str) -> LibraryChoice:
    passed_over: list[str] = []
    for library in LIBRARY_CODECS[codec]:
        reason = _open_failure(library, *PROBE_SIZE)
        if reason is None:
            if passed_over:
                log.info("%s encoder: %s (%s)", codec, library, "; ".join(passed_over))
            return LibraryChoice(library, tuple(passed_over))
        passed_over.append(f"{library}: {reason}")
    raise RuntimeError(f"no {codec} encoder opens here ({'; '.join(passed_over)})")


def _open_failure(library: str, width: int, height: int) -> str | None:
    """Why `library` does not open here at that size, or None when it does."""
    import av

    if library not in av.codecs_available:
        return "not in this PyAV build"
    # FFmpeg says why in its log ("Cannot load libcuda.so.1"), which PyAV leaves off
    # unless asked: on for this open, caught rather than passed to Python's logging.
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as said:
            _open_library(library, width, height, 30, 1_000_000)
    except av.error.FFmpegError as e:  # no GPU or driver, a session limit, a size
        why = "; ".join(message.strip() for _level, _name, message in said) or e.strerror
        return f"cannot be opened ({why})"
    finally:
        av.logging.set_level(level)
    return None


def _open_library(library: str, width: int, height: int, fps: int, bitrate: int) -> object:
    """An FFmpeg encoder opened for 4:2:0 frames at `fps`, capped at `bitrate`."""
    import av

    context = av.CodecContext.create(library, "w")
    context.width, context.height = width, height
    context.pix_fmt = "yuv420p"
    context.time_base = fractions.Fraction(1, fps)
    context.framerate = fractions.Fraction(fps, 1)
    context.gop_size = max(1, int(KEYFRAME_INTERVAL_S * fps))
    context.thread_count = ENCODER_THREADS[library]
    options = dict(LIBRARY_OPTIONS[library])
    kbps = max(1, bitrate // 1000)
    buffer_kbits = max(1, int(kbps * VBV_FRAMES / fps))
    if library == "libx264":
        options["crf"] = str(H264_CRF)
        options["x264-params"] = f"vbv-maxrate={kbps}:vbv-bufsize={buffer_kbits}"
    elif library == "h264_nvenc":
        options |= {"rc": "vbr", "cq": str(H264_CRF), "maxrate": str(kbps * 1000),
                    "bufsize": str(buffer_kbits * 1000)}
        context.bit_rate = bitrate
    else:
        context.bit_rate = bitrate
    context.options = options
    context.open()
    return context


@dataclass(frozen=True)
class CodecChoice:
    encoder: str  # one of ENCODER_NAMES
    codec: str  # one of VIDEO_CODECS


def parse_video_codecs(text: str, available: frozenset[str] | None = None) -> list[CodecChoice]:
    """spice-server's syntax: `encoder:codec` entries separated by `;`
    (`gstreamer:h264;gstreamer:vp8;spice:mjpeg`). An entry this host cannot
    encode is left out with a warning, as spice-server does; a malformed one
    is a ValueError."""
    available = available_codecs() if available is None else available
    choices: list[CodecChoice] = []
    for entry in text.split(";"):
        entry = entry.strip()
        if not entry:
            continue
        encoder, sep, codec = entry.partition(":")
        encoder, codec = encoder.strip().lower(), codec.strip().lower()
        if not sep or encoder not in ENCODER_NAMES or codec not in VIDEO_CODECS:
            raise ValueError(
                f"video codec {entry!r}: want ENCODER:CODEC with ENCODER one of "
                f"{', '.join(ENCODER_NAMES)} and CODEC one of {', '.join(VIDEO_CODECS)}"
            )
        if encoder == "spice" and codec != "mjpeg":
            raise ValueError(f"video codec {entry!r}: the spice encoder does MJPEG only")
        if codec not in available:
            log.warning("video codec %s: no encoder on this host, left out", entry)
            continue
        choice = CodecChoice("spice" if codec == "mjpeg" else "pyav", codec)
        if choice not in choices:
            choices.append(choice)
    return choices


def choose_codec(
    server_order: list[CodecChoice], client_codecs: frozenset[str], preferred: tuple[str, ...] = ()
) -> CodecChoice | None:
    """The codec for a new stream: the client's first preferred codec that the
    server offers, else the server's first that the client decodes; None when
    they share none (the region then goes out as still images)."""
    offered = [c for c in server_order if c.codec in client_codecs]
    for codec in preferred:
        for choice in offered:
            if choice.codec == codec:
                return choice
    return offered[0] if offered else None


@dataclass(frozen=True)
class Rate:
    """What rate control asks of an encoder: bits per second and frames per second."""

    bitrate: int
    fps: float


def bitrate_for(width: int, height: int, fps: float, bits_per_pixel: float) -> int:
    return int(width * height * fps * bits_per_pixel)


class Encoder(Protocol):
    """One stream's encoder. `encode` takes B,G,R,X pixels of the stream's size and
    returns the codec's frame (an empty result: the encoder dropped it)."""

    codec: str
    width: int
    height: int
    library: str | None  # what codes the frames (FFmpeg's encoder's name), once known

    def encode(self, pixels: np.ndarray) -> bytes: ...

    def set_rate(self, rate: Rate) -> None: ...

    def close(self) -> None: ...


class MjpegEncoder:
    """Stateless JPEG underneath; its only state is the quality rate control sets."""

    codec = "mjpeg"
    library = "libjpeg-turbo"

    def __init__(self, width: int, height: int, rate: Rate) -> None:
        self.width, self.height = width, height
        self.quality = MJPEG_QUALITY_START
        self._start_bitrate = bitrate_for(width, height, rate.fps, START_BITS_PER_PIXEL)

    def encode(self, pixels: np.ndarray) -> bytes:
        return encode_jpeg(pixels, self.quality)

    def set_rate(self, rate: Rate) -> None:
        # JPEG has no bitrate knob: quality follows the asked rate against the
        # starting one, on a scale that keeps it between the bounds.
        share = rate.bitrate / max(1, self._start_bitrate)
        wanted = MJPEG_QUALITY_START * share**0.5
        step = round((wanted - MJPEG_QUALITY_MIN) / MJPEG_QUALITY_STEP)
        self.quality = min(MJPEG_QUALITY_MAX,
                           max(MJPEG_QUALITY_MIN, MJPEG_QUALITY_MIN + step * MJPEG_QUALITY_STEP))

    def close(self) -> None:
        pass


class LibraryEncoder:
    """H.264, VP8, VP9 or H.265 through PyAV.

    The encoder runs at the frame rate it was opened with; a lower asked rate
    means frames left out, so its bitrate is scaled to keep the bits per frame
    that the asked rate gives. A new bitrate reopens the encoder (the next frame
    is a key frame), so rate control changes it at most every DECREASE_INTERVAL_S."""

    def __init__(self, codec: str, width: int, height: int, rate: Rate) -> None:
        if codec not in LIBRARY_CODECS:
            raise ValueError(f"no library encoder for {codec!r}")
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"4:2:0 video needs an even size, not {width}x{height}")
        self.codec, self.width, self.height = codec, width, height
        self._fps = max(1, round(rate.fps))
        self._bitrate = self._scaled(rate)
        self._context: object | None = None
        self._pts = 0
        self.library: str | None = None  # FFmpeg's encoder, once the first frame opens one

    def _scaled(self, rate: Rate) -> int:
        return int(rate.bitrate * self._fps / max(rate.fps, 1e-3))

    def _open(self) -> object:
        import av

        if self.library is None:
            self.library = library_for(self.codec).library
        fps = self._fps
        try:
            context = _open_library(self.library, self.width, self.height, fps, self._bitrate)
        except av.error.FFmpegError as e:
            fallback = LIBRARY_CODECS[self.codec][-1]
            if self.library == fallback:
                raise
            # Opened at PROBE_SIZE but not here: NVENC's limit on sessions at once
            # (one per stream), or a size it does not take. This stream goes on the CPU.
            log.warning("%s encoder: %s for this %dx%d stream (%s cannot be opened: %s)",
                        self.codec, fallback, self.width, self.height, self.library, e)
            self.library = fallback
            context = _open_library(self.library, self.width, self.height, fps, self._bitrate)
        self._pts = 0
        return context

    def encode(self, pixels: np.ndarray) -> bytes:
        import av

        if pixels.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {pixels.shape[1]}x{pixels.shape[0]} for a "
                             f"{self.width}x{self.height} stream")
        if self._context is None:
            self._context = self._open()
        context = self._context
        # Our C converter reads the pixels where they are (a crop keeps its row stride)
        # and writes the frame's planes in place: half the CPU of libswscale's path
        # from B,G,R,A (about 1.3 against 2.7 ms a 1280x720 frame here, measured by
        # CPU time over 20 cube frames).
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        bgrx_to_i420(pixels, *(
            np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
            for plane in frame.planes))
        frame.pts = self._pts
        self._pts += 1
        return b"".join(bytes(p) for p in context.encode(frame))  # type: ignore[attr-defined]

    def set_rate(self, rate: Rate) -> None:
        bitrate = self._scaled(rate)
        if bitrate == self._bitrate:
            return
        self._bitrate = bitrate
        # Reopened with the new rate at the next frame. (A bitrate set on the open
        # context did not change libx264's frame sizes through PyAV 18 here.)
        self._context = None

    def close(self) -> None:
        self._context = None


def create_encoder(choice: CodecChoice, width: int, height: int, rate: Rate) -> Encoder:
    if choice.codec == "mjpeg":
        return MjpegEncoder(width, height, rate)
    return LibraryEncoder(choice.codec, width, height, rate)


class RateControl:
    """Per stream: the rate to ask of the encoder, from the socket's backlog and the
    client's STREAM_REPORTs. Pure logic (the caller passes the clock)."""

    def __init__(self, width: int, height: int, max_fps: float, now: float) -> None:
        self.width, self.height = width, height
        self.max_fps = max_fps
        self.fps = max_fps
        self.bits_per_pixel = START_BITS_PER_PIXEL
        self._last_change = now
        self._last_reopen = now
        self._last_sent = -1e9
        self.due_ms = DUE_MS_MIN
        self._last_late = now
        self.skipped = 0
        self.frame_bytes = 0.0  # running mean of an encoded frame's size

    def rate(self) -> Rate:
        return Rate(bitrate_for(self.width, self.height, self.fps, self.bits_per_pixel),
                    self.fps)

    def want_frame(self, backlog: int, now: float, lag: float = 0.0) -> bool:
        """Whether the stream's next frame should be encoded now. `backlog`: bytes
        waiting in the client's socket; `lag`: seconds the client is behind (how long
        the oldest frame sent has gone without the client reaching it)."""
        if lag > MAX_LAG_S or backlog > BACKLOG_FRAMES * max(self.frame_bytes, 1.0):
            self.skipped += 1
            self.congested(now)
            return False
        if now - self._last_sent < (1.0 - FRAME_SLACK) / self.fps:
            return False
        self.clear(now)
        return True

    def sent(self, size: int, now: float) -> None:
        """A frame went out; `now`: when it was taken (the time want_frame was asked)."""
        self._last_sent = now
        self.frame_bytes = size if not self.frame_bytes else 0.8 * self.frame_bytes + 0.2 * size

    def report(self, frames: int, drops: int, last_frame_delay_ms: int, now: float) -> None:
        """A STREAM_REPORT: many drops, or frames arriving well after their time, mean
        the client cannot keep up (link or decoder). Any frame that came after its
        time widens the margin frames are due with (due_ms)."""
        if drops > 0 or last_frame_delay_ms < 0:
            self._last_late = now
            self.due_ms = min(DUE_MS_MAX, self.due_ms + DUE_STEP_MS)
        elif now - self._last_late >= DUE_RELAX_S and self.due_ms > DUE_MS_MIN:
            self._last_late = now
            self.due_ms = max(DUE_MS_MIN, self.due_ms - DUE_STEP_MS)
        if drops > REPORT_DROP_SHARE * max(frames, 1) or last_frame_delay_ms < -LATE_REPORT_MS:
            self.congested(now)

    def congested(self, now: float) -> None:
        if now - self._last_change < DECREASE_INTERVAL_S:
            return
        self._last_change = now
        if self.fps > QUALITY_FLOOR_FPS:
            self.fps = max(QUALITY_FLOOR_FPS, self.fps * DECREASE)
        elif self.bits_per_pixel > MIN_BITS_PER_PIXEL:
            if now - self._last_reopen >= REOPEN_INTERVAL_S:
                self._last_reopen = now
                self.bits_per_pixel = max(MIN_BITS_PER_PIXEL, self.bits_per_pixel / BPP_STEP)
        else:
            self.fps = max(MIN_FPS, self.fps * DECREASE)

    def clear(self, now: float) -> None:
        if now - self._last_change < INCREASE_AFTER_S:
            return
        if self.fps < self.max_fps:
            self._last_change = now
            self.fps = min(self.max_fps, self.fps * INCREASE)
        elif (self.bits_per_pixel < START_BITS_PER_PIXEL
              and now - self._last_reopen >= REOPEN_INTERVAL_S):
            self._last_change = self._last_reopen = now
            self.bits_per_pixel = min(START_BITS_PER_PIXEL, self.bits_per_pixel * BPP_STEP)
