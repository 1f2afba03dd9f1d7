"""csrc/qxl_abi.h against spice-protocol's qxl_dev.h: every size and offset equal.

The C program is generated from the cffi module's own type information, so no
name or offset is typed twice: whatever our header declares is what gets checked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from vgpu._qxl import ffi, lib

# Our extension blocks (see qxl_abi.h) have no counterpart in the system header.
OURS_ONLY_PREFIX = "Vgpu"


def _spice_cflags() -> list[str]:
    if shutil.which("pkg-config") is None:
        pytest.skip("pkg-config is not installed")
    out = subprocess.run(["pkg-config", "--cflags", "spice-protocol"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("spice-protocol development headers are not installed")
    return out.stdout.split()


def _values_in_c(tmp_path: Path, headers: list[str], exprs: list[str]) -> dict[str, int]:
    """Each C expression's value, as a program built against the system headers prints it."""
    cflags = _spice_cflags()
    lines = ["#include <stdio.h>", *(f"#include <{h}>" for h in headers), "int main(void) {"]
    for e in exprs:
        lines.append(f'    printf("%s %lld\\n", "{e}", (long long)({e}));')
    lines += ["    return 0;", "}"]
    src = tmp_path / "values.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "values"
    cc = subprocess.run(["gcc", "-w", *cflags, str(src), "-o", str(exe)],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr[-4000:]
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    values = {}
    for line in out.splitlines():
        key, _, value = line.rpartition(" ")  # a key may hold spaces: offsetof(T, f)
        values[key] = int(value)
    return values


def _field_paths(ctype, prefix: str):
    """Yields (path, ctype) for every field, nested structs and first array elements included."""
    for name, field in ctype.fields or ():
        path = f"{prefix}.{name}" if prefix else name
        yield path, field
        ft = field.type
        if ft.kind == "array" and ft.item.kind == "struct" and ft.length:
            ft = ft.item
            path = f"{path}[0]"
        if ft.kind in ("struct", "union") and ft.fields:
            yield from _field_paths(ft, path)


def _checked_types() -> list[str]:
    names = []
    typedefs = ffi.list_types()[0]
    for name in typedefs:
        if name.startswith(OURS_ONLY_PREFIX):
            continue
        if ffi.typeof(name).kind in ("struct", "union"):
            names.append(name)
    return sorted(names)


def _expectations() -> dict[str, int]:
    exp: dict[str, int] = {}
    for name in _checked_types():
        exp[f"sizeof({name})"] = ffi.sizeof(name)
        for path, _field in _field_paths(ffi.typeof(name), ""):
            args: list = []
            for p in path.split("."):
                if p.endswith("[0]"):
                    args += [p[:-3], 0]
                else:
                    args.append(p)
            exp[f"offsetof({name}, {path})"] = ffi.offsetof(name, *args)
    return exp


def test_layout_matches_system_header(tmp_path: Path) -> None:
    exp = _expectations()
    assert len(exp) > 300  # every struct of the ABI, not a handful
    theirs = _values_in_c(tmp_path, ["stddef.h", "spice/qxl_dev.h"], list(exp))
    mismatches = {k: (v, theirs.get(k)) for k, v in exp.items() if theirs.get(k) != v}
    assert not mismatches, mismatches


def test_enum_numbers_match_system_header(tmp_path: Path) -> None:
    names = [n for n in dir(lib) if n.startswith(("QXL_", "SPICE_")) and isinstance(
        getattr(lib, n), int)]
    theirs = _values_in_c(tmp_path, ["spice/qxl_dev.h"], names)
    assert {n: getattr(lib, n) for n in names} == theirs


def test_extension_block_fits_between_rom_and_modes() -> None:
    assert ffi.sizeof("QXLRom") <= lib.VGPU_ROM_EXT_OFFSET
    assert ffi.sizeof("VgpuInputEvent") == 32
    assert ffi.offsetof("VgpuInputRing", "items") % 8 == 0


def test_layout_records_name_what_cffi_reads() -> None:
    """A Layout record's groups hold what cffi reads from the same C struct, field by field;
    all-zero groups share one value but compare the same."""
    from vgpu.device.abi import Layout
    from vgpu.device.commands import QPoint, QRect

    d = ffi.new("QXLDrawable *")
    d.release_info.id = 0x1122334455667788
    d.bbox.top, d.bbox.left, d.bbox.bottom, d.bbox.right = -3, 4, 50, 60
    d.clip.type, d.clip.data = 2, 0xABCDEF
    d.surfaces_dest[1] = -1
    d.surfaces_rects[2].right = 9
    d.u.fill.mask.pos.y = -7
    d.u.fill.brush.u.pattern.pat = 5
    buf = bytes(ffi.buffer(d))
    head = Layout("QXLDrawable", ["release_info.id", "bbox", "clip", "surfaces_dest",
                                  "surfaces_rects", "self_bitmap_area"]).unpack_from(buf)
    assert head.release_info_id == d.release_info.id
    assert type(head.bbox) is QRect and head.bbox == (-3, 4, 50, 60)
    assert (head.clip.type, head.clip.data) == (d.clip.type, d.clip.data)
    assert head.surfaces_dest == tuple(d.surfaces_dest)
    assert [tuple(r) for r in head.surfaces_rects] == [
        (r.top, r.left, r.bottom, r.right) for r in d.surfaces_rects]
    assert head.self_bitmap_area == QRect(0, 0, 0, 0)
    fill = Layout("QXLDrawable", ["brush.u.pattern", "mask"], base="u.fill").unpack_from(
        buf, ffi.offsetof("QXLDrawable", "u"))
    assert fill.brush_pattern.pat == 5 and fill.brush_pattern.pos == QPoint(0, 0)
    assert type(fill.mask.pos) is QPoint and fill.mask.pos == (0, -7)
    assert (fill.mask.flags, fill.mask.bitmap) == (0, 0)
