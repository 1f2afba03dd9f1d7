"""A first-fit allocator over one region of a BAR, as a guest driver keeps for its memory."""

from __future__ import annotations

import bisect


class OutOfMemory(Exception):
    """No free block is large enough (the caller may collect releases and retry)."""


class Allocator:
    """Hands out aligned blocks of [start, end); offsets are whatever the caller's space is."""

    def __init__(self, start: int, end: int, align: int = 8) -> None:
        if end <= start or align & (align - 1):
            raise ValueError("bad region or alignment")
        self.start = start
        self.end = end
        self.align = align
        self._free: list[tuple[int, int]] = [(start, end)]  # sorted (start, end)
        self._used: dict[int, int] = {}  # start -> end

    @property
    def used_bytes(self) -> int:
        return sum(e - s for s, e in self._used.items())

    def alloc(self, size: int, align: int | None = None) -> int:
        align = max(align or self.align, self.align)
        size = max(size, 1)
        size = -(-size // self.align) * self.align
        for i, (s, e) in enumerate(self._free):
            a = -(-s // align) * align
            if a + size <= e:
                del self._free[i]
                if a > s:
                    self._free.insert(i, (s, a))
                    i += 1
                if a + size < e:
                    self._free.insert(i, (a + size, e))
                self._used[a] = a + size
                return a
        raise OutOfMemory(f"no block of {size} bytes")

    def free(self, offset: int) -> None:
        end = self._used.pop(offset)
        i = bisect.bisect_left(self._free, (offset, end))
        if i < len(self._free) and self._free[i][0] == end:  # merge with the next block
            end = self._free.pop(i)[1]
        if i > 0 and self._free[i - 1][1] == offset:  # and with the previous one
            offset = self._free.pop(i - 1)[0]
            i -= 1
        self._free.insert(i, (offset, end))

    def reset(self) -> None:
        self._free = [(self.start, self.end)]
        self._used.clear()
