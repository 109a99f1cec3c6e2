"""``microstructure load-file FILE``: a trades file into the topic via the codec/producer path."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from pipeline.errors import KafkaError


def register(sub: Any) -> None:
    """Add the ``load-file`` subcommand."""
    p = sub.add_parser(
        "load-file",
        help="produce a plain trades CSV or a Polygon trades_v1 flat file into Kafka",
        description="Read a plain trades CSV (TAQ letters mapped to Polygon codes) or a Polygon "
        "us_stocks_sip/trades_v1 flat file, optionally gzipped, and produce every trade "
        "(key = symbol) "
        "and every unreadable or invalid row (as a reject record) with acks=all.",
    )
    p.add_argument("file", type=Path, help="trades file (.csv or .csv.gz)")
    p.add_argument("--topic", default=None, help="Kafka topic (default $MICROSTRUCTURE_TOPIC)")
    p.add_argument(
        "--tape",
        type=int,
        choices=(1, 2, 3),
        default=1,
        help="tape for rows without one (default 1)",
    )
    p.add_argument("--limit", type=int, default=None, help="produce only the first N rows")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_run)


def load_file(
    path: Path,
    *,
    bootstrap: str,
    topic: str,
    extra_conf: dict[str, str] | None = None,
    tape: int | None = 1,
    limit: int | None = None,
    flush_timeout_s: float = 120.0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Produce ``path`` into ``topic`` and return the summary.

    Parameters
    ----------
    path
        Trades file.
    bootstrap
        Kafka bootstrap servers.
    topic
        Destination topic.
    extra_conf
        Extra librdkafka settings.
    tape
        Tape for rows without one.
    limit
        Most rows to produce.
    flush_timeout_s
        Bound of the final flush.
    progress
        Called with the rows read so far, every 10,000 rows.

    Returns
    -------
    dict[str, Any]
        rows, trades, rejects by reason, unmapped TAQ letters, delivered, seconds.

    Raises
    ------
    DeliveryError
        If any message was not acknowledged.
    """
    from pipeline.events import Reject, Trade
    from pipeline.feed.files import STAGE, FileStats, read_trades
    from pipeline.feed.parse import reason_code, validate_trade
    from pipeline.kafka.producer import EventProducer

    stats = FileStats()
    invalid: Counter[str] = Counter()
    t0 = time.monotonic()
    producer = EventProducer(bootstrap, topic, extra_conf=extra_conf, linger_ms=20)
    now_ns = time.time_ns()
    rows = 0
    for item in read_trades(path, default_tape=tape, stats=stats):
        rows += 1
        if progress is not None and rows % 10_000 == 0:
            progress(rows)
        if isinstance(item, Trade):
            reason = validate_trade(item)
            if reason is None:
                producer.send(item)
            else:
                invalid[reason_code(reason)] += 1
                raw = orjson.dumps(
                    {
                        "symbol": item.symbol,
                        "sip_timestamp_ns": item.sip_timestamp_ns,
                        "price": item.price,
                        "size": item.size,
                        "trade_id": item.trade_id,
                    }
                )
                producer.send(Reject(STAGE, reason, raw, now_ns))
        else:
            producer.send(Reject(item.stage, item.reason, item.raw, now_ns))
        if limit is not None and rows >= limit:
            break
    delivered = producer.flush(flush_timeout_s)
    elapsed = time.monotonic() - t0
    rejects = Counter(stats.rejects)
    rejects.update(invalid)
    return {
        "file": str(path),
        "format": stats.format,
        "rows": rows,
        "trades": rows - sum(rejects.values()),
        "rejects": dict(rejects),
        "unmapped_exchanges": dict(stats.unmapped_exchanges),
        "unmapped_conditions": dict(stats.unmapped_conditions),
        "synthesized_sequence_numbers": stats.synthesized_sequence,
        "synthesized_trade_ids": stats.synthesized_trade_id,
        "delivered": delivered,
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(delivered / elapsed, 1) if elapsed > 0 else None,
    }


def _run(args: argparse.Namespace) -> int:
    from pipeline.kafka.consumer import watermarks
    from pipeline.settings import Settings

    settings = Settings.from_env()
    topic = args.topic or settings.topic
    bootstrap = settings.bootstrap_servers
    try:
        watermarks(bootstrap, topic, 10.0, extra_conf=settings.kafka_extra)
    except KafkaError as e:
        raise KafkaError(
            f"{e}; start Kafka and create the topic with `microstructure kafka up`"
        ) from e
    print(f"loading {args.file} into {topic} at {bootstrap}", file=sys.stderr)
    with _rows_progress(disable=args.json) as progress:
        summary = load_file(
            args.file,
            bootstrap=bootstrap,
            topic=topic,
            extra_conf=dict(settings.kafka_extra),
            tape=args.tape,
            limit=args.limit,
            progress=progress,
        )
    if args.json:
        print(orjson.dumps(summary).decode())
        return 0
    print(f"{summary['file']}: {summary['format']} file, {summary['rows']:,} rows")
    print(f"trades           {summary['trades']:,}")
    print(f"rejects          {sum(summary['rejects'].values()):,} {summary['rejects'] or ''}")
    print(
        f"unmapped TAQ     exchanges {summary['unmapped_exchanges'] or 'none'}, "
        f"conditions {summary['unmapped_conditions'] or 'none'}"
    )
    print(
        f"delivered        {summary['delivered']:,} messages, all acknowledged "
        f"({summary['messages_per_s'] or 0:,.0f}/s)"
    )
    return 0


@contextlib.contextmanager
def _rows_progress(disable: bool) -> Iterator[Callable[[int], None]]:
    """Yield ``progress(rows)`` showing rows read and the rate on stderr (a terminal only)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]producing[/bold] {task.completed:,.0f} rows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=disable or not sys.stderr.isatty(),
    )
    t0 = time.monotonic()
    with bar:
        task = bar.add_task("rows", total=None, rate="")

        def show(rows: int) -> None:
            dt = time.monotonic() - t0
            bar.update(task, completed=rows, rate=f"{rows / dt:,.0f} rows/s" if dt > 0 else "")

        yield show
