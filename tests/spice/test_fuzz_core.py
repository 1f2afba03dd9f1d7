"""Hostile bytes into the sans-IO machines: they close with a reason, never raise or hang."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spice_testkit import VALID, encrypt_ticket, link_request, mini, mutate, mutation

from vgpu.spice import constants as c
from vgpu.spice.channels import (
    ChannelClosed,
    CursorChannel,
    DisplayChannel,
    InputsChannel,
    MainChannel,
)
from vgpu.spice.link import LinkClosed, Linked, LinkMachine, LinkState, new_ticket_key

KEY = new_ticket_key()
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID_LINK = link_request(c.SPICE_CHANNEL_DISPLAY, connection_id=5, channel_caps=(0, 1, 5))


def valid_ticket() -> bytes:
    link = LinkMachine("pw", KEY)
    link.receive_data(VALID_LINK)
    out = link.data_to_send()
    return struct.pack("<I", 1) + encrypt_ticket(out[16:], "pw")


TICKET = valid_ticket()


def feed_link(chunks: list[bytes]) -> None:
    link = LinkMachine("pw", KEY)
    closed = False
    for chunk in chunks:
        events = link.receive_data(chunk)
        assert isinstance(link.data_to_send(), bytes)
        for event in events:
            assert isinstance(event, LinkClosed | Linked)
            if isinstance(event, LinkClosed):
                assert event.reason
                closed = True
        if closed:
            assert link.state is LinkState.CLOSED
            assert link.receive_data(b"more") == []


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def link_random(data: bytes) -> None:
    feed_link([data])


def link_mutated(edits: list, cuts: list[int]) -> None:
    feed_link(chunked(mutate(VALID_LINK + TICKET, edits), cuts))


def linked(kind: int) -> Linked:
    return Linked(kind, 0, 0, (0b1011,), (0xFFFFFFFF,))


MACHINES = {
    "main": lambda: MainChannel(
        linked(c.SPICE_CHANNEL_MAIN), 1, ((c.SPICE_CHANNEL_DISPLAY, 0),), "vm", bytes(16)
    ),
    "display": lambda: DisplayChannel(linked(c.SPICE_CHANNEL_DISPLAY)),
    "inputs": lambda: InputsChannel(linked(c.SPICE_CHANNEL_INPUTS)),
    "cursor": lambda: CursorChannel(linked(c.SPICE_CHANNEL_CURSOR)),
}

# Message types worth aiming at: every type a client may send, plus some that it may not.
TYPES = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 100, *range(101, 116), 200, 0xFFFF])
message = st.tuples(TYPES, st.binary(max_size=64)).map(lambda m: mini(*m))
stream = st.lists(st.one_of(message, st.binary(max_size=32)), max_size=20)


def feed_channel(name: str, parts: list[bytes], cuts: list[int]) -> None:
    machine = MACHINES[name]()
    data = b"".join(parts)
    closed = False
    for chunk in chunked(data, cuts):
        events = machine.receive_data(chunk)
        machine.data_to_send()
        if closed:
            assert events == []
        if any(isinstance(e, ChannelClosed) for e in events):
            assert isinstance(events[-1], ChannelClosed) and events[-1].reason
            assert machine.closed
            closed = True


@FAST
@given(st.binary(max_size=400))
def test_link_random_bytes(data):
    link_random(data)


@FAST
@given(st.lists(mutation, min_size=1, max_size=6), st.lists(st.integers(0, 500), max_size=4))
def test_link_mutated(edits, cuts):
    link_mutated(edits, cuts)


@pytest.mark.parametrize("name", sorted(MACHINES))
@FAST
@given(parts=stream, cuts=st.lists(st.integers(0, 2000), max_size=4))
def test_channel_messages(name, parts, cuts):
    feed_channel(name, parts, cuts)


@pytest.mark.parametrize("name", sorted(MACHINES))
@FAST
@given(
    edits=st.lists(mutation, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 200), max_size=4)
)
def test_channel_valid_messages_mutated(name, edits, cuts):
    feed_channel(name, [mutate(VALID[name], edits)], cuts)


def test_valid_messages_are_accepted():
    for name, data in VALID.items():
        machine = MACHINES[name]()
        assert not any(isinstance(e, ChannelClosed) for e in machine.receive_data(data)), name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MACHINES))
@SLOW
@given(
    edits=st.lists(mutation, min_size=1, max_size=10),
    cuts=st.lists(st.integers(0, 200), max_size=6),
)
def test_channel_valid_messages_mutated_many(name, edits, cuts):
    feed_channel(name, [mutate(VALID[name], edits)], cuts)


@pytest.mark.slow
@SLOW
@given(st.lists(mutation, min_size=1, max_size=10), st.lists(st.integers(0, 500), max_size=6))
def test_link_mutated_many(edits, cuts):
    link_mutated(edits, cuts)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MACHINES))
@SLOW
@given(parts=stream, cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_channel_messages_many(name, parts, cuts):
    feed_channel(name, parts, cuts)
