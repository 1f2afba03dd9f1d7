"""Struct layouts of csrc/qxl_abi.h for Python, taken from the cffi module.

No offset is typed in Python: `Layout` asks cffi where each field lives and
builds one precompiled `struct.Struct` that reads every chosen field in a
single `unpack_from` (one copy out of guest memory, so one fetch), and packs
them again for the guest side. A field that is itself a struct or an array
expands into its leaves in declaration order.
"""

from __future__ import annotations

import struct
from typing import Any

from vgpu._qxl import ffi, lib

__all__ = ["Layout", "ffi", "lib", "offsetof", "sizeof"]

_CODES = {
    "uint8_t": "B", "int8_t": "b", "uint16_t": "H", "int16_t": "h",
    "uint32_t": "I", "int32_t": "i", "uint64_t": "Q", "int64_t": "q",
}


def sizeof(ctype: str) -> int:
    return int(ffi.sizeof(ctype))


def _path_args(path: str) -> list[Any]:
    args: list[Any] = []
    for part in path.split("."):
        if part.endswith("]"):
            name, _, index = part[:-1].partition("[")
            args += [name, int(index)]
        else:
            args.append(part)
    return args


def offsetof(ctype: str, path: str) -> int:
    """Offset of a field path such as "u.copy.src_area" or "surfaces_rects[2].top"."""
    return int(ffi.offsetof(ctype, *_path_args(path)))


def _field_type(ctype: str, path: str) -> Any:
    t = ffi.typeof(ctype)
    for arg in _path_args(path):
        if isinstance(arg, int):
            t = t.item
            continue
        t = dict(t.fields)[arg].type
    return t


def _leaves(t: Any, offset: int) -> list[tuple[int, str, int]]:
    """(offset, struct code, size) of every primitive inside type `t` placed at `offset`."""
    if t.kind == "primitive":
        return [(offset, _CODES[t.cname], ffi.sizeof(t))]
    if t.kind == "array":
        if t.item.kind == "primitive" and t.item.cname == "uint8_t":
            return [(offset, f"{t.length}s", t.length)]
        step = ffi.sizeof(t.item)
        out = []
        for i in range(t.length):
            out += _leaves(t.item, offset + i * step)
        return out
    if t.kind == "struct":
        out = []
        for _name, field in t.fields:
            out += _leaves(field.type, offset + field.offset)
        return out
    raise TypeError(f"cannot expand {t.cname} ({t.kind}): name one union member")


class Layout:
    """Reads (and writes) chosen fields of one C struct as a flat tuple.

    `Layout("QXLDrawable", ["release_info.id", "bbox"])` unpacks to
    (id, top, left, bottom, right). `base` shifts every field by the offset
    of a member, so one union arm can be read on its own:
    `Layout("QXLDrawable", ["brush"], base="u.fill")` starts at u.fill.
    """

    __slots__ = ("_fields", "count", "size", "struct")

    def __init__(self, ctype: str, paths: list[str], base: str | None = None) -> None:
        start = offsetof(ctype, base) if base else 0
        leaves: list[tuple[int, str, int]] = []
        for path in paths:
            full = f"{base}.{path}" if base else path
            leaves += _leaves(_field_type(ctype, full), offsetof(ctype, full) - start)
        leaves.sort()
        fmt = ["<"]
        pos = 0
        for off, code, size in leaves:
            if off < pos:
                raise ValueError(f"{ctype}: overlapping fields at offset {off} ({paths})")
            if off > pos:
                fmt.append(f"{off - pos}x")
            fmt.append(code)
            pos = off + size
        self.struct = struct.Struct("".join(fmt))
        self._fields = [(off, struct.Struct("<" + code)) for off, code, _ in leaves]
        self.size = self.struct.size
        self.count = len(leaves)

    def pack_into(self, buf: Any, offset: int, *values: Any) -> None:
        """Writes the fields only (unlike struct.pack_into, the gaps between them are
        left as they are), in the order `unpack_from` returns them."""
        if len(values) != self.count:
            raise ValueError(f"{len(values)} values for {self.count} fields")
        for (off, st), value in zip(self._fields, values, strict=True):
            st.pack_into(buf, offset + off, value)
