"""What the device fuzzers (device_fuzz.py and gl3d_fuzz.py) share: where a case's
choices come from (hypothesis' data in the suite, so a failure shrinks, or a seeded
random.Random in `vgpu bench soak --fuzz` and `vgpu bench gl3d_fuzz`, for millions),
and the shape of one case."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from hypothesis import strategies as st

from vgpu.guest.driver import DeviceError


class Draw(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...
    def binary(self, lo: int, hi: int) -> bytes: ...
    def fraction(self) -> float: ...


class RandomDraw:
    """Choices from a seeded random.Random: fast, for long runs."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self._rng.randint(lo, hi)

    def binary(self, lo: int, hi: int) -> bytes:
        return self._rng.randbytes(self._rng.randint(lo, hi))

    def fraction(self) -> float:
        return self._rng.random()


# Strategies built once: drawing from a ready strategy is what keeps a case cheap.
_INTEGERS: dict[tuple[int, int], st.SearchStrategy[int]] = {}
_BINARY: dict[tuple[int, int], st.SearchStrategy[bytes]] = {}
_FRACTION = st.floats(0, 1, exclude_max=True)


class HypothesisDraw:
    """Choices drawn from hypothesis' data, so failures shrink."""

    def __init__(self, data: st.DataObject) -> None:
        self._draw = data.draw

    def integer(self, lo: int, hi: int) -> int:
        strategy = _INTEGERS.get((lo, hi))
        if strategy is None:
            strategy = _INTEGERS[lo, hi] = st.integers(lo, hi)
        return self._draw(strategy)

    def binary(self, lo: int, hi: int) -> bytes:
        strategy = _BINARY.get((lo, hi))
        if strategy is None:
            strategy = _BINARY[lo, hi] = st.binary(min_size=lo, max_size=hi)
        return self._draw(strategy)

    def fraction(self) -> float:
        return self._draw(_FRACTION)


def run_actions(rig: Any, draw: Draw, actions: Sequence[Callable[[Any, Draw], None]],
                tolerated: tuple[type[Exception], ...] = ()) -> None:
    """One case: `rig.fresh()`, one to three of `actions`, then `rig.check()`. A
    DeviceError while pushing is the guest seeing ERROR (noted in the rig); `tolerated`
    are the guest's own limits (its memory filling up within a case)."""
    rig.fresh()
    for _ in range(1 + draw.integer(0, 2)):
        action = actions[draw.integer(0, len(actions) - 1)]
        try:
            action(rig, draw)
        except DeviceError as e:  # the guest took ERROR (or waited in vain) while pushing
            rig.guest_saw_error |= "guest bug" in str(e)
        except tolerated:
            pass
    rig.check()
