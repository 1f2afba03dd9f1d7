"""Hostile bytes into the sans-IO machines: they close with a reason, never raise or hang.

The cases are in protocol_fuzz.py (shared with `vgpu bench soak --fuzz`)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_fuzz import (
    MACHINES,
    MAX_BODY,
    MAX_PARTS,
    MESSAGE_TYPES,
    feed_channel,
    link_mutated,
    link_random,
)
from spice_testkit import VALID, mini, mutate, mutation

from vgpu.spice.channels import ChannelClosed

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TYPES = st.sampled_from(MESSAGE_TYPES)
message = st.tuples(TYPES, st.binary(max_size=MAX_BODY)).map(lambda m: mini(*m))
stream = st.lists(st.one_of(message, st.binary(max_size=MAX_BODY // 2)), max_size=MAX_PARTS)


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
