"""The display channel's message order, without sockets: the transition table, the
order show_surface and show_update queue, and the refusals.

The client side is a model of what spice-gtk's display channel needs (a surface
before anything drawn on it, a stream created before its frames and destroyed once,
the primary shown at its mark): our own model, as no sans-IO SPICE client exists
to run; tests/spice/test_real_clients.py runs the same order against spice-gtk.
"""

from __future__ import annotations

import random
import struct

import pytest
from spice_testkit import split_messages

from vgpu.spice import constants as const
from vgpu.spice.channels import (
    DisplayChannel,
    EncodedRegion,
    FrameUpdate,
    StreamFrame,
    StreamStart,
)
from vgpu.spice.display_order import (
    TRANSITIONS,
    DisplayOrder,
    DisplayState,
    OrderError,
    Send,
)
from vgpu.spice.link import Linked

MJPEG = const.SPICE_VIDEO_CODEC_TYPE_MJPEG


def display(*caps: int) -> DisplayChannel:
    words = (sum(1 << b for b in caps),) if caps else ()
    return DisplayChannel(Linked(const.SPICE_CHANNEL_DISPLAY, 0, 0, (0b1011,), words))


def region(rect=(0, 0, 8, 8)) -> EncodedRegion:
    return EncodedRegion(rect, const.SPICE_IMAGE_TYPE_LZ4, b"\0" * 4)


def types(channel: DisplayChannel) -> list[int]:
    return [t for t, _ in split_messages(channel.data_to_send())]


class ClientModel:
    """A display client's view: which surface and streams exist, what is shown."""

    def __init__(self) -> None:
        self.surface = False
        self.marked = False
        self.streams: set[int] = set()
        self.draws = 0

    def feed(self, data: bytes) -> None:
        for msg_type, body in split_messages(data):
            if msg_type == const.SPICE_MSG_DISPLAY_SURFACE_CREATE:
                assert not self.surface, "a second primary without a destroy"
                self.surface, self.marked = True, False
            elif msg_type == const.SPICE_MSG_DISPLAY_SURFACE_DESTROY:
                assert self.surface and not self.streams, "destroyed under a stream"
                self.surface = False
            elif msg_type == const.SPICE_MSG_DISPLAY_MARK:
                assert self.surface and not self.marked
                self.marked = True
            elif msg_type == const.SPICE_MSG_DISPLAY_DRAW_COPY:
                assert self.surface, "a draw before its surface"
                self.draws += 1
            elif msg_type == const.SPICE_MSG_DISPLAY_STREAM_CREATE:
                (stream_id,) = struct.unpack_from("<I", body, 4)
                assert self.marked and stream_id not in self.streams
                self.streams.add(stream_id)
            elif msg_type in (const.SPICE_MSG_DISPLAY_STREAM_DATA,
                              const.SPICE_MSG_DISPLAY_STREAM_ACTIVATE_REPORT):
                (stream_id,) = struct.unpack_from("<I", body)
                assert stream_id in self.streams, f"a message for unknown stream {stream_id}"
            elif msg_type == const.SPICE_MSG_DISPLAY_STREAM_DESTROY:
                (stream_id,) = struct.unpack_from("<I", body)
                self.streams.remove(stream_id)


def test_first_surface_then_a_new_one_under_a_stream():
    channel = display(const.SPICE_DISPLAY_CAP_MONITORS_CONFIG)
    assert channel.state is DisplayState.NO_SURFACE
    channel.show_surface(64, 48, False, region((0, 0, 64, 48)))
    assert types(channel) == [const.SPICE_MSG_DISPLAY_SURFACE_CREATE,
                              const.SPICE_MSG_DISPLAY_MONITORS_CONFIG,
                              const.SPICE_MSG_DISPLAY_DRAW_COPY, const.SPICE_MSG_DISPLAY_MARK]
    assert channel.state is DisplayState.SHOWN
    channel.show_update(FrameUpdate(started=StreamStart(3, (0, 0, 32, 32), 0, MJPEG)))
    channel.data_to_send()
    channel.show_surface(80, 60, True, region((0, 0, 80, 60)), ended=(3,))
    assert types(channel) == [const.SPICE_MSG_DISPLAY_STREAM_DESTROY,
                              const.SPICE_MSG_DISPLAY_SURFACE_DESTROY,
                              const.SPICE_MSG_DISPLAY_SURFACE_CREATE,
                              const.SPICE_MSG_DISPLAY_MONITORS_CONFIG,
                              const.SPICE_MSG_DISPLAY_DRAW_COPY, const.SPICE_MSG_DISPLAY_MARK]
    assert channel.surface == (80, 60) and channel.order.streams == set()


@pytest.mark.parametrize("report_cap", [False, True])
def test_update_order_whatever_the_fields_say(report_cap):
    channel = display(*([const.SPICE_DISPLAY_CAP_STREAM_REPORT] if report_cap else []))
    channel.show_surface(64, 48, False, region())
    channel.show_update(FrameUpdate(started=StreamStart(1, (0, 0, 32, 32), 0, MJPEG)))
    channel.data_to_send()
    update = FrameUpdate(
        ended=(1,), draws=(region(), region((8, 8, 16, 16))),
        started=StreamStart(2, (0, 0, 32, 32), 5, MJPEG, report=(5, 1000)),
        video=StreamFrame(2, 5, b"jpeg", ping=(9, 1234)),
        copies=(((40, 0, 48, 8), (0, 40)),), drawn_copies=(((16, 0, 24, 8), (0, 0)),))
    channel.show_update(update)
    report = [const.SPICE_MSG_DISPLAY_STREAM_ACTIVATE_REPORT] if report_cap else []
    assert types(channel) == [
        const.SPICE_MSG_DISPLAY_STREAM_DESTROY, const.SPICE_MSG_DISPLAY_COPY_BITS,
        const.SPICE_MSG_DISPLAY_DRAW_COPY, const.SPICE_MSG_DISPLAY_DRAW_COPY,
        const.SPICE_MSG_DISPLAY_COPY_BITS, const.SPICE_MSG_DISPLAY_STREAM_CREATE, *report,
        const.SPICE_MSG_DISPLAY_STREAM_DATA, const.SPICE_MSG_PING]
    assert channel.state is DisplayState.SHOWN
    assert channel.order.streams == {2}


@pytest.mark.parametrize("wrong", [
    lambda ch: ch.draw_copy(region()),  # nothing to draw on
    lambda ch: ch.mark(),
    lambda ch: ch.show_update(FrameUpdate()),  # an update of no surface
    lambda ch: ch.stream_data(1, 0, b"x"),
    lambda ch: ch.surface_destroy(),
])
def test_refused_before_the_first_surface(wrong):
    channel = display()
    with pytest.raises(OrderError):
        wrong(channel)
    assert channel.state is DisplayState.NO_SURFACE
    assert channel.data_to_send() == b""


@pytest.mark.parametrize("wrong, message", [
    (lambda ch: ch.mark(), "mark in state shown"),
    (lambda ch: ch.stream_data(7, 0, b"x"), "stream 7, which the client does not have"),
    (lambda ch: ch.stream_destroy(7), "stream 7, which the client does not have"),
    (lambda ch: ch.ping(1, 0), "ping in state shown"),  # only after a stream frame
    (lambda ch: ch.show_surface(8, 8, False, region()),  # stream 1 left live under it
     "surface destroy under live streams [1]"),
    (lambda ch: ch.show_update(FrameUpdate(started=StreamStart(1, (0, 0, 8, 8), 0, MJPEG))),
     "stream 1 created twice"),
    (lambda ch: ch.show_update(FrameUpdate(draws=(region(),), ended=(1,))), None),  # fine
])
def test_refused_on_a_shown_surface(wrong, message):
    channel = display()
    channel.show_surface(64, 48, False, region())
    channel.show_update(FrameUpdate(started=StreamStart(1, (0, 0, 32, 32), 0, MJPEG)))
    channel.data_to_send()
    if message is None:
        wrong(channel)
        return
    with pytest.raises(OrderError, match=message.replace("[", r"\[").replace("]", r"\]")):
        wrong(channel)
    assert channel.order.streams == {1}


def test_every_state_refuses_what_the_table_leaves_out():
    """Each state reached by a legal path; then every message: the table's next state,
    or OrderError with the state unchanged. Stream messages name stream 1, live in
    every state but NO_SURFACE and UNMARKED; a create names a new one."""
    shown = [(Send.SURFACE_CREATE, None), (Send.MARK, None),
             (Send.STREAM_CREATE, 1), (Send.FRAME_END, None)]
    paths = {
        DisplayState.NO_SURFACE: [],
        DisplayState.UNMARKED: [(Send.SURFACE_CREATE, None)],
        DisplayState.SHOWN: shown,
        DisplayState.ENDING: [*shown, (Send.STREAM_CREATE, 2), (Send.FRAME_END, None),
                              (Send.STREAM_DESTROY, 2)],
        DisplayState.FORGETTING: [*shown, (Send.INVAL_LIST, None)],
        DisplayState.COPYING: [*shown, (Send.COPY_BITS, None)],
        DisplayState.DRAWING: [*shown, (Send.DRAW_COPY, None)],
        DisplayState.RECOPYING: [*shown, (Send.DRAW_COPY, None), (Send.COPY_DRAWN, None)],
        DisplayState.STARTING: [*shown, (Send.STREAM_CREATE, 2)],
        DisplayState.STREAMING: [*shown, (Send.STREAM_DATA, 1)],
    }
    assert set(paths) == set(DisplayState) == set(TRANSITIONS)
    for state, path in paths.items():
        for message in Send:
            order = DisplayOrder()
            for step, stream_id in path:
                order.send(step, stream_id)
            assert order.state is state
            stream = 3 if message is Send.STREAM_CREATE else 1
            if message not in TRANSITIONS[state]:
                with pytest.raises(OrderError, match=f"{message.value} in state"):
                    order.send(message, stream)
                assert order.state is state
            elif message is Send.SURFACE_DESTROY:  # allowed, but not under stream 1
                with pytest.raises(OrderError, match="under live streams"):
                    order.send(message, stream)
                order.send(Send.STREAM_DESTROY, 1)
                order.send(message)
                assert order.state is TRANSITIONS[DisplayState.ENDING][message]
            else:
                order.send(message, stream)
                assert order.state is TRANSITIONS[state][message]


def test_random_frames_keep_the_clients_rules():
    """Random sequences of what the sender hands over (new surfaces, streams starting,
    ending and getting frames, draws): the client model accepts every byte."""
    rng = random.Random(7)
    for _case in range(200):
        channel, client = display(const.SPICE_DISPLAY_CAP_STREAM_REPORT), ClientModel()
        live: int | None = None
        next_id = 0
        for _frame in range(rng.randint(1, 20)):
            if channel.surface is None or rng.random() < 0.1:
                ended = () if live is None else (live,)
                channel.show_surface(64, 48, False, region(), ended)
                live = None
            else:
                ended, started, video = (), None, None
                if live is not None and rng.random() < 0.3:
                    ended, live = (live,), None
                if live is None and rng.random() < 0.3:
                    next_id += 1
                    live = next_id
                    started = StreamStart(live, (0, 0, 32, 32), 0, MJPEG, (5, 1000))
                if live is not None and rng.random() < 0.7:
                    ping = (1, 0) if rng.random() < 0.5 else None
                    video = StreamFrame(live, 0, b"jpeg", ping)
                draws = tuple(region() for _ in range(rng.randint(0, 3)))
                channel.show_update(FrameUpdate(ended, draws, started, video))
            client.feed(channel.data_to_send())
            assert client.surface and client.marked
            assert client.streams == channel.order.streams
