"""``microstructure reconcile DAY``: the day's live signals against the batch, per trade."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from pipeline.live.reconcile import RawRecord, Reconciliation
    from pipeline.settings import Settings


def register(sub: Any) -> None:
    """Add the ``reconcile`` subcommand."""
    p = sub.add_parser(
        "reconcile",
        help="compare a day's live signals (trading-signals topic) with the batch, per trade",
        description="Read the day's signal.v1 records from $MICROSTRUCTURE_SIGNALS_TOPIC "
        "(deduplicated on their input topic/partition/offset), join them per trade with the "
        "day's batch trading_signals on the input offset, and report: causal columns (returns, "
        "Lee-Mykland L, rolling BNS, intensity z at each bucket's last print) must agree to "
        "rel 1e-9 on every trade (causal_mismatches, 0 expected; exit 1 otherwise); lm_xi, the "
        "flag, the signal, GARCH and ACD report agreement rates and largest differences "
        "(provisional n, previous day's fits). docs/live.md.",
    )
    p.add_argument("day", help="New York trading day YYYY-MM-DD")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--warehouse-url", default=None, help="override MICROSTRUCTURE_WAREHOUSE_URL")
    p.add_argument("--signals-topic", default=None, help="default $MICROSTRUCTURE_SIGNALS_TOPIC")
    p.add_argument(
        "--topic",
        default=None,
        help="market-data topic of the batch (default $MICROSTRUCTURE_TOPIC)",
    )
    p.set_defaults(func=_run)


def read_signal_records(
    bootstrap: str, topic: str, extra_conf: Any = None, timeout_s: float = 300.0
) -> list[RawRecord]:
    """Return ``(headers, value)`` of every record of the signals topic now (all partitions).

    Parameters
    ----------
    bootstrap, topic, extra_conf
        The cluster and the signals topic.
    timeout_s
        Deadline of each partition's read.

    Returns
    -------
    list
        Records up to each partition's high watermark at the start of the read.
    """
    from pipeline.kafka.consumer import read_range, watermarks
    from pipeline.kafka.offsets import OffsetRange

    out: list[RawRecord] = []
    for p, (low, high) in sorted(watermarks(bootstrap, topic, 30.0, extra_conf).items()):
        if high > low:
            rng = OffsetRange(topic, p, low, high)
            out += [(r.headers, r.value) for r in read_range(bootstrap, rng, timeout_s, extra_conf)]
    return out


def reconcile_day(
    settings: Settings,
    day: str,
    *,
    warehouse_url: str | None = None,
    signals_topic: str | None = None,
    topic: str | None = None,
) -> Reconciliation:
    """Read the day's live records and batch rows, and compare them.

    Parameters
    ----------
    settings
        Kafka and warehouse settings.
    day
        ``YYYY-MM-DD``.
    warehouse_url, signals_topic, topic
        Overrides of the settings.

    Returns
    -------
    Reconciliation
        The comparison.
    """
    from pipeline.live.reconcile import collect_live, reconcile
    from pipeline.warehouse import open_warehouse

    raw = read_signal_records(
        settings.bootstrap_servers, signals_topic or settings.signals_topic,
        settings.kafka_extra,
    )  # fmt: skip
    live = collect_live(raw, day, topic or settings.topic)
    wh = open_warehouse(warehouse_url or settings.warehouse_url, read_only=True)
    batch = wh.query_frame("trading_signals_of_day", (dt.date.fromisoformat(day),))
    return reconcile(live, batch, day)


def _run(args: argparse.Namespace) -> int:
    from pipeline.errors import ConfigError
    from pipeline.settings import Settings

    try:
        dt.date.fromisoformat(args.day)
    except ValueError:
        raise ConfigError(f"day {args.day!r} is not YYYY-MM-DD") from None
    result = reconcile_day(
        Settings.from_env(), args.day, warehouse_url=args.warehouse_url,
        signals_topic=args.signals_topic, topic=args.topic,
    )  # fmt: skip
    if args.json:
        print(orjson.dumps(result.as_dict()).decode())
    else:
        print("\n".join(result.lines()))
    return 1 if result.causal_mismatches else 0
