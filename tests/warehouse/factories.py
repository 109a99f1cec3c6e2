"""Test inputs built from the shipped sample (real XXX trades), encoded as Kafka records.

The sample has no trade ids or numeric exchange ids: a trade's id is its row number in the
file and the exchange id the TAQ letter's position in a fixed alphabet, which is also how
the replay server numbers them. Helpers here never fabricate prices or times except where a
test states the boundary it probes.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from functools import cache
from pathlib import Path

import pandas as pd

import pipeline
from pipeline.events import Aggregate, AnyEvent, Gap, Quote, Trade
from pipeline.kafka.codec import encode
from pipeline.kafka.offsets import KafkaRecord

SAMPLE = Path(pipeline.__file__).parent / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
TAQ_LETTERS = "ABCDIJKMNPQTVWXYZ"


@cache
def sample_frame() -> pd.DataFrame:
    """Return the sample as a frame with a ``row`` column (its line number, from 0)."""
    with gzip.open(SAMPLE, "rt") as f:
        frame = pd.read_csv(
            f, dtype={"conditions": "str", "exchange": "str"}, keep_default_na=False
        )
    return frame.assign(row=range(len(frame)))


def sample_trades(n: int | None = None, day: date | None = None, start_row: int = 0) -> list[Trade]:
    """Return sample rows as trades (``n`` from ``start_row``; only ``day`` if given)."""
    frame = sample_frame()
    if day is not None:
        local = pd.to_datetime(frame["timestamp_ns"], unit="ns", utc=True).dt.tz_convert(
            "America/New_York"
        )
        frame = frame[local.dt.date == day]
    frame = frame.iloc[start_row : None if n is None else start_row + n]
    return [
        Trade(
            symbol=str(r.symbol),
            sip_timestamp_ns=int(r.timestamp_ns),
            price=float(r.price),
            size=int(r.size),
            exchange=TAQ_LETTERS.index(str(r.exchange)) + 1,
            trade_id=str(r.row),
            conditions=(),
            sequence_number=int(r.row),
            trf_id=None,
            receipt_ns=int(r.timestamp_ns) + 1_000_000,
            source="file",
        )
        for r in frame.itertuples(index=False)
    ]


def sample_quotes(n: int, start_row: int = 0) -> list[Quote]:
    """Return one quote per sample print, both sides at the print (the sample has no quotes).

    The bid and the ask are the print's price, size and exchange, at its SIP time, with its
    row number as the sequence number: real values, so no quote is made up.
    """
    return [
        Quote(
            symbol=t.symbol,
            sip_timestamp_ns=t.sip_timestamp_ns,
            bid_exchange=t.exchange,
            bid_price=t.price,
            bid_size=t.size,
            ask_exchange=t.exchange,
            ask_price=t.price,
            ask_size=t.size,
            sequence_number=t.sequence_number,
            receipt_ns=t.receipt_ns,
        )
        for t in sample_trades(n, start_row=start_row)
    ]


def sample_bars(n: int, kind: str = "AM") -> list[Aggregate]:
    """Return the first ``n`` per-minute bars of the sample, computed from its prints."""
    frame = sample_frame()
    minute = frame["timestamp_ns"] // 60_000_000_000 * 60_000_000_000
    bars: list[Aggregate] = []
    for start, g in frame.groupby(minute, sort=True):
        notional = float((g["price"] * g["size"]).sum())
        volume = int(g["size"].sum())
        bars.append(
            Aggregate(
                kind="A" if kind == "A" else "AM",
                symbol=str(g["symbol"].iloc[0]),
                start_ns=int(start),
                end_ns=int(start) + 60_000_000_000,
                open=float(g["price"].iloc[0]),
                high=float(g["price"].max()),
                low=float(g["price"].min()),
                close=float(g["price"].iloc[-1]),
                volume=volume,
                vwap=notional / volume,
                receipt_ns=int(g["timestamp_ns"].iloc[-1]) + 61_000_000_000,
            )
        )
        if len(bars) == n:
            break
    return bars


def repaired_gap(before: Trade, after: Trade, backfilled: int) -> tuple[Gap, Gap]:
    """Return the two records of a gap between two sample prints: ``pending``, then repaired."""
    pending = Gap(
        subscription=f"T.{before.symbol}",
        last_before_ns=before.sip_timestamp_ns,
        first_after_ns=after.sip_timestamp_ns,
        reason="reconnect after watchdog timeout",
        detected_ns=after.receipt_ns,
        gap_id=f"{after.receipt_ns}:T.{before.symbol}",
        repair="pending",
        repair_from_ns=before.sip_timestamp_ns,
        repair_to_ns=after.sip_timestamp_ns,
    )
    done = replace(
        pending,
        repair="backfilled",
        backfilled=backfilled,
        repaired_ns=after.receipt_ns + 2_000_000_000,
    )
    return pending, done


def as_records(
    events: Sequence[AnyEvent | tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
    topic: str = "polygon-market-data",
    partition: int = 0,
    start: int = 0,
    step: int = 1,
) -> list[KafkaRecord]:
    """Encode events (or raw ``(key, value, headers)`` triples) as consecutive records."""
    out: list[KafkaRecord] = []
    for i, ev in enumerate(events):
        key, value, headers = ev if isinstance(ev, tuple) else encode(ev)
        out.append(
            KafkaRecord(
                topic=topic,
                partition=partition,
                offset=start + i * step,
                key=key,
                value=value,
                headers=tuple(headers),
                timestamp_ms=1_514_903_400_000 + i,
            )
        )
    return out


def live_outputs(
    n: int,
    day: date = date(2018, 1, 2),
    bad_at: int | None = 7,
    input_topic: str = "polygon-market-data",
    input_partition: int = 0,
    trades: Sequence[Trade] | None = None,
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """Return what the live path emits for sample prints (``bad_at``: a print priced 0).

    The live path's own partition processor makes them, so they are ``signal.v1`` records
    (one per regular-hours print) and one ``reject.v1`` record for the bad print, with the
    input key of each print at its position ``i`` (offset ``i``) of ``input_topic``.
    """
    from pipeline.live.partition import PartitionProcessor
    from udx.kernels import Params

    prints = list(trades) if trades is not None else sample_trades(n, day=day)
    if bad_at is not None:
        prints[bad_at] = replace(prints[bad_at], price=0.0)
    proc = PartitionProcessor(input_topic, input_partition, Params())
    out = [proc.process(i, *encode(t)[1:]) for i, t in enumerate(prints)]
    return [o for o in out if o is not None]


def live_records(
    outputs: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]],
    topic: str = "trading-signals",
    partition: int = 0,
    start: int = 0,
    timestamp_ms: int = 1_514_903_400_000,
) -> list[KafkaRecord]:
    """Return live outputs as the records of one partition of the signals topic."""
    return [
        KafkaRecord(topic, partition, start + i, k, v, tuple(h), timestamp_ms + i)
        for i, (k, v, h) in enumerate(outputs)
    ]
