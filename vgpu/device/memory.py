"""Guest memory: ROM, RAM and VRAM in one shared memfd mapping, and memslots.

Layout of the mapping (the "guest physical" address space of this device is
simply the offset in the memory file):

    [0, rom_size)                       ROM bar: QXLRom, VgpuRomExt, QXLModes
    [ram_offset, ram_offset + ram_size)  RAM bar: surface 0 area, free pages,
                                        VgpuInputRing, QXLRam header (last page(s))
    [vram_offset, ... + vram_size)       VRAM bar: off-screen surfaces

Offset 0 is ROM, which no memslot may cover, so a NULL QXLPHYSICAL never
translates. The file descriptor (`GuestMemory.fd`) is what an out-of-process
guest maps; `MemoryLayout` is what it needs to know besides.

A QXLPHYSICAL is `slot_id << (64 - id_bits) | generation << (64 - id_bits -
gen_bits) | physical`, with the bit counts the ROM announces. `MemSlots.translate`
checks every part (slot in range and active, generation equal, the whole
[physical, physical + length) inside the slot) and returns the mapping offset;
Python integers do not overflow, so a huge length or address simply fails the check.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from dataclasses import dataclass

import numpy as np

from vgpu.device.abi import ffi


class GuestBug(Exception):
    """Guest memory or an IO write broke the QXL contract; the message says how."""


PAGE = 4096
"""QXL's page (the guest's): BAR sizes, ROM num_pages and surface memory are in its units."""

ROM_SIZE = 8192
"""Two pages, as QEMU's qxl ROM: QXLRom, our extension block and a short mode list."""

DEFAULT_RAM_SIZE = 32 * 1024 * 1024
"""Room for a 1920x1200x4 surface 0 plus command memory, like QEMU's default ram_size_mb."""

DEFAULT_VRAM_SIZE = 32 * 1024 * 1024
"""Off-screen surfaces (QEMU's default vram_size_mb is 64; 32 keeps tests light)."""

MAX_BAR_SIZE = 1 << 30
"""A BAR larger than 1 GiB is a configuration mistake here, not something to map."""


@dataclass(frozen=True, slots=True)
class MemoryLayout:
    rom_size: int
    ram_size: int
    vram_size: int

    @property
    def ram_offset(self) -> int:
        return self.rom_size

    @property
    def vram_offset(self) -> int:
        return self.rom_size + self.ram_size

    @property
    def total(self) -> int:
        return self.rom_size + self.ram_size + self.vram_size

    def bar_of(self, start: int, end: int) -> str | None:
        """"ram" or "vram" if [start, end) lies inside that BAR, else None."""
        if self.ram_offset <= start < end <= self.vram_offset:
            return "ram"
        if self.vram_offset <= start < end <= self.total:
            return "vram"
        return None


class GuestMemory:
    """The shared mapping. `fd` may be handed to another process to map the same pages."""

    def __init__(self, layout: MemoryLayout, fd: int | None = None) -> None:
        for size in (layout.rom_size, layout.ram_size, layout.vram_size):
            if size <= 0 or size % PAGE or size > MAX_BAR_SIZE:
                raise ValueError(f"BAR sizes must be page multiples up to {MAX_BAR_SIZE}")
        self.layout = layout
        if fd is None:
            fd = os.memfd_create("vgpu-qxl", os.MFD_CLOEXEC)
            os.ftruncate(fd, layout.total)
        elif os.fstat(fd).st_size < layout.total:
            raise ValueError("memory file is smaller than the layout")
        self.fd = fd
        self.mm = mmap.mmap(fd, layout.total)
        self.array = np.frombuffer(self.mm, dtype=np.uint8)
        self.cdata = ffi.from_buffer(self.mm)

    def read(self, offset: int, length: int) -> bytes:
        """A copy of bytes at a mapping offset the caller has checked."""
        return self.mm[offset:offset + length]

    def ptr(self, ctype: str, offset: int):
        """A live cffi pointer into the mapping, for structs the owner itself maintains."""
        return ffi.cast(ctype + " *", self.cdata + offset)

    def close(self) -> None:
        """Closes the file; the mapping goes once no view of it (numpy, cffi) is left."""
        ffi.release(self.cdata)
        del self.array
        with contextlib.suppress(BufferError):
            self.mm.close()
        os.close(self.fd)


@dataclass(slots=True)
class _Slot:
    start: int
    end: int
    generation: int


class MemSlots:
    """The device's memslot table and QXLPHYSICAL translation."""

    def __init__(self, mem: GuestMemory, n_slots: int, id_bits: int, gen_bits: int) -> None:
        self.mem = mem
        self.n_slots = n_slots
        self.id_shift = 64 - id_bits
        self.gen_shift = 64 - id_bits - gen_bits
        self.gen_mask = (1 << gen_bits) - 1
        self.addr_mask = (1 << self.gen_shift) - 1
        self.slots: list[_Slot | None] = [None] * n_slots

    def reset(self) -> None:
        self.slots = [None] * self.n_slots

    def add(self, slot_id: int, start: int, end: int, generation: int) -> None:
        if not 0 <= slot_id < self.n_slots:
            raise GuestBug(f"memslot id {slot_id} out of range")
        if self.slots[slot_id] is not None:
            raise GuestBug(f"memslot {slot_id} is already active")
        if self.mem.layout.bar_of(start, end) is None:
            raise GuestBug(f"memslot [{start:#x}, {end:#x}) is not inside one BAR")
        self.slots[slot_id] = _Slot(start, end, generation)

    def delete(self, slot_id: int) -> None:
        if not 0 <= slot_id < self.n_slots:
            raise GuestBug(f"memslot id {slot_id} out of range")
        self.slots[slot_id] = None

    def address(self, slot_id: int, offset: int) -> int:
        """The QXLPHYSICAL of mapping offset `offset` in an active slot (the guest's view)."""
        slot = self.slots[slot_id]
        if slot is None:
            raise ValueError(f"memslot {slot_id} is not active")
        return (slot_id << self.id_shift) | (slot.generation << self.gen_shift) | offset

    def translate(self, addr: int, length: int) -> int:
        """The mapping offset of [addr, addr + length), after every check."""
        sid = addr >> self.id_shift
        if sid >= self.n_slots:
            raise GuestBug(f"address {addr:#x}: slot {sid} out of range")
        slot = self.slots[sid]
        if slot is None:
            raise GuestBug(f"address {addr:#x}: slot {sid} is not active")
        if (addr >> self.gen_shift) & self.gen_mask != slot.generation:
            raise GuestBug(f"address {addr:#x}: stale generation for slot {sid}")
        phys = addr & self.addr_mask
        if length < 0 or phys < slot.start or phys + length > slot.end:
            raise GuestBug(f"address {addr:#x} + {length} is outside slot {sid}")
        return phys

    def room(self, addr: int) -> int:
        """How many bytes from `addr` to the end of its slot (checked like translate)."""
        off = self.translate(addr, 0)
        slot = self.slots[addr >> self.id_shift]
        assert slot is not None  # translate checked it
        return slot.end - off

    def read(self, addr: int, length: int) -> bytes:
        off = self.translate(addr, length)
        return self.mem.mm[off:off + length]
