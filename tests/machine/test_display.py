"""The frame bus: what a consumer takes is the newest frame and all damage since its last take."""

import numpy as np

from vgpu.display import MAX_PENDING_DAMAGE_RECTS, Frame, FrameBus


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
