"""The ``microstructure`` command: the platform's front door.

Each subcommand lives in ``pipeline/commands/<name>.py`` and exposes
``register(subparsers)``; modules keep their top-level imports light and import
heavy dependencies (Dagster, MCP, numba) inside the handler, so ``compute``
never loads Dagster or MCP. Exceptions become exit codes here and only here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pipeline.errors import PipelineError

# Order = order in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "compute",
    "simulate",
    "kafka",
    "replay_server",
    "stream",
    "load_file",
    "warehouse",
    "ingest",
    "signals",
    "live_signals",
    "reconcile",
    "serve_mcp",
    "status",
    "metrics_exporter",
    "report",
    "evaluate",
    "faults",
    "bench",
)

logger = logging.getLogger("microstructure")


def _command_of(argv: Sequence[str]) -> str | None:
    """Return the module of the subcommand ``argv`` names (None: none, or unknown)."""
    for token in argv:
        if token.startswith("-"):
            continue
        name = token.replace("-", "_")
        return name if name in COMMAND_MODULES else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with every available subcommand (or just one).

    Parameters
    ----------
    only
        A module of :data:`COMMAND_MODULES`: register that subcommand alone, so running
        one command imports that command's module only (a server's start-up does not pay
        for every other command's imports). None registers all (``--help``).

    Returns
    -------
    argparse.ArgumentParser
        The parser; each subparser sets ``func`` to its handler.
    """
    parser = argparse.ArgumentParser(
        prog="microstructure",
        description="Market-microstructure signal platform (Kafka -> warehouse -> signals -> MCP).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES if only is None else (only,):
        try:
            module = importlib.import_module(f"pipeline.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"pipeline.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        Process exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
