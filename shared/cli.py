"""The `ucp` command line: the same code as the Functions app, in one process, on files.

Each area registers its own subcommands (a `register(subparsers)` function in its cli module), so this file
only lists them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add subcommands. Each has register(subparsers) and sets a `func` default on its parsers.
COMMAND_MODULES = [
    "shared.bootstrap_cli",
    "shared.generate_cli",
    "shared.ingest_cli",
    "shared.identity_cli",
    "shared.churn_cli",
    "shared.insights_cli",
    "shared.audit_cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ucp", description="Unified Customer Profile: resolve, predict, serve.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - bad input or paths get one line; anything else its traceback
        if not _input_error(err):
            raise
        print(f"ucp {args.command}: error: {err}", file=sys.stderr)
        return 2


def _input_error(err: Exception) -> bool:
    """A file or value the user gave cannot be used (missing, a directory, unreadable, malformed)."""
    from .ingest.readers import FileError  # imported here: the CLI starts without the readers

    return isinstance(err, (ValueError, OSError, FileError))


if __name__ == "__main__":
    sys.exit(main())
