"""Data for ``microstructure bench serve``: a large warehouse, and a loader that appends to it.

One job: give the serve benchmark its data side.

1. :func:`build_serve_warehouse` writes a DuckDB warehouse of ``n_symbols`` x ``n_days``
   symbol-days of 40,000 trades each (25 x 20 = 20,000,000 trades by default), derived from
   the shipped real sample (2 days of NYSE TAQ prints of XXX, read by the project's own
   file reader, :func:`pipeline.feed.files.read_trades`): symbol ``XXX`` keeps the real
   prints, ``S01``, ``S02``, ... are copies with times jittered by up to 0.5 s and prices
   scaled; each symbol-day is topped up to 40,000 prints with jittered duplicates of its
   own prints. Trading day ``k`` is the ``k``-th NYSE session from 2018-01-02 and reuses
   sample day ``k % 2``, shifted by the difference of the two days' New York midnights.
   Rows are stored as ingest stores them: per Kafka partition (``crc32(key) % 4``), in
   microbatches with their ledger row, the ingest gates' verdict
   (:func:`pipeline.quality.validate_batch`), rejects and a feed gap shaped by
   :func:`pipeline.microbatch.shape_batch` from Kafka-like records, and the derived
   columns from :func:`pipeline.microbatch.local_time_columns`. A tiny batch of
   malformed records fails its reject-ratio gate (its verdict in ``quality_results``).
   Each day's signals are computed by the real kernels, audited and published as the
   signals asset does. Bulk inserts (one transaction per day), one day in memory at a
   time. :func:`cached_serve_warehouse` builds once per configuration and reuses the file.
2. :func:`prepare_batches` shapes microbatches of later sessions with the real
   :func:`~pipeline.microbatch.shape_batch` from ``trade.v1`` records continuing the
   ledger, each ending with a print of a marker symbol (strictly increasing times, so a
   poller can tell which batch it sees); :func:`run_loader` commits them with the real
   exactly-once ``load_batch`` as fast as it can, in its own process through
   ``python -m pipeline.bench.serve_data load``.

All batches of :func:`prepare_batches` belong to the marker symbol's partition: a symbol
stays in one partition (architecture.md 4, rule 8), and every batch carries the marker.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pipeline.metrics import sample_quantile
from pipeline.nytime import NEW_YORK

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from pipeline.microbatch import Microbatch
    from pipeline.warehouse.base import QualityVerdict

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
FIXTURE_VERSION = 1
TOPIC = "polygon-market-data"
N_PARTITIONS = 4
TRADES_PER_SYMBOL_DAY = 40_000
FIRST_SESSION = date(2018, 1, 2)
MARKER_SYMBOL = "ZZFRESH"

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000
_JITTER_NS = 500_000_000  # derived symbols: SIP times moved by up to 0.5 s either way
_RECEIPT_LAG_NS = 1_500_000  # SIP time -> the streamer's receipt, plus up to _RECEIPT_SPREAD_NS
_RECEIPT_SPREAD_NS = 500_000
_KAFKA_LAG_NS = 1_000_000  # receipt -> Kafka append (LogAppendTime, ms resolution)
_COMMIT_LAG_NS = 2 * _NS_PER_S  # last record of a batch appended -> its COMMIT
_SIGNALS_LAG_NS = 60 * _NS_PER_S  # the day's last COMMIT -> its final signals run
_GAP_START_NS = 11 * 3600 * _NS_PER_S  # the feed gap: 11:00:00 to 11:00:40 New York
_GAP_LENGTH_NS = 40 * _NS_PER_S
_BURST_AT_NS = 12 * 3600 * _NS_PER_S  # the malformed burst (the failed batch): 12:00 New York
_REJECTS_PER_DAY = 3
_MARKER_PRICE = 10.0


@dataclass(frozen=True)
class ServeWarehouseFacts:
    """What :func:`build_serve_warehouse` wrote.

    Attributes
    ----------
    path
        The DuckDB file.
    symbols
        In derivation order (``XXX`` first).
    days
        Trading days, ISO dates, ascending.
    n_trades, n_signals, n_batches, n_rejects, n_gaps
        Rows of ``market_data``, ``trading_signals``, ``kafka_offsets``,
        ``market_data_rejects`` and ``feed_gaps``.
    build_s
        Seconds the build took.
    last_offsets
        Next Kafka offset of every partition (0 for a partition without records).
    trades_per_symbol_day
        Trades of each symbol-day.
    seed
        Seed of the derivation.
    """

    path: Path
    symbols: tuple[str, ...]
    days: tuple[str, ...]
    n_trades: int
    n_signals: int
    n_batches: int
    n_rejects: int
    n_gaps: int
    build_s: float
    last_offsets: dict[int, int] = field(default_factory=lambda: dict[int, int]())
    trades_per_symbol_day: int = TRADES_PER_SYMBOL_DAY
    seed: int = 7

    def to_json(self) -> str:
        """Return the facts as JSON (``path`` as text, partitions as keys)."""
        d = asdict(self)
        d["path"] = str(self.path)
        d["last_offsets"] = {str(p): o for p, o in self.last_offsets.items()}
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str, path: Path | None = None) -> ServeWarehouseFacts:
        """Return the facts stored by :meth:`to_json`.

        Parameters
        ----------
        text
            The JSON.
        path
            Where the warehouse is now (default: the stored path).

        Returns
        -------
        ServeWarehouseFacts
            The facts.
        """
        d = json.loads(text)
        return cls(
            path=Path(d["path"]) if path is None else path,
            symbols=tuple(d["symbols"]),
            days=tuple(d["days"]),
            n_trades=int(d["n_trades"]),
            n_signals=int(d["n_signals"]),
            n_batches=int(d["n_batches"]),
            n_rejects=int(d["n_rejects"]),
            n_gaps=int(d["n_gaps"]),
            build_s=float(d["build_s"]),
            last_offsets={int(p): int(o) for p, o in d["last_offsets"].items()},
            trades_per_symbol_day=int(d["trades_per_symbol_day"]),
            seed=int(d["seed"]),
        )


def facts_path(warehouse: Path) -> Path:
    """Return where the facts of a warehouse are stored.

    Parameters
    ----------
    warehouse
        The DuckDB file.

    Returns
    -------
    pathlib.Path
        ``<file>.facts.json`` beside it.
    """
    return warehouse.with_name(warehouse.name + ".facts.json")


def partition_of(key: str) -> int:
    """Return the Kafka partition of a record key.

    Kafka's default partitioner uses murmur2; any stable hash serves the fixture, and this
    one is stable across processes (Python's ``hash`` is salted).

    Parameters
    ----------
    key
        A symbol, a gap's subscription (``T.XXX``) or ``_reject``.

    Returns
    -------
    int
        ``crc32(key) % 4``.
    """
    return zlib.crc32(key.encode()) % N_PARTITIONS


def symbol_names(n_symbols: int) -> tuple[str, ...]:
    """Return the symbols of a serve warehouse, in derivation order.

    Parameters
    ----------
    n_symbols
        How many (at least 1).

    Returns
    -------
    tuple[str, ...]
        ``XXX`` (the real sample), then ``S01``, ``S02``, ... (derived from it).
    """
    if n_symbols < 1:
        raise ValueError(f"n_symbols is {n_symbols} and must be at least 1")
    return ("XXX", *(f"S{i:02d}" for i in range(1, n_symbols)))


@cache
def _calendar() -> Any:
    import exchange_calendars as xcals  # heavy (seconds): imported only when needed
    from pandas.errors import Pandas4Warning

    with warnings.catch_warnings():
        # exchange-calendars 4.x trips a pandas 3 deprecation (as in assets/partitions.py).
        warnings.filterwarnings("ignore", category=Pandas4Warning)
        return xcals.get_calendar("XNYS", start=FIRST_SESSION.isoformat())


@cache
def _sessions(n: int) -> tuple[date, ...]:
    cal = _calendar()
    # A year holds at least 250 sessions: n sessions lie within n * 1.6 + 10 calendar days.
    end = date.fromordinal(FIRST_SESSION.toordinal() + int(n * 1.6) + 10)
    sessions = cal.sessions_in_range(FIRST_SESSION.isoformat(), end.isoformat())
    out = tuple(ts.date() for ts in sessions[:n])
    if len(out) < n:
        raise ValueError(f"the XNYS calendar has only {len(out)} sessions from {FIRST_SESSION}")
    return out


def trading_sessions(n: int) -> tuple[date, ...]:
    """Return the first NYSE sessions from 2018-01-02.

    Parameters
    ----------
    n
        How many.

    Returns
    -------
    tuple[datetime.date, ...]
        The sessions of ``exchange_calendars``' XNYS calendar, ascending.
    """
    return _sessions(n)


def _session_close_ns(day: date) -> int:
    return int(_calendar().session_close(day.isoformat()).value)


def _midnight_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).timestamp()) * _NS_PER_S


# --- the sample --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SampleDay:
    """One New York day of the sample, as the file reader returns it, column by column."""

    day: date
    midnight_ns: int
    ts: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    size: npt.NDArray[np.int64]
    exchange: npt.NDArray[np.int32]
    codes: tuple[tuple[int, ...], ...]  # Polygon condition codes per print
    conditions: Any  # pyarrow string array: the codes as stored ("14,37"), null for none


@cache
def _sample_days() -> tuple[_SampleDay, _SampleDay]:
    """Read the shipped sample with the project's file reader (TAQ letters -> Polygon codes)."""
    import pyarrow as pa

    from pipeline.events import Trade
    from pipeline.feed.files import read_trades

    trades = [t for t in read_trades(SAMPLE, default_tape=1) if isinstance(t, Trade)]
    days: list[_SampleDay] = []
    by_day: dict[date, list[Trade]] = {}
    for t in trades:
        local = datetime.fromtimestamp(t.sip_timestamp_ns / _NS_PER_S, tz=NEW_YORK).date()
        by_day.setdefault(local, []).append(t)
    if len(by_day) != 2:
        raise ValueError(f"the sample holds {len(by_day)} New York days, expected 2")
    for day, ts in sorted(by_day.items()):
        ts.sort(key=lambda t: t.sip_timestamp_ns)
        days.append(
            _SampleDay(
                day=day,
                midnight_ns=_midnight_ns(day),
                ts=np.fromiter((t.sip_timestamp_ns for t in ts), np.int64, len(ts)),
                price=np.fromiter((t.price for t in ts), np.float64, len(ts)),
                size=np.fromiter((t.size for t in ts), np.int64, len(ts)),
                exchange=np.fromiter((t.exchange for t in ts), np.int32, len(ts)),
                codes=tuple(t.conditions for t in ts),
                conditions=pa.array(
                    [",".join(map(str, t.conditions)) or None for t in ts], pa.string()
                ),
            )
        )
    return days[0], days[1]


@dataclass(frozen=True)
class _Gap:
    """The one feed gap of the fixture: ``symbol`` missed ``[start_ns, end_ns]``."""

    day_index: int
    symbol_index: int
    start_ns: int
    end_ns: int


def _derive_symbol_day(
    s: _SampleDay,
    sym_index: int,
    day_index: int,
    seed: int,
    n_target: int,
    shift_ns: int,
    window: tuple[int, int] | None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Return sample row, SIP time and price of each print of one symbol-day, by time.

    Symbol 0 keeps the real prints; the others are jittered by up to 0.5 s and their
    prices scaled by ``0.5 + 0.4 * sym_index``. Prints inside ``window`` (the feed gap)
    are missing. Below ``n_target`` prints, jittered duplicates of the day's own prints
    top the day up; above it, a random subset (in time order, with the day's last print)
    is kept.
    """
    rng = np.random.default_rng([seed, day_index, sym_index])
    n0 = len(s.ts)
    ts = s.ts + shift_ns
    if sym_index:
        ts = ts + rng.integers(-_JITTER_NS, _JITTER_NS + 1, n0)
    idx = np.arange(n0, dtype=np.int64)
    if window is not None:
        keep = (ts < window[0]) | (ts > window[1])
        idx, ts = idx[keep], ts[keep]
    n = len(idx)
    if n_target < n:
        # The day's last print stays: ingest then reaches past the close, and the day's
        # signals are final, as for a full day.
        sel = np.sort(np.r_[rng.choice(n - 1, n_target - 1, replace=False), n - 1])
        idx, ts = idx[sel], ts[sel]
    elif n_target > n:
        extra = rng.choice(n, n_target - n, replace=n_target - n > n)
        e_ts = ts[extra] + rng.integers(-_JITTER_NS, _JITTER_NS + 1, len(extra))
        if window is not None:
            inside = (e_ts >= window[0]) & (e_ts <= window[1])
            e_ts[inside] = ts[extra][inside]
        idx = np.concatenate([idx, idx[extra]])
        ts = np.concatenate([ts, e_ts])
    order = np.argsort(ts, kind="stable")
    idx, ts = idx[order], ts[order]
    scale = 1.0 if sym_index == 0 else 0.5 + 0.4 * sym_index
    price = np.round(s.price[idx] * scale, 2)
    return idx, ts, price


def _per_exchange_ids(exchange: npt.NDArray[np.int32]) -> npt.NDArray[np.int64]:
    """Return 1, 2, ... per exchange in print order (the file reader's trade id rule)."""
    order = np.argsort(exchange, kind="stable")
    ex = exchange[order]
    starts = np.r_[0, np.flatnonzero(ex[1:] != ex[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(ex)]))
    ids = np.empty(len(ex), dtype=np.int64)
    ids[order] = np.arange(len(ex)) - run_start + 1
    return ids


@dataclass
class _DayTrades:
    """The prints of one trading day (all symbols), column by column, in arrival order."""

    code: npt.NDArray[np.int64]  # symbol index
    row: npt.NDArray[np.int64]  # sample row
    ts: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    seq: npt.NDArray[np.int64]  # sequence number and trade id counters, per symbol-day
    trade_id: npt.NDArray[np.int64]
    receipt: npt.NDArray[np.int64]
    partition: npt.NDArray[np.int64]


def _day_trades(
    day_index: int,
    session: date,
    names: Sequence[str],
    seed: int,
    n_target: int,
    gap: _Gap | None,
    only_partition: int | None = None,
    symbol_codes: Sequence[int] | None = None,
) -> tuple[_SampleDay, _DayTrades]:
    """Derive every print of one trading day, ordered by (partition, receipt time).

    Symbol ``code`` is ``names[code]``; only ``symbol_codes`` (default: all) are derived,
    and of them only those of ``only_partition`` when it is set.
    """
    s = _sample_days()[day_index % 2]
    shift = _midnight_ns(session) - s.midnight_ns
    codes = list(range(len(names))) if symbol_codes is None else list(symbol_codes)
    parts = [partition_of(names[c]) for c in codes]
    cols: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in _DayTrades.__dataclass_fields__}
    for code, part in zip(codes, parts, strict=True):
        if only_partition is not None and part != only_partition:
            continue
        window = None
        if gap is not None and gap.day_index == day_index and gap.symbol_index == code:
            window = (gap.start_ns, gap.end_ns)
        row, ts, price = _derive_symbol_day(s, code, day_index, seed, n_target, shift, window)
        n = len(ts)
        lag = np.random.default_rng([seed, day_index, code, 1]).integers(0, _RECEIPT_SPREAD_NS, n)
        cols["code"].append(np.full(n, code, dtype=np.int64))
        cols["row"].append(row)
        cols["ts"].append(ts)
        cols["price"].append(price)
        cols["seq"].append(np.arange(1, n + 1, dtype=np.int64))
        cols["trade_id"].append(_per_exchange_ids(s.exchange[row]))
        cols["receipt"].append(ts + _RECEIPT_LAG_NS + lag)
        cols["partition"].append(np.full(n, part, dtype=np.int64))
    joined: dict[str, Any] = {
        k: np.concatenate(v) if v else np.empty(0, np.float64 if k == "price" else np.int64)
        for k, v in cols.items()
    }
    order = np.lexsort((joined["seq"], joined["code"], joined["receipt"], joined["partition"]))
    return s, _DayTrades(**{k: v[order] for k, v in joined.items()})


# --- records that are not plain trades: rejects, the gap, the failed burst ----------------------


@dataclass(frozen=True)
class _Special:
    """One Kafka record the fixture shapes with the real ``shape_batch`` (not a plain trade)."""

    partition: int
    arrival_ns: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    burst: bool = False


def _record(partition: int, arrival_ns: int, encoded: tuple[bytes, bytes, Any]) -> _Special:
    key, value, headers = encoded
    return _Special(partition, arrival_ns, key, value, tuple(headers))


def _day_specials(
    day_index: int,
    session: date,
    symbols: Sequence[str],
    seed: int,
    trades: _DayTrades,
    gap: _Gap | None,
    burst_partition: int | None,
) -> list[_Special]:
    """Return the day's rejects (and the gap record, the malformed burst) as Kafka records."""
    from pipeline.events import Gap, Reject, Trade
    from pipeline.kafka.codec import SCHEMA_TRADE, encode

    rng = np.random.default_rng([seed, day_index, 99])
    midnight = _midnight_ns(session)
    out: list[_Special] = []
    open_ns, close_ns = midnight + 34_200 * _NS_PER_S, midnight + 57_600 * _NS_PER_S
    for j in range(_REJECTS_PER_DAY):
        at = int(rng.integers(open_ns, close_ns))
        sym = symbols[int(rng.integers(0, len(symbols)))]
        if j % 3 == 0:
            # A print with a non-positive price: the loader rejects it (stage ingest).
            bad = Trade(
                sym, at - _RECEIPT_LAG_NS, -1.0, 100, 10, f"neg-{day_index}-{j}", receipt_ns=at
            )
            out.append(_record(partition_of(sym), at, encode(bad)))
        elif j % 3 == 1:
            # A value that is not JSON under a trade.v1 header (stage ingest, undecodable).
            out.append(
                _Special(
                    partition_of(sym),
                    at,
                    sym.encode(),
                    b"\x00\x17not json; DROP TABLE market_data;--",
                    (("schema", SCHEMA_TRADE), ("recv_ns", b"%d" % at)),
                )
            )
        else:
            # A frame the streamer could not parse, passed on as reject.v1 (stage feed).
            raw = b'[{"ev":"T","sym":"' + sym.encode() + b'","p":"12.x"'
            rej = Reject("parse", "malformed JSON: unexpected end of data", raw, at)
            out.append(_record(partition_of("_reject"), at, encode(rej)))
    if gap is not None and gap.day_index == day_index:
        sym = symbols[gap.symbol_index]
        mine = trades.ts[trades.code == gap.symbol_index]
        before = int(mine[mine < gap.start_ns].max())
        after = int(mine[mine > gap.end_ns].min())
        detected = after + 1_200_000_000
        g = Gap(
            subscription=f"T.{sym}",
            last_before_ns=before,
            first_after_ns=after,
            reason="reconnect after watchdog timeout",
            detected_ns=detected,
            gap_id=f"{detected}:T.{sym}",
            repair="not_attempted",
            repair_detail="no REST source configured",
        )
        out.append(_record(partition_of(g.subscription), detected, encode(g)))
    if burst_partition is not None:
        # Four malformed records in a row, alone in their batch: its reject ratio fails the
        # ingest gate. The batch holds no trade, so no day's signals are blocked by it.
        at = midnight + _BURST_AT_NS
        key = symbols[0].encode()
        for j, value in enumerate(
            (b"\xff\xfe", b'{"symbol": "' + key + b'", "price": "n/a"}', b"{", b"null")
        ):
            out.append(
                _Special(
                    burst_partition,
                    at,
                    key,
                    value,
                    (("schema", SCHEMA_TRADE), ("recv_ns", b"%d" % (at + j))),
                    burst=True,
                )
            )
    return out


# --- one day's rows ------------------------------------------------------------------------------


def _trades_frame(
    s: _SampleDay, symbols: Sequence[str], t: _DayTrades, sel: npt.NDArray[np.int64], offsets: Any
) -> pd.DataFrame:
    """Return the rows of ``t[sel]`` as ``shape_batch`` builds them (same columns, same dtypes)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipeline.microbatch import TRADE_COLUMNS, local_time_columns

    n = len(sel)
    ts = t.ts[sel]
    row = t.row[sel]
    derived = local_time_columns(ts)
    receipt = t.receipt[sel]
    kafka_ts, kafka_off = offsets
    columns: dict[str, Any] = {
        "symbol": pd.Series(pa.array(list(symbols), pa.string()).take(t.code[sel]), dtype="str"),
        "timestamp_ns": ts,
        "price": t.price[sel],
        "size": s.size[row],
        "exchange": s.exchange[row],
        "trade_id": pd.Series(pc.cast(pa.array(t.trade_id[sel]), pa.string()), dtype="str"),
        "trf_id": np.zeros(n, dtype=np.int32),
        "tape": pd.arrays.IntegerArray(np.ones(n, dtype=np.int32), np.zeros(n, dtype=bool)),
        "conditions": pd.Series(s.conditions.take(pa.array(row)), dtype="str"),
        "sequence_number": pd.arrays.IntegerArray(t.seq[sel], np.zeros(n, dtype=bool)),
        "trf_timestamp_ns": pd.arrays.IntegerArray(
            np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
        ),
        "trade_date": derived["trade_date"].to_numpy(),
        "in_regular_hours": derived["in_regular_hours"].to_numpy(),
        "ns_from_open": derived["ns_from_open"].to_numpy(),
        "source": pd.Series(pc.fill_null(pa.nulls(n, pa.string()), "ws"), dtype="str"),
        "receipt_ns": pd.arrays.IntegerArray(receipt, np.zeros(n, dtype=bool)),
        "kafka_ts_ns": kafka_ts,
        "kafka_topic": pd.Series(pc.fill_null(pa.nulls(n, pa.string()), TOPIC), dtype="str"),
        "kafka_partition": t.partition[sel].astype(np.int32),
        "kafka_offset": kafka_off,
    }
    return pd.DataFrame({c: columns[c] for c in TRADE_COLUMNS})


@dataclass
class _DayRows:
    """What one day adds to the warehouse, ready for one transaction."""

    trades: pa.Table
    rejects: pd.DataFrame
    gaps: pd.DataFrame
    ledger: list[tuple[Any, ...]]
    quality: list[tuple[Any, ...]]
    next_offsets: dict[int, int]
    last_commit: dict[int, int]


def _day_rows(
    day_index: int,
    session: date,
    symbols: Sequence[str],
    seed: int,
    n_target: int,
    batch_records: int,
    start_offsets: dict[int, int],
    last_commit: dict[int, int],
    gap: _Gap | None,
    burst_partition: int | None,
) -> _DayRows:
    """Derive one trading day and cut it into microbatches as ingest would load them."""
    import pandas as pd
    import pyarrow as pa

    from pipeline.kafka.offsets import OffsetRange
    from pipeline.microbatch import (
        GAP_COLUMNS,
        REJECT_COLUMNS,
        Microbatch,
        PackedHeaders,
        RecordColumns,
        shape_batch,
    )
    from pipeline.quality import validate_batch

    s, t = _day_trades(day_index, session, symbols, seed, n_target, gap)
    specials = _day_specials(day_index, session, symbols, seed, t, gap, burst_partition)
    n = len(t.ts)
    kafka_ts = np.empty(n, dtype=np.int64)
    kafka_off = np.empty(n, dtype=np.int64)
    # Per batch: (committed_ns, partition, start, stop, trade rows, specials, n_messages).
    batches: list[tuple[int, int, int, int, npt.NDArray[np.int64], list[Any], int]] = []
    next_offsets = dict(start_offsets)
    commits = dict(last_commit)
    bounds = np.searchsorted(t.partition, np.arange(N_PARTITIONS + 1))
    for p in range(N_PARTITIONS):
        lo, hi = int(bounds[p]), int(bounds[p + 1])
        sp = sorted((x for x in specials if x.partition == p), key=lambda x: x.arrival_ns)
        if hi == lo and not sp:
            continue
        start = next_offsets.get(p, 0)
        arrivals = t.receipt[lo:hi]
        sp_arr = np.asarray([x.arrival_ns for x in sp], dtype=np.int64)
        sp_pos = np.searchsorted(arrivals, sp_arr, side="right")
        j = np.arange(hi - lo)
        trade_off = start + j + np.searchsorted(sp_pos, j, side="right")
        sp_off = start + sp_pos + np.arange(len(sp))
        total = hi - lo + len(sp)
        arrival_all = np.empty(total, dtype=np.int64)
        arrival_all[trade_off - start] = arrivals
        arrival_all[sp_off - start] = sp_arr
        # LogAppendTime: ms resolution, never decreasing within a partition.
        append_ms = np.maximum.accumulate((arrival_all + _KAFKA_LAG_NS) // _NS_PER_MS)
        kafka_ts[lo:hi] = append_ms[trade_off - start] * _NS_PER_MS
        kafka_off[lo:hi] = trade_off
        cuts = set(range(start, start + total, batch_records)) | {start + total}
        burst = [int(o) for o, x in zip(sp_off, sp, strict=True) if x.burst]
        if burst:
            cuts |= {min(burst), max(burst) + 1}
        edges = sorted(cuts)
        for a, b in itertools.pairwise(edges):
            rows = np.arange(
                lo + int(np.searchsorted(trade_off, a)), lo + int(np.searchsorted(trade_off, b))
            )
            mine = [(int(o), x) for o, x in zip(sp_off, sp, strict=True) if a <= o < b]
            last_ms = int(append_ms[b - 1 - start])
            committed = max(last_ms * _NS_PER_MS + _COMMIT_LAG_NS, commits.get(p, 0) + _NS_PER_MS)
            commits[p] = committed
            batches.append((committed, p, a, b, rows, mine, b - a))
        next_offsets[p] = start + total
    frame = _trades_frame(s, symbols, t, np.arange(n), (kafka_ts, kafka_off))
    ledger: list[tuple[Any, ...]] = []
    quality: list[tuple[Any, ...]] = []
    rejects: list[pd.DataFrame] = []
    gaps: list[pd.DataFrame] = []
    loaded = np.empty(n, dtype=np.int64)
    order: list[npt.NDArray[np.int64]] = []
    for committed, p, a, b, rows, mine, n_messages in sorted(batches, key=lambda x: x[:2]):
        rng = OffsetRange(TOPIC, p, a, b)
        headers = PackedHeaders()
        headers.extend([list(x.headers) for _, x in mine])
        shaped = shape_batch(
            RecordColumns(
                topic=TOPIC,
                partition=p,
                offsets=np.asarray([o for o, _ in mine], dtype=np.int64),
                keys=[x.key for _, x in mine],
                values=[x.value for _, x in mine],
                headers=headers,
                timestamps_ms=np.asarray(
                    [(x.arrival_ns + _KAFKA_LAG_NS) // _NS_PER_MS for _, x in mine], np.int64
                ),
            ),
            rng,
        )
        if shaped.n_trades:
            raise AssertionError(f"a special record of {rng} shaped into a trade")
        trades = frame.iloc[rows[0] : rows[-1] + 1] if len(rows) else frame.iloc[0:0]
        batch = Microbatch(
            range=rng,
            trades=trades,
            rejects=shaped.rejects,
            gaps=shaped.gaps,
            n_messages=n_messages,
            n_duplicates=0,
        )
        verdict = validate_batch(batch).verdict()
        run_id = f"serve-fixture-ingest-{p}-{a}"
        ts = trades["timestamp_ns"]
        ledger.append(
            (
                TOPIC,
                p,
                a,
                b,
                n_messages,
                len(trades),
                0,
                batch.n_rejects,
                batch.n_gaps,
                int(ts.min()) if len(ts) else None,
                int(ts.max()) if len(ts) else None,
                verdict.passed,
                verdict.summary_json,
                run_id,
                committed,
                0,
                0,
                0,
                0,
                None,  # kafka_topic_id: none, like rows written before the check (adopted)
                0,  # n_signals, n_signal_duplicates, n_signal_rejects: a market-data batch
                0,
                0,
            )
        )
        quality.extend(
            (run_id, r.suite, r.target, r.expectation, r.passed, r.observed_json, committed)
            for r in verdict.results
        )
        if batch.n_rejects:
            rejects.append(shaped.rejects.assign(loaded_ns=committed))
        if batch.n_gaps:
            gaps.append(shaped.gaps.assign(loaded_ns=committed))
        loaded[rows] = committed
        order.append(rows)
    # Rows are stored in commit order (as loads append them), each batch in offset order.
    frame["loaded_ns"] = loaded
    table = pa.Table.from_pandas(frame.take(np.concatenate(order)), preserve_index=False)
    return _DayRows(
        trades=table,
        rejects=pd.concat(rejects, ignore_index=True)
        if rejects
        else pd.DataFrame(columns=[*REJECT_COLUMNS, "loaded_ns"]),
        gaps=pd.concat(gaps, ignore_index=True)
        if gaps
        else pd.DataFrame(columns=[*GAP_COLUMNS, "loaded_ns"]),
        ledger=ledger,
        quality=quality,
        next_offsets=next_offsets,
        last_commit=commits,
    )


def _write_day(con: Any, rows: _DayRows) -> None:
    """Insert one day's trades, rejects, gaps, ledger and verdict rows (caller's transaction)."""
    from pipeline.microbatch import GAP_COLUMNS, REJECT_COLUMNS, TRADE_COLUMNS
    from pipeline.warehouse import queries as q

    select = ", ".join(
        "CAST(b.trade_date AS DATE)" if c == "trade_date" else f'b."{c}"'
        for c in (*TRADE_COLUMNS, "loaded_ns")
    )
    names = ", ".join(f'"{c}"' for c in (*TRADE_COLUMNS, "loaded_ns"))
    con.register("serve_fixture_trades", rows.trades)
    try:
        con.execute(
            f"INSERT INTO {q.MARKET_DATA} ({names}) "  # noqa: S608 - identifiers are constants
            f"SELECT {select} FROM serve_fixture_trades AS b"
        )
    finally:
        con.unregister("serve_fixture_trades")
    for table, frame, cols in (
        (q.REJECTS, rows.rejects, REJECT_COLUMNS),
        (q.FEED_GAPS, rows.gaps, GAP_COLUMNS),
    ):
        if len(frame):
            names = ", ".join(f'"{c}"' for c in (*cols, "loaded_ns"))
            con.register("serve_fixture_rows", frame)
            try:
                con.execute(
                    f"INSERT INTO {table} ({names}) "  # noqa: S608 - identifiers are constants
                    f"SELECT {names} FROM serve_fixture_rows"
                )
            finally:
                con.unregister("serve_fixture_rows")
    con.executemany(q.INSERT_LEDGER, rows.ledger)
    if rows.quality:
        con.executemany(q.INSERT_QUALITY, rows.quality)


def _publish_day_signals(wh: Any, day: date, computed_ns: int) -> int:
    """Compute, audit and publish one day's signals as the signals asset does; return rows."""
    from pipeline.nytime import day_bounds_ns
    from pipeline.quality import validate_signals
    from pipeline.signals.assemble import compute_frames
    from pipeline.warehouse.finality import ingested_through, loaded_watermarks
    from pipeline.warehouse.provenance import build_signal_run
    from pipeline.warehouse.queries import SIGNAL_PASSTHROUGH
    from udx.kernels import KERNEL_VERSION, Params

    params = Params()
    run_id = f"serve-fixture-signals-{day.isoformat()}"
    day_input = wh.read_day(day)
    trades = day_input.trades
    frames = compute_frames(trades, params, passthrough=SIGNAL_PASSTHROUGH)
    report = validate_signals(
        frames,
        day.isoformat(),
        n_input_trades=len(trades),
        n_input_symbols=len(trades["symbol"].unique()),
        n_buckets=params.n_buckets,
        failed_input_batches=wh.failed_batches(*day_bounds_ns(day)),
    )
    wh.record_quality(run_id, report.rows())
    if not report.passed:
        raise AssertionError(f"the signal suite failed on {day}: {report.summary_json()}")
    run = build_signal_run(
        run_id=run_id,
        day=day,
        trades=trades,
        frames=frames,
        kernel_version=KERNEL_VERSION,
        params=params.to_dict(),
        computed_ns=computed_ns,
        session_close_ns=_session_close_ns(day),
        ingested_through_ns=ingested_through(
            day_input.frontier, TOPIC, loaded_watermarks(day_input.frontier, TOPIC)
        ),
        ledger_ends_json=day_input.frontier.ends_json(),
        quality_passed=report.passed,
        quality_summary_json=report.summary_json(),
    )
    if not run.final:
        raise AssertionError(f"the signals run of {day} is not final: ingest ends too early")
    wh.publish_signals(day, frames, run)
    return len(frames.trade_signals)


def build_serve_warehouse(
    path: Path,
    *,
    n_symbols: int = 25,
    n_days: int = 20,
    seed: int = 7,
    batch_records: int = 50_000,
    max_trades_per_symbol_day: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ServeWarehouseFacts:
    """Write the serve benchmark's warehouse: ``n_symbols`` x ``n_days`` symbol-days of trades.

    Parameters
    ----------
    path
        The DuckDB file to create (must not exist).
    n_symbols
        ``XXX`` (the real sample) and ``n_symbols - 1`` derived symbols ``S01``, ...
    n_days
        Consecutive NYSE sessions from 2018-01-02.
    seed
        Seed of the derivation (jitter, duplicates, rejects).
    batch_records
        Largest offset span of one microbatch (one ledger row each).
    max_trades_per_symbol_day
        Fewer trades per symbol-day than the default 40,000 (small test fixtures): a
        random subset of the day's prints, in time order.
    progress
        Called with one line per day.

    Returns
    -------
    ServeWarehouseFacts
        Counts of what was written and the next offset of every partition.

    Raises
    ------
    FileExistsError
        If ``path`` exists.
    """
    from pipeline.warehouse import open_warehouse
    from pipeline.warehouse.duckdb_backend import DuckDBWarehouse

    started = time.perf_counter()
    # Absolute: a relative path in a duckdb:/// URL would be read from the root.
    path = Path(path).absolute()
    if path.exists():
        raise FileExistsError(path)
    if batch_records < 1:
        raise ValueError(f"batch_records is {batch_records} and must be at least 1")
    n_target = TRADES_PER_SYMBOL_DAY
    if max_trades_per_symbol_day is not None:
        n_target = min(n_target, max_trades_per_symbol_day)
    if n_target < 10:
        raise ValueError(f"trades per symbol-day is {n_target} and must be at least 10")
    symbols = symbol_names(n_symbols)
    sessions = trading_sessions(n_days)
    wh = open_warehouse(f"duckdb:///{path}")
    if not isinstance(wh, DuckDBWarehouse):
        raise TypeError(f"expected a DuckDB warehouse, got {wh!r}")
    wh.migrate()
    last = sessions[-1]
    gap_sym = 1 if n_symbols > 1 else 0
    gap = _Gap(
        day_index=n_days - 1,
        symbol_index=gap_sym,
        start_ns=_midnight_ns(last) + _GAP_START_NS,
        end_ns=_midnight_ns(last) + _GAP_START_NS + _GAP_LENGTH_NS,
    )
    offsets: dict[int, int] = {}
    commits: dict[int, int] = {}
    n_trades = n_signals = n_batches = n_rejects = n_gaps = 0
    for k, day in enumerate(sessions):
        t0 = time.perf_counter()
        rows = _day_rows(
            k,
            day,
            symbols,
            seed,
            n_target,
            batch_records,
            offsets,
            commits,
            gap,
            partition_of(symbols[0]) if k == 0 else None,
        )
        with wh.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                _write_day(con, rows)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        offsets, commits = rows.next_offsets, rows.last_commit
        n_day = rows.trades.num_rows
        n_trades += n_day
        n_batches += len(rows.ledger)
        n_rejects += len(rows.rejects)
        n_gaps += len(rows.gaps)
        del rows
        n_signals += _publish_day_signals(wh, day, max(commits.values()) + _SIGNALS_LAG_NS)
        if progress is not None:
            progress(
                f"day {k + 1}/{n_days} {day}: {n_day:,} trades, "
                f"{time.perf_counter() - t0:.1f} s (total {time.perf_counter() - started:.0f} s)"
            )
    with wh.connect() as con:
        con.execute("CHECKPOINT")
    return ServeWarehouseFacts(
        path=path,
        symbols=symbols,
        days=tuple(d.isoformat() for d in sessions),
        n_trades=n_trades,
        n_signals=n_signals,
        n_batches=n_batches,
        n_rejects=n_rejects,
        n_gaps=n_gaps,
        build_s=round(time.perf_counter() - started, 3),
        last_offsets={p: offsets.get(p, 0) for p in range(N_PARTITIONS)},
        trades_per_symbol_day=n_target,
        seed=seed,
    )


def cached_serve_warehouse(
    cache_dir: Path,
    *,
    n_days: int,
    n_symbols: int = 25,
    max_trades_per_symbol_day: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ServeWarehouseFacts:
    """Return the serve warehouse of this size, building it on the first call only.

    The file is ``cache_dir / warehouse-{n_symbols}x{n_days}-v{FIXTURE_VERSION}.duckdb``,
    its facts beside it (``.facts.json``). A build writes a temporary file and renames it,
    then writes the facts the same way; a file without facts is an interrupted build and
    is built again. Concurrent callers wait for one another (a lock file).

    Parameters
    ----------
    cache_dir
        Where the warehouses are kept (created if needed).
    n_days
        Trading days of history.
    n_symbols
        Symbols.
    max_trades_per_symbol_day
        Small fixtures (tests); part of the file name when set.
    progress
        Called with one line per day of a build.

    Returns
    -------
    ServeWarehouseFacts
        The facts of the (possibly reused) warehouse.
    """
    import fcntl

    cache_dir = Path(cache_dir).absolute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    size = "" if max_trades_per_symbol_day is None else f"-t{max_trades_per_symbol_day}"
    path = cache_dir / f"warehouse-{n_symbols}x{n_days}{size}-v{FIXTURE_VERSION}.duckdb"
    facts_file = facts_path(path)
    with (cache_dir / f"{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists() and facts_file.exists():
            return ServeWarehouseFacts.from_json(facts_file.read_text(), path=path)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        for stale in (path, tmp, tmp.with_name(tmp.name + ".wal")):
            stale.unlink(missing_ok=True)
        try:
            facts = build_serve_warehouse(
                tmp,
                n_symbols=n_symbols,
                n_days=n_days,
                max_trades_per_symbol_day=max_trades_per_symbol_day,
                progress=progress,
            )
        except BaseException:
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
            raise
        if tmp.with_name(tmp.name + ".wal").exists():
            raise RuntimeError(f"{tmp} still has a write-ahead log after CHECKPOINT")
        os.replace(tmp, path)
        facts = replace(facts, path=path)
        tmp_facts = facts_file.with_name(facts_file.name + ".tmp")
        tmp_facts.write_text(facts.to_json())
        os.replace(tmp_facts, facts_file)
        return facts


def read_facts(path: Path) -> ServeWarehouseFacts:
    """Return the facts of a serve warehouse: its ``.facts.json``, or read from the file.

    A copy of a warehouse has no facts file: symbols, days, counts, trades per symbol-day
    and the ledger's next offsets are then read from the warehouse itself (read-only), the
    seed taken as the default. The days of a copy that a loader appended to include the
    sessions it loaded, so batches prepared from it follow those.

    Parameters
    ----------
    path
        The DuckDB file.

    Returns
    -------
    ServeWarehouseFacts
        The facts, with ``path`` set to ``path``.
    """
    facts_file = facts_path(path)
    if facts_file.exists():
        return ServeWarehouseFacts.from_json(facts_file.read_text(), path=path)
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:

        def one(sql: str) -> Any:
            return con.execute(sql).fetchall()[0][0]

        present = {
            str(s) for (s,) in con.execute("SELECT DISTINCT symbol FROM market_data").fetchall()
        }
        # The derived symbols in their order (a loaded copy also holds the marker's prints).
        n_symbols = 0
        while symbol_names(n_symbols + 1)[-1] in present:
            n_symbols += 1
        per_symbol_day = one(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM market_data GROUP BY symbol, trade_date)"
        )
        days = [
            str(d)
            for (d,) in con.execute(
                "SELECT DISTINCT trade_date FROM market_data ORDER BY 1"
            ).fetchall()
        ]
        offsets = {
            int(p): int(o)
            for p, o in con.execute(
                "SELECT kafka_partition, max(stop_offset) FROM kafka_offsets "
                "WHERE kafka_topic = ? GROUP BY 1",
                [TOPIC],
            ).fetchall()
        }
        facts = ServeWarehouseFacts(
            path=path,
            symbols=symbol_names(n_symbols),
            days=tuple(days),
            n_trades=int(one("SELECT count(*) FROM market_data")),
            n_signals=int(one("SELECT count(*) FROM trading_signals")),
            n_batches=int(one("SELECT count(*) FROM kafka_offsets")),
            n_rejects=int(one("SELECT count(*) FROM market_data_rejects")),
            n_gaps=int(one("SELECT count(*) FROM feed_gaps")),
            build_s=0.0,
            last_offsets={p: offsets.get(p, 0) for p in range(N_PARTITIONS)},
            trades_per_symbol_day=int(per_symbol_day or TRADES_PER_SYMBOL_DAY),
        )
    finally:
        con.close()
    return facts


# --- microbatches of later sessions ---------------------------------------------------------------


def prepare_batches(
    facts_or_path: ServeWarehouseFacts | Path,
    *,
    n_batches: int,
    batch_records: int = 20_000,
    day_offset: int = 0,
    marker_symbol: str = MARKER_SYMBOL,
) -> list[Microbatch]:
    """Shape microbatches of the sessions after the warehouse's last day, as ingest would.

    The prints are derived from the sample exactly as the warehouse's (same symbols, same
    rule), for the warehouse symbols that share the marker's Kafka partition; each batch
    is ``batch_records - 1`` of them in arrival order plus one print of ``marker_symbol``
    stamped with the batch's newest SIP time (strictly increasing from batch to batch).
    Records are encoded as the streamer encodes ``trade.v1`` (value, key, ``schema`` and
    ``recv_ns`` headers) and shaped by :func:`pipeline.microbatch.shape_batch`; offsets
    continue the partition's ledger. The prints run on from one session into the next (a
    batch may hold the end of one and the start of the next), so every batch has exactly
    ``batch_records`` records.

    Parameters
    ----------
    facts_or_path
        The warehouse's facts, or its file (see :func:`read_facts`).
    n_batches
        Batches to return.
    batch_records
        Records (offsets) per batch.
    day_offset
        Skip this many sessions after the warehouse's last day first (independent sets).
    marker_symbol
        The symbol whose newest print identifies each batch; not a warehouse symbol.

    Returns
    -------
    list[Microbatch]
        In load order; batch ``i + 1`` starts where batch ``i`` stops.

    Raises
    ------
    ValueError
        If the marker is a warehouse symbol or an argument is out of range.
    """
    from pipeline.kafka.codec import SCHEMA_TRADE, encode_fields
    from pipeline.kafka.offsets import OffsetRange
    from pipeline.microbatch import PackedHeaders, RecordColumns, shape_batch

    facts = (
        facts_or_path
        if isinstance(facts_or_path, ServeWarehouseFacts)
        else read_facts(Path(facts_or_path))
    )
    if marker_symbol in facts.symbols:
        raise ValueError(f"the marker {marker_symbol!r} is a warehouse symbol")
    if n_batches < 1 or batch_records < 2 or day_offset < 0:
        raise ValueError(
            f"n_batches={n_batches}, batch_records={batch_records}, day_offset={day_offset}: "
            "need n_batches >= 1, batch_records >= 2, day_offset >= 0"
        )
    part = partition_of(marker_symbol)
    codes = [i for i, s in enumerate(facts.symbols) if partition_of(s) == part]
    names = list(facts.symbols)
    if not codes:
        # No warehouse symbol shares the marker's partition: the marker's own prints fill.
        codes = [len(names)]
        names.append(marker_symbol)
    offset = facts.last_offsets.get(part, 0)
    sessions = _new_sessions(facts, names, codes, part, len(facts.days) + day_offset)
    session: tuple[_SampleDay, _DayTrades] | None = None
    pos = 0
    marker_ts = 0
    out: list[Microbatch] = []
    for marker_seq in range(1, n_batches + 1):
        keys: list[bytes | None] = []
        values: list[bytes | None] = []
        heads: list[Any] = []
        arrivals: list[int] = []
        need = batch_records - 1
        newest = 0
        while need:
            if session is None or pos == len(session[1].ts):
                # The stream goes on into the next session: batches are cut by offsets.
                session, pos = next(sessions), 0
                continue
            s, t = session
            hi = min(pos + need, len(t.ts))
            for i in range(pos, hi):
                key, value = encode_fields(_trade_fields(s, names, t, i))
                keys.append(key)
                values.append(value)
                heads.append([("schema", SCHEMA_TRADE), ("recv_ns", b"%d" % t.receipt[i])])
            arrivals.extend(t.receipt[pos:hi].tolist())
            newest = max(newest, int(t.ts[pos:hi].max()))
            need -= hi - pos
            pos = hi
        marker_ts = max(newest, marker_ts + 1)
        arrival = max(max(arrivals), marker_ts + _RECEIPT_LAG_NS)
        key, value = encode_fields(
            {
                "symbol": marker_symbol,
                "sip_timestamp_ns": marker_ts,
                "price": _MARKER_PRICE,
                "size": 100,
                "exchange": 10,
                "trade_id": str(marker_seq),
                "tape": 1,
                "conditions": [],
                "sequence_number": marker_seq,
                "trf_id": None,
                "trf_timestamp_ns": None,
                "receipt_ns": arrival,
                "source": "ws",
            }
        )
        keys.append(key)
        values.append(value)
        heads.append([("schema", SCHEMA_TRADE), ("recv_ns", b"%d" % arrival)])
        arrivals.append(arrival)
        append_ms = np.maximum.accumulate(
            (np.asarray(arrivals, dtype=np.int64) + _KAFKA_LAG_NS) // _NS_PER_MS
        )
        headers = PackedHeaders()
        headers.extend(heads)
        n = batch_records
        out.append(
            shape_batch(
                RecordColumns(
                    topic=TOPIC,
                    partition=part,
                    offsets=np.arange(offset, offset + n, dtype=np.int64),
                    keys=keys,
                    values=values,
                    headers=headers,
                    timestamps_ms=append_ms,
                ),
                OffsetRange(TOPIC, part, offset, offset + n),
            )
        )
        offset += n
    return out


def _new_sessions(
    facts: ServeWarehouseFacts, names: Sequence[str], codes: Sequence[int], part: int, first: int
) -> Iterator[tuple[_SampleDay, _DayTrades]]:
    """Yield the prints of partition ``part`` of sessions ``first``, ``first + 1``, ..."""
    k = first
    while True:
        yield _day_trades(
            k,
            _sessions(k + 1)[k],
            names,
            facts.seed,
            facts.trades_per_symbol_day,
            None,
            only_partition=part,
            symbol_codes=codes,
        )
        k += 1


def _trade_fields(s: _SampleDay, names: Sequence[str], t: _DayTrades, i: int) -> dict[str, Any]:
    """Return the ``trade.v1`` fields of print ``i`` (the streamer's dict, in value order)."""
    row = int(t.row[i])
    return {
        "symbol": names[int(t.code[i])],
        "sip_timestamp_ns": int(t.ts[i]),
        "price": float(t.price[i]),
        "size": int(s.size[row]),
        "exchange": int(s.exchange[row]),
        "trade_id": str(int(t.trade_id[i])),
        "tape": 1,
        "conditions": list(s.codes[row]),
        "sequence_number": int(t.seq[i]),
        "trf_id": None,
        "trf_timestamp_ns": None,
        "receipt_ns": int(t.receipt[i]),
        "source": "ws",
    }


def save_batches(batches: Sequence[Microbatch], path: Path) -> None:
    """Pickle prepared batches for the loader process (written atomically).

    Parameters
    ----------
    batches
        From :func:`prepare_batches`.
    path
        The file to write.
    """
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        pickle.dump(list(batches), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def load_batches(path: Path) -> list[Microbatch]:
    """Return the batches pickled by :func:`save_batches`.

    Parameters
    ----------
    path
        A file :func:`save_batches` wrote (unpickling runs code: never a foreign file).

    Returns
    -------
    list[Microbatch]
        The batches, in load order.
    """
    with path.open("rb") as f:
        return pickle.load(f)  # noqa: S301 - our own file, written by save_batches


# --- the loader ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchLoad:
    """One committed batch of :func:`run_loader`."""

    partition: int
    start: int
    stop: int
    n_trades: int
    marker_ts_ns: int | None
    committed_wall_ns: int
    load_s: float


@dataclass(frozen=True)
class LoaderReport:
    """What :func:`run_loader` committed and how fast.

    ``seconds`` runs from the first ``load_batch`` call to the return of the last one.
    """

    rows: int
    seconds: float
    rows_per_s: float
    n_batches: int
    load_s_p50: float
    load_s_p99: float
    load_s_max: float
    stopped_by: str
    batches: tuple[BatchLoad, ...]
    cpu_s: float = 0.0
    """CPU seconds of the loading process over ``seconds`` (all its threads)."""

    def to_json(self) -> str:
        """Return the report as JSON."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoaderReport:
        """Return a report written by :meth:`to_json`."""
        d = json.loads(text)
        d["batches"] = tuple(BatchLoad(**b) for b in d["batches"])
        return cls(**d)


def _marker_ts(batch: Microbatch, marker_symbol: str) -> int | None:
    t = batch.trades
    ts = t["timestamp_ns"].to_numpy(dtype=np.int64)
    mine = ts[(t["symbol"] == marker_symbol).to_numpy(dtype=bool)]
    return int(mine.max()) if len(mine) else None


def run_loader(
    path: Path,
    batches: Sequence[Microbatch],
    *,
    duration_s: float | None = None,
    out_json: Path,
    marker_symbol: str = MARKER_SYMBOL,
    quality: bool = True,
    run_id: str = "bench-serve-loader",
) -> LoaderReport:
    """Commit ``batches`` in order with the real exactly-once load, as fast as possible.

    Each batch is one ``load_batch`` transaction (rows and ledger row) on the warehouse as
    the ingest asset opens it (:func:`pipeline.warehouse.open_warehouse`: DuckDB, one
    load thread, 30 s lock timeout). Before the clock starts, each batch is validated by
    the ingest gates as the asset does, so that its verdict is stored with it; the timed
    loop calls only ``load_batch``. No sleeps.

    Parameters
    ----------
    path
        The warehouse (a copy: it grows).
    batches
        From :func:`prepare_batches`, continuing this warehouse's ledger.
    duration_s
        Stop starting batches after this many seconds (None: load them all).
    out_json
        Where the report is written.
    marker_symbol
        The marker of :func:`prepare_batches` (its newest time per batch is recorded).
    quality
        Store the ingest gates' verdict with each batch (as the asset does).
    run_id
        Prefix of the ledger rows' run ids.

    Returns
    -------
    LoaderReport
        Rows, seconds, rows/s and one record per committed batch.

    Raises
    ------
    ValueError
        If the first batch does not start where the warehouse's ledger ends.
    """
    from pipeline.quality import validate_batch
    from pipeline.warehouse import open_warehouse

    wh = open_warehouse(f"duckdb:///{Path(path).absolute()}")
    if batches:
        first = batches[0].range
        have = wh.next_offset(first.topic, first.partition)
        if (have or 0) != first.start:
            raise ValueError(
                f"the batches start at {first}, the ledger of {path} ends at {have}: "
                "prepare them from this warehouse (or a fresh copy of it)"
            )
    verdicts: list[QualityVerdict | None] = [
        validate_batch(b).verdict() if quality else None for b in batches
    ]
    markers = [_marker_ts(b, marker_symbol) for b in batches]
    loads: list[BatchLoad] = []
    rows = 0
    stopped_by = "batches"
    t_start = time.perf_counter()
    cpu0 = time.process_time()
    t_end = t_start
    for i, batch in enumerate(batches):
        if duration_s is not None and time.perf_counter() - t_start >= duration_s:
            stopped_by = "duration"
            break
        t0 = time.perf_counter()
        loaded = wh.load_batch(
            batch,
            expected_start=batch.range.start,
            run_id=f"{run_id}-{i}",
            quality=verdicts[i],
        )
        committed_wall_ns = time.time_ns()
        t_end = time.perf_counter()
        rows += loaded.n_trades
        loads.append(
            BatchLoad(
                partition=batch.range.partition,
                start=batch.range.start,
                stop=batch.range.stop,
                n_trades=loaded.n_trades,
                marker_ts_ns=markers[i],
                committed_wall_ns=committed_wall_ns,
                load_s=round(t_end - t0, 6),
            )
        )
    seconds = t_end - t_start
    load_s = [b.load_s for b in loads]
    report = LoaderReport(
        rows=rows,
        seconds=round(seconds, 6),
        rows_per_s=round(rows / seconds, 1) if seconds > 0 else 0.0,
        n_batches=len(loads),
        load_s_p50=sample_quantile(load_s, 0.5),
        load_s_p99=sample_quantile(load_s, 0.99),
        load_s_max=max(load_s) if load_s else float("nan"),
        stopped_by=stopped_by,
        batches=tuple(loads),
        cpu_s=round(time.process_time() - cpu0, 3),
    )
    tmp = out_json.with_name(out_json.name + ".tmp")
    tmp.write_text(report.to_json())
    os.replace(tmp, out_json)
    return report


# --- entry point ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``build``, ``prepare`` or ``load`` (``python -m pipeline.bench.serve_data``).

    Parameters
    ----------
    argv
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench.serve_data")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build (or reuse) a cached serve warehouse")
    b.add_argument("--cache-dir", type=Path, default=Path("var/bench/serve"))
    b.add_argument("--days", type=int, default=20)
    b.add_argument("--symbols", type=int, default=25)
    p = sub.add_parser("prepare", help="shape microbatches of later sessions and pickle them")
    p.add_argument("--warehouse", type=Path, required=True)
    p.add_argument("--n-batches", type=int, required=True)
    p.add_argument("--batch-records", type=int, default=20_000)
    p.add_argument("--day-offset", type=int, default=0)
    p.add_argument("--marker", default=MARKER_SYMBOL)
    p.add_argument("--out", type=Path, required=True)
    ld = sub.add_parser("load", help="commit pickled batches as fast as possible")
    ld.add_argument("--warehouse", type=Path, required=True)
    ld.add_argument("--batches", type=Path, required=True, help="a file of save_batches")
    ld.add_argument("--duration", type=float, default=None, help="seconds (default: all)")
    ld.add_argument("--marker", default=MARKER_SYMBOL)
    ld.add_argument("--no-quality", action="store_true", help="store no gate verdicts")
    ld.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    def note(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.command == "build":
        facts = cached_serve_warehouse(
            args.cache_dir, n_days=args.days, n_symbols=args.symbols, progress=note
        )
        print(facts.to_json())
    elif args.command == "prepare":
        t0 = time.perf_counter()
        batches = prepare_batches(
            args.warehouse,
            n_batches=args.n_batches,
            batch_records=args.batch_records,
            day_offset=args.day_offset,
            marker_symbol=args.marker,
        )
        save_batches(batches, args.out)
        note(f"{len(batches)} batches in {time.perf_counter() - t0:.1f} s -> {args.out}")
    else:
        report = run_loader(
            args.warehouse,
            load_batches(args.batches),
            duration_s=args.duration,
            out_json=args.out,
            marker_symbol=args.marker,
            quality=not args.no_quality,
        )
        note(
            f"{report.rows:,} rows in {report.seconds:.2f} s = {report.rows_per_s:,.0f} rows/s "
            f"({report.n_batches} batches, load p50 {report.load_s_p50 * 1e3:.0f} ms, "
            f"p99 {report.load_s_p99 * 1e3:.0f} ms, stopped by {report.stopped_by})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
