"""The `vgpu` command: one subcommand per module, each module owning its options.

Every module listed here defines `add_arguments(parser)` and `run(args) -> int`
and keeps its heavy imports (GL, sockets) inside `run`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("vgpu.serve", "serve a guest's display to SPICE clients"),
    "replay": ("vgpu.replay.cli", "replay a spice-server record file through the device"),
    "bench": ("vgpu.bench", "measure throughput side by side with reference implementations"),
    "preview": ("vgpu.preview", "show a guest's display in a local window"),
    "run": ("vgpu.run", "run an unmodified OpenGL ES program as the guest"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """Only the module of the chosen subcommand is imported."""
    parser = argparse.ArgumentParser(prog="vgpu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
