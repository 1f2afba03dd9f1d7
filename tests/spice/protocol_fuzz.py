"""The protocol fuzzer's cases, shared by tests/spice/test_fuzz_core.py (hypothesis draws
their inputs and shrinks failures) and `vgpu bench soak --fuzz` (random.Random draws them
at scale): hostile bytes into the sans-IO machines, which must close with a reason and
never raise or hang. `feed_link` and `feed_channel` assert what must hold.
"""

from __future__ import annotations

import itertools
import random
import struct

from spice_testkit import VALID, encrypt_ticket, link_request, mini, mutate

from vgpu.spice import constants as const
from vgpu.spice.channels import (
    ChannelClosed,
    CursorChannel,
    DisplayChannel,
    InputsChannel,
    MainChannel,
)
from vgpu.spice.link import LinkClosed, Linked, LinkMachine, LinkState, new_ticket_key

KEY = new_ticket_key()
VALID_LINK = link_request(const.SPICE_CHANNEL_DISPLAY, connection_id=5, channel_caps=(0, 1, 5))


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
        linked(const.SPICE_CHANNEL_MAIN), 1, ((const.SPICE_CHANNEL_DISPLAY, 0),), "vm", bytes(16)
    ),
    "display": lambda: DisplayChannel(linked(const.SPICE_CHANNEL_DISPLAY)),
    "inputs": lambda: InputsChannel(linked(const.SPICE_CHANNEL_INPUTS)),
    "cursor": lambda: CursorChannel(linked(const.SPICE_CHANNEL_CURSOR)),
}

# Message types worth aiming at: every type a client may send, plus some that it may not.
MESSAGE_TYPES = [1, 2, 3, 4, 5, 6, 7, 100, *range(101, 116), 200, 0xFFFF]
MAX_BODY = 64  # a random message's body; a random non-message chunk is half that
MAX_PARTS = 20  # messages and chunks in one random stream


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


# -- the same inputs from random.Random, for runs of millions of messages


def random_edits(rng: random.Random, most: int = 10) -> list[tuple[int, int, str]]:
    """What spice_testkit.mutation draws: (position, byte, replace/insert/delete)."""
    return [(rng.randint(0, 10_000), rng.randint(0, 255), rng.choice("rid"))
            for _ in range(rng.randint(1, most))]


def random_cuts(rng: random.Random, most: int, within: int) -> list[int]:
    return [rng.randint(0, within) for _ in range(rng.randint(0, most))]


def random_stream(rng: random.Random) -> list[bytes]:
    """Mini-header messages of aimed types with random bodies, and raw chunks."""
    return [mini(rng.choice(MESSAGE_TYPES), rng.randbytes(rng.randint(0, MAX_BODY)))
            if rng.random() < 0.5 else rng.randbytes(rng.randint(0, MAX_BODY // 2))
            for _ in range(rng.randint(0, MAX_PARTS))]


def valid_messages(name: str) -> int:
    """How many messages VALID[name] holds (a mutated copy counts as that many)."""
    data, count = VALID[name], 0
    while data:
        _type, size = struct.unpack_from("<HI", data)
        data, count = data[6 + size:], count + 1
    return count
