"""Struct layouts of csrc/qxl_abi.h for Python, taken from the cffi module.

No offset is typed in Python: `Layout` asks cffi where each field lives and
builds one precompiled `struct.Struct` that reads every chosen field in a
single `unpack_from` (one copy out of guest memory, so one fetch), and packs
them again for the guest side. A field that is itself a struct or an array
expands into its leaves in declaration order; `Layout.unpack_from` gathers the
leaves back into one named value per field path, shaped as the C type is.
"""

from __future__ import annotations

import re
import struct
from collections import namedtuple
from typing import Any

from vgpu._qxl import ffi, lib
from vgpu.device.commands import QPoint, QRect

__all__ = ["Layout", "Record", "ffi", "lib", "offsetof", "sizeof"]

_CODES = {
    "uint8_t": "B", "int8_t": "b", "uint16_t": "H", "int16_t": "h",
    "uint32_t": "I", "int32_t": "i", "uint64_t": "Q", "int64_t": "q",
}


_PY_TYPES: dict[str, type[tuple]] = {
    "struct QXLRect": QRect, "struct QXLPoint": QPoint, "struct QXLPoint16": QPoint}
"""C structs read as the typed commands' own tuples (same fields, same order: checked
when a layout uses them), so a parsed rect is a QRect without copying it again."""

Record = Any
"""What `Layout.unpack_from` gives: a named tuple made at run time from a C struct, which
no static type describes; its entries are named by `field_name`."""

_records: dict[str, type[tuple]] = {}  # C struct -> its named tuple, made once


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


def _record(t: Any) -> type[tuple]:
    """The tuple type a C struct reads as: its Python type, else a named tuple of its fields."""
    names = tuple(name for name, _ in t.fields)
    cls = _PY_TYPES.get(t.cname) or _records.get(t.cname)
    if cls is None:
        cls = _records[t.cname] = namedtuple(t.cname.removeprefix("struct "), names)
    if cls._fields != names:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__} has fields {cls._fields}, {t.cname} has {names}")  # type: ignore[attr-defined]
    return cls


def _group(t: Any, offset: int, index: dict[int, int], env: dict[str, Any]) -> tuple[str, list]:
    """A Python expression that builds the value of type `t` at `offset` from the flat
    leaves `v` (`index` maps a leaf's offset to its place in `v`), and the indices of the
    int leaves it reads (None for a bytes leaf)."""
    if t.kind == "primitive":
        return f"v[{index[offset]}]", [index[offset]]
    if t.kind == "array" and t.item.kind == "primitive" and t.item.cname == "uint8_t":
        return f"v[{index[offset]}]", [None]
    if t.kind == "array":
        step = ffi.sizeof(t.item)
        parts = [_group(t.item, offset + i * step, index, env) for i in range(t.length)]
        build = f"({', '.join(e for e, _ in parts)},)"
    else:
        cls = _record(t)
        env[f"_{cls.__name__}"] = cls
        parts = [_group(f.type, offset + f.offset, index, env) for _, f in t.fields]
        # tuple.__new__ skips the named tuple's Python-level __new__
        build = f"_new(_{cls.__name__}, ({', '.join(e for e, _ in parts)},))"
    leaves = [i for _, part in parts for i in part]
    if None in leaves:
        return build, leaves
    # Most rects, points and masks of a drawable are all zero (no mask, no dependencies):
    # those share one value made here, as building one costs more than testing its leaves.
    zero = f"_zero{len(env)}"
    env[zero] = eval(build, env, {"v": [0] * (max(leaves) + 1)})
    test = " or ".join(f"v[{i}]" for i in leaves)
    return f"({build} if {test} else {zero})", leaves


def field_name(path: str) -> str:
    """The record entry of a field path: "release_info.id" -> "release_info_id",
    "surfaces_rects[2]" -> "surfaces_rects_2". qxl_dev.h names every union `u`, which
    says nothing, so it is left out: "u.set.position" -> "set_position"."""
    return "_".join(part for part in re.split(r"\W+", path) if part and part != "u")


class Layout:
    """Reads (and writes) chosen fields of one C struct.

    `Layout("QXLDrawable", ["release_info.id", "bbox"]).unpack_from(buf)` gives a
    record with one entry per path, named by `field_name`: `.release_info_id` an int,
    `.bbox` a QRect. A struct reads as its Python type (`_PY_TYPES`) or as a named
    tuple of its C fields, an array as a tuple, a uint8_t array as bytes. `struct`
    reads the same fields as one flat tuple of leaves in offset order (for the few
    loops that unpack a handful of ints by position), and `pack_into` writes that
    flat tuple. `base` shifts every field by the offset of a member, so one union
    arm can be read on its own: `Layout("QXLDrawable", ["brush.type"], base="u.fill")`
    starts at u.fill.
    """

    __slots__ = ("_fields", "count", "record", "size", "struct", "unpack_from")

    def __init__(self, ctype: str, paths: list[str], base: str | None = None) -> None:
        start = offsetof(ctype, base) if base else 0
        leaves: list[tuple[int, str, int]] = []
        parts = []
        for path in paths:
            full = f"{base}.{path}" if base else path
            t, off = _field_type(ctype, full), offsetof(ctype, full) - start
            parts.append((t, off))
            leaves += _leaves(t, off)
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
        self.record = namedtuple(  # type: ignore[misc]
            ctype.removeprefix("struct ") + "Fields", [field_name(p) for p in paths])
        # One generated function unpacks and groups: no loop and no slicing per read, the
        # way namedtuple and dataclasses generate their methods.
        index = {off: i for i, (off, _, _) in enumerate(leaves)}
        env: dict[str, Any] = {"_new": tuple.__new__, "_Rec": self.record,
                               "_unpack": self.struct.unpack_from}
        groups = [_group(t, off, index, env)[0] for t, off in parts]
        if groups == [f"v[{i}]" for i in range(self.count)]:  # leaves only, in offset order
            body = "return _new(_Rec, _unpack(buf, offset))"
        else:
            body = f"v = _unpack(buf, offset)\n    return _new(_Rec, ({', '.join(groups)},))"
        src = f"def unpack_from(buf, offset=0):\n    {body}\n"
        exec(src, env)
        self.unpack_from = env["unpack_from"]

    def pack_into(self, buf: Any, offset: int, *values: Any) -> None:
        """Writes the fields only (unlike struct.pack_into, the gaps between them are
        left as they are), in the order `unpack_from` returns them."""
        if len(values) != self.count:
            raise ValueError(f"{len(values)} values for {self.count} fields")
        for (off, st), value in zip(self._fields, values, strict=True):
            st.pack_into(buf, offset + off, value)
