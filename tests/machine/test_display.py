"""The frame bus: what a consumer takes is the newest frame and all damage since its last take."""

import numpy as np

from vgpu.display import MAX_PENDING_DAMAGE_RECTS, PACE_SLACK, Frame, FrameBus, Pacer


def frame(serial: int, surface: int, damage, size=(8, 16)) -> Frame:
    return Frame(serial, surface, np.zeros((*size, 4), np.uint8), tuple(damage))


def test_new_consumer_gets_the_whole_screen_then_damage_only():
    bus = FrameBus()
    bus.publish(frame(1, 1, [(0, 0, 2, 2)]))
    sub = bus.subscribe()
    taken, damage = sub.take()
    assert taken.serial == 1 and damage == ((0, 0, 16, 8),)
    assert sub.take() is None
    bus.publish(frame(2, 1, [(1, 1, 3, 3)]))
    bus.publish(frame(3, 1, [(4, 4, 5, 5)]))
    taken, damage = sub.take()
    assert taken.serial == 3 and damage == ((1, 1, 3, 3), (4, 4, 5, 5))


def test_a_new_surface_is_sent_whole_even_after_the_last_frame_was_taken():
    bus = FrameBus()
    sub = bus.subscribe()
    bus.publish(frame(1, 1, [(0, 0, 1, 1)]))
    sub.take()
    bus.publish(frame(2, 2, [(0, 0, 1, 1)], size=(4, 4)))
    taken, damage = sub.take()
    assert taken.surface_serial == 2 and damage == ((0, 0, 4, 4),)


def test_a_slow_consumer_holds_bounded_damage():
    bus = FrameBus()
    sub = bus.subscribe()
    bus.publish(frame(0, 1, []))
    sub.take()
    for i in range(MAX_PENDING_DAMAGE_RECTS + 10):
        bus.publish(frame(i + 1, 1, [(0, 0, 1, 1)]))
    assert len(sub._damage) <= MAX_PENDING_DAMAGE_RECTS
    _, damage = sub.take()
    assert damage == ((0, 0, 16, 8),)


def test_closed_subscription_gets_nothing_more():
    bus = FrameBus()
    calls = []
    sub = bus.subscribe(lambda: calls.append(1))
    sub.close()
    bus.publish(frame(1, 1, [(0, 0, 1, 1)]))
    assert calls == [] and sub.take() is None



def _paced(arrivals: list[float], rate: float, overshoot: float = 0.0) -> list[float]:
    """When each event goes, events arriving at `arrivals`, one at a time through a Pacer
    (an event waits for its turn, and a timer wakes `overshoot` seconds after it was
    asked to; one that arrives while another waits replaces it: frames merge)."""
    pacer = Pacer(rate)
    went: list[float] = []
    pending: float | None = None
    for arrival in [*arrivals, float("inf")]:
        while pending is not None:
            wait = pacer.wait(pending)
            at = pending + (wait + overshoot if wait else 0.0)
            if at > arrival:
                break
            pacer.went(at)
            went.append(at)
            pending = None
        pending = arrival
    return went


def test_pacer_lets_a_jittery_source_at_its_rate_through() -> None:
    # 60 frames/s with frames up to 3 ms late, through waits that wake 1 ms late (a
    # timer's granularity on a loaded host): each frame goes. A minimum gap of one
    # period from the last event added each wake's overshoot to the next and merged one
    # frame in eighteen here (567 of 600).
    rng = np.random.default_rng(1)
    arrivals = [i / 60 + rng.uniform(0, 0.003) for i in range(600)]
    assert len(_paced(arrivals, 60.0, overshoot=0.001)) == len(arrivals)


def test_pacer_holds_a_fast_source_to_its_rate() -> None:
    went = _paced([i / 240 for i in range(2400)], 60.0, overshoot=0.001)
    assert 590 <= len(went) <= 601
    assert np.diff(went).min() >= (1 - PACE_SLACK) / 60 - 1e-9


def test_pacer_earns_no_burst_from_an_idle_spell() -> None:
    # A second of nothing, then a source at 240/s for 0.2 s: it gets the rate (13 slots
    # from 1.0 to the last event, which waits for its slot), not a second's catch-up.
    went = [t for t in _paced([0.0, *(1.0 + i / 240 for i in range(48))], 60.0) if t >= 1.0]
    assert len(went) <= 14
    assert np.diff(went).min() >= (1 - PACE_SLACK) / 60 - 1e-9
