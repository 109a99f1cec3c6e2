"""``microstructure faults NAME``: fault-injection campaigns that print a table of outcomes.

Each campaign is ``pipeline/faults/<name>.py`` exposing ``add_arguments(parser)`` and
``run(args) -> int``; top-level imports there stay light. ``--json`` prints one object.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

CAMPAIGNS: dict[str, str] = {
    "load": "kill -9 the microbatch at each step, restart the broker, rerun ranges, two sensors",
    "stream": "disconnects, a broker restart and a streamer kill -9 during a replay session",
}


def register(sub: Any) -> None:
    """Add the ``faults`` subcommand and its campaigns."""
    p = sub.add_parser("faults", help="run a fault-injection campaign and print what was lost")
    fsub = p.add_subparsers(dest="campaign", metavar="NAME")
    for name, help_text in CAMPAIGNS.items():
        try:
            module = importlib.import_module(f"pipeline.faults.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"pipeline.faults.{name}":
                continue
            raise
        fp = fsub.add_parser(name, help=help_text)
        fp.add_argument("--json", action="store_true", help="print one JSON object")
        module.add_arguments(fp)
        fp.set_defaults(func=module.run)
    p.set_defaults(func=lambda args: _usage(p, args))


def _usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    parser.print_help()
    return 2
