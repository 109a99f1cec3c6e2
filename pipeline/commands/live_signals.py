"""``microstructure live-signals``: each trade's provisional signal into ``trading-signals``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

import orjson


def register(sub: Any) -> None:
    """Add the ``live-signals`` subcommand."""
    p = sub.add_parser(
        "live-signals",
        help="consume market data as a consumer group, emit each trade's provisional signal",
        description="Join the consumer group $MICROSTRUCTURE_LIVE_GROUP on the market-data "
        "topic and, per regular-hours trade, update its symbol-day's online state and produce "
        "its provisional statistics and rule-v1 signal to $MICROSTRUCTURE_SIGNALS_TOPIC "
        "(signal.v1, key = symbol, headers = input topic/partition/offset, kernel version, "
        "parameters). Offsets are committed once the signals of every record before them are "
        "acknowledged; a restarted or new instance rebuilds each partition's state from the "
        "day's first offset. The batch signals stay the source of truth (docs/live.md).",
    )
    p.add_argument("--topic", default=None, help="input topic (default $MICROSTRUCTURE_TOPIC)")
    p.add_argument(
        "--output-topic",
        default=None,
        help="signals topic (default $MICROSTRUCTURE_SIGNALS_TOPIC, trading-signals)",
    )
    p.add_argument(
        "--group", default=None, help="consumer group (default $MICROSTRUCTURE_LIVE_GROUP)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=2000,
        help="most records processed and produced together; a batch is whatever the consumer "
        "holds, never waited for (2000)",
    )
    p.add_argument(
        "--session-timeout-ms",
        type=int,
        default=10_000,
        help="group session timeout: how soon a dead instance's partitions move (10000)",
    )
    p.add_argument(
        "--idle-exit-s", type=float, default=None, help="stop after S seconds without a record"
    )
    p.add_argument(
        "--until-caught-up",
        action="store_true",
        help="stop once every input partition is consumed to its end offset at start "
        "(one instance: the demo, a reconcile of a finished day)",
    )
    p.add_argument(
        "--warehouse-url",
        default=None,
        help="read priors (previous day's n, GARCH and ACD fits) from this warehouse "
        "(default $MICROSTRUCTURE_WAREHOUSE_URL)",
    )
    p.add_argument(
        "--no-priors",
        action="store_true",
        help="no priors: running n, GARCH and ACD columns null",
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.errors import ConfigError
    from pipeline.kafka.broker import ensure_topic
    from pipeline.live.partition import no_priors
    from pipeline.live.priors import WarehousePriors, warehouse_reader
    from pipeline.live.service import LiveConfig, LiveSignalsService, end_offsets
    from pipeline.settings import Settings

    settings = Settings.from_env()
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size is {args.batch_size} and must be at least 1")
    config = LiveConfig(
        bootstrap=settings.bootstrap_servers,
        input_topic=args.topic or settings.topic,
        output_topic=args.output_topic or settings.signals_topic,
        group_id=args.group or settings.live_group,
        extra_conf=dict(settings.kafka_extra),
        batch_size=args.batch_size,
        session_timeout_ms=args.session_timeout_ms,
    )
    ensure_topic(
        config.bootstrap, config.output_topic, settings.topic_partitions,
        extra_conf=settings.kafka_extra,
    )  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"live-signals: {config.input_topic} -> {config.output_topic} as {config.group_id!r} "
        f"at {config.bootstrap}",
        file=sys.stderr,
    )
    priors = (
        None
        if args.no_priors
        else WarehousePriors(warehouse_reader(args.warehouse_url or settings.warehouse_url))
    )
    service = LiveSignalsService(config, priors or no_priors)
    ends = end_offsets(config) if args.until_caught_up else None
    summary = service.run(idle_exit_s=args.idle_exit_s, stop=stop, until=ends)
    prior_counts = dict(sorted(priors.counts.items())) if priors else {}
    if args.json:
        print(orjson.dumps({**summary.as_dict(), "priors": prior_counts}).decode())
    else:
        for name, count in sorted(summary.counts.items()):
            print(f"{name:<32} {count:,}")
        for name, count in prior_counts.items():
            print(f"priors:{name:<25} {count:,}")
        print(f"commits {summary.commits:,}, partitions restored {len(summary.restored)}")
    return 0
