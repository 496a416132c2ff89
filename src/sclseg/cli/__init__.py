"""The `sclseg` command line: one module per sub-command, each exposing `add_parser(subparsers)`.

Each sub-command module registers its parser and sets `func` (called with the parsed namespace, returns an
exit code). Adding a command = one module here + one line in `_COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

_COMMAND_MODULES: tuple[str, ...] = (
    "convert_nvidia",
    "pack_unlabeled",
    "make_synthetic",
    "push",
    "evaluate",
    "evaluate_predictions",
    "predict",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sclseg",
        description="Semi-supervised semantic segmentation with the Structured Consistency Loss.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"sclseg.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
