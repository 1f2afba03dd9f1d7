"""Clients that keep up share each frame's work: one encode per region for all of them,
and every one still gets the exact pixels (decoded by the same path as alone)."""

from __future__ import annotations

import asyncio
import struct

import pytest
from spice_testkit import RawClient, ServerThread, SyntheticSource, pattern

from vgpu.spice import constants as const
from vgpu.spice import server as server_module
from vgpu.spice.imaging import Compression
from vgpu.spice.server import ServerOptions

CLIENTS = 4


def session_display(port: int) -> tuple[RawClient, RawClient]:
    main = RawClient(port, const.SPICE_CHANNEL_MAIN)
    session = struct.unpack_from("<I", main.recv_until(const.SPICE_MSG_MAIN_INIT))[0]
    display = RawClient(port, const.SPICE_CHANNEL_DISPLAY, session)
    generation, _window = struct.unpack("<II", display.recv_until(const.SPICE_MSG_SET_ACK))
    display.send(const.SPICE_MSGC_ACK_SYNC, struct.pack("<I", generation))
    display.recv_until(const.SPICE_MSG_DISPLAY_MARK)
    return main, display


@pytest.fixture
def encodes(monkeypatch) -> list[tuple[int, tuple[int, int, int, int]]]:
    """(frame serial, rect) of every still-region encode the server runs (whole or split by
    content)."""
    calls: list[tuple[int, tuple[int, int, int, int]]] = []

    def counted(name: str):
        real = getattr(server_module, name)

        def counting(frame, rect, imaging):
            calls.append((frame.serial, rect))
            return real(frame, rect, imaging)

        monkeypatch.setattr(server_module, name, counting)

    counted("encode_rect")
    counted("encode_rect_by_content")
    return calls


@pytest.fixture
def served():
    source = SyntheticSource()
    source.publish(pattern(160, 120))
    srv = ServerThread(source, ServerOptions(compression=Compression(streaming="off")))
    yield source, srv
    srv.stop()


def test_clients_at_the_same_frame_share_its_encodes(encodes, served):
    source, srv = served
    calls = encodes
    clients: list[tuple[RawClient, RawClient]] = []
    try:
        for _ in range(CLIENTS):
            clients.append(session_display(srv.port))
        calls.clear()
        frame = source.publish(pattern(160, 120, seed=3), damage=((10, 20, 50, 60),))
        bodies = []
        for _main, display in clients:
            bodies.append(display.recv_until(const.SPICE_MSG_DISPLAY_DRAW_COPY))
        # once, not once per client (the damage trimmed to what changed: the noise)
        assert calls == [(frame.serial, (10, 20, 42, 36))]  # 16-pixel tiles from (10, 20)
        # The same picture for each (the image id in its descriptor is per client).
        images = {body[struct.unpack_from("<I", body, 21)[0] + 8:] for body in bodies}
        assert len(images) == 1
    finally:
        for main, display in clients:
            main.close()
            display.close()


def test_a_lagging_client_encodes_its_own_merged_damage(encodes, served):
    source, srv = served
    main, display = session_display(srv.port)
    encodes.clear()
    # Two frames before the client can be sent either: it gets their damage merged.
    srv.call(_publish_two(source))
    body = display.recv_until(const.SPICE_MSG_DISPLAY_DRAW_COPY)
    top, left, bottom, right = struct.unpack_from("<iiii", body, 4)
    # merged, and sent as it is: only a client that had the frame before searches and
    # trims against it (one search for all of them), so a lagging one costs no search
    assert (left, top, right, bottom) == (0, 0, 40, 40)
    assert [rect for _serial, rect in encodes] == [(0, 0, 40, 40)]
    main.close()
    display.close()


async def _publish_two(source: SyntheticSource) -> None:
    """On the server's loop, so no sender runs between the two publications."""
    source.publish(pattern(160, 120, seed=4), damage=((0, 0, 40, 20),))
    source.publish(pattern(160, 120, seed=5), damage=((0, 20, 40, 40),))


class _Sender:
    def __init__(self, name: str, woken: list[str]) -> None:
        self.name, self._woken = name, woken

    def wake(self) -> None:
        self._woken.append(self.name)


class _Loop:
    """The one call FrameWaker makes of an event loop, recorded."""

    def __init__(self) -> None:
        self.handoffs: list = []

    def call_soon_threadsafe(self, callback) -> None:
        self.handoffs.append(callback)


def test_one_wake_per_frame_for_all_senders_in_an_order_that_turns() -> None:
    woken: list[str] = []
    waker = server_module.FrameWaker()
    for name in "abcd":
        waker.add(_Sender(name, woken))
    loop = _Loop()
    orders = []
    for _frame in range(4):
        for _subscription in range(4):  # each subscription's notify, on the render thread
            waker.notify(loop)  # type: ignore[arg-type]
        assert len(loop.handoffs) == 1  # one hand-off to the loop, not one each
        loop.handoffs.pop()()
        orders.append("".join(woken))
        woken.clear()
    assert sorted(orders) == ["abcd", "bcda", "cdab", "dabc"]  # each sender last once
    waker.notify(loop)  # type: ignore[arg-type]
    assert len(loop.handoffs) == 1  # a frame after the wake hands off again


def test_a_waiter_that_goes_away_leaves_the_shared_work_and_the_others() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        work = loop.create_future()
        shared = server_module._Shared(work)
        first, second, third = (asyncio.ensure_future(_await(shared.result()))
                                for _ in range(3))
        await asyncio.sleep(0)
        second.cancel()  # its client went away while waiting
        await asyncio.sleep(0)
        assert not work.cancelled()
        work.set_result("encoded")
        assert await first == "encoded" and await third == "encoded"
        assert second.cancelled()
        assert shared.result() is work  # once done, the work itself: no waiter more

        failing = server_module._Shared(loop.create_future())
        waiting = asyncio.ensure_future(_await(failing.result()))
        await asyncio.sleep(0)
        failing.future.set_exception(ValueError("bad frame"))
        with pytest.raises(ValueError, match="bad frame"):
            await waiting

    asyncio.run(scenario())


async def _await(awaitable):
    return await awaitable
