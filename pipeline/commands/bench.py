"""``microstructure bench NAME``: benchmarks that print figures (never timed tests).

Each benchmark is a module of ``pipeline/bench`` (``BENCH_MODULES``; the ``mcp`` bench
lives in ``mcp_http.py`` because no module may carry a dependency's import name) exposing
``add_arguments(parser)`` and ``run(args) -> int``; top-level imports there stay light.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

BENCHES: dict[str, str] = {
    "kernels": "every statistics kernel on a generated 1,000,000-trade symbol-day vs arch",
    "load": "Kafka -> DuckDB rows/s and append-to-commit latency through the sensor path",
    "stream": "replay server -> streamer -> Kafka events/s and receipt-to-ack latency",
    "live": "live-signals: receipt -> signal ack at 10,000/s, one instance's events/s, causality",
    "mcp": "MCP over HTTP: saturation requests/s and latency at 200 requests/s",
    "serve": "MCP at real volume (20M trades): start-up, memory, latency, freshness, ingest cost",
}


# bench name -> module under pipeline/bench (where they differ)
BENCH_MODULES: dict[str, str] = {"mcp": "mcp_http"}


def register(sub: Any) -> None:
    """Add the ``bench`` subcommand and its benchmarks."""
    p = sub.add_parser("bench", help="run a benchmark and print its figures")
    bench_sub = p.add_subparsers(dest="bench", metavar="NAME")
    for name, help_text in BENCHES.items():
        module_name = f"pipeline.bench.{BENCH_MODULES.get(name, name)}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue
            raise
        bp = bench_sub.add_parser(name, help=help_text)
        bp.add_argument("--json", action="store_true", help="print one JSON object")
        module.add_arguments(bp)
        bp.set_defaults(func=module.run)
    p.set_defaults(func=lambda args: _usage(p, args))


def _usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    parser.print_help()
    return 2
