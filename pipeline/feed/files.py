"""Read trade files into :class:`~pipeline.events.Trade` events (replay server, ``load-file``).

Two layouts, told apart by the header (``.gz`` is decompressed on the fly):

**Plain trades CSV** (like ``pipeline/data/sample/trades_XXX_2018-01-02_03.csv.gz``):
``timestamp_ns,symbol,price,size`` then optionally ``exchange`` (a TAQ letter or a
Polygon id), ``conditions`` (TAQ letters such as ``"F I"``, or Polygon codes such as
``"14,37"``), ``corr``, ``tape`` (1-3 or A-C), ``trade_id``, ``sequence_number``.
TAQ letters are translated by :mod:`pipeline.feed.taq`; unmapped letters are counted
in :class:`FileStats`.

**Polygon/Massive flat file** ``us_stocks_sip/trades_v1``:
``ticker,conditions,correction,exchange,id,participant_timestamp,price,sequence_number,
sip_timestamp,size,tape,trf_id,trf_timestamp`` with ns timestamps; ``conditions`` is a
quoted comma list or empty; ``trf_id``/``trf_timestamp`` are 0 or empty on exchange prints
(read as None); a fractional ``size`` cannot be a :class:`Trade` and is rejected.

**Synthesized keys.** A plain CSV without ``sequence_number`` gets one per
(symbol, New York trading date), counting from 1 in file order, the way the SIP numbers
a symbol's prints within a day. Without ``trade_id`` each print gets the decimal count of
its (symbol, New York date, exchange) in file order, from 1: ids are unique per ticker
and exchange like the provider's, so the dedup key ``(symbol, trade_date, exchange,
trf_id, trade_id)`` is unique, and the same file always yields the same ids.

Rows that cannot be read (bad number, missing column) become :class:`Reject` events with
stage ``file``, a reason naming the line, and the row re-joined with commas as ``raw``.
Value checks (positive price and size) are left to
:func:`pipeline.feed.parse.validate_trade`, so the replay server can send such prints to
the streamer as they are.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from pipeline.errors import DataError
from pipeline.events import Reject, Trade
from pipeline.feed import taq
from pipeline.feed.parse import MISSING_FIELD, MISTYPED_FIELD
from pipeline.nytime import NEW_YORK

STAGE = "file"
PLAIN_REQUIRED = ("timestamp_ns", "symbol", "price", "size")
FLAT_FILE_COLUMNS = (
    "ticker",
    "conditions",
    "correction",
    "exchange",
    "id",
    "participant_timestamp",
    "price",
    "sequence_number",
    "sip_timestamp",
    "size",
    "tape",
    "trf_id",
    "trf_timestamp",
)
FileFormat = Literal["plain", "flatfile"]
_NS_PER_HOUR = 3_600_000_000_000
_TAPES = {"A": 1, "B": 2, "C": 3, "1": 1, "2": 2, "3": 3}


@dataclass
class FileStats:
    """What a file read produced, for the command's summary."""

    format: str = ""
    rows: int = 0
    trades: int = 0
    rejects: Counter[str] = field(default_factory=lambda: Counter[str]())
    unmapped_exchanges: Counter[str] = field(default_factory=lambda: Counter[str]())
    unmapped_conditions: Counter[str] = field(default_factory=lambda: Counter[str]())
    synthesized_sequence: bool = False
    synthesized_trade_id: bool = False


class _NyDate:
    """New York calendar date of a UTC ns stamp, cached per UTC hour (DST moves on the hour)."""

    def __init__(self) -> None:
        self._cache: dict[int, date] = {}

    def __call__(self, ts_ns: int) -> date:
        hour = ts_ns // _NS_PER_HOUR
        d = self._cache.get(hour)
        if d is None:
            d = datetime.fromtimestamp(hour * 3600, tz=UTC).astimezone(NEW_YORK).date()
            self._cache[hour] = d
        return d


def _open_text(path: Path) -> io.TextIOBase:
    with path.open("rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return io.TextIOWrapper(path.open("rb"), encoding="utf-8", newline="")


def detect_format(header: list[str]) -> FileFormat:
    """Return the layout named by a CSV header.

    Parameters
    ----------
    header
        Column names of the first line.

    Returns
    -------
    str
        ``"flatfile"`` or ``"plain"``.

    Raises
    ------
    DataError
        If the header matches neither layout.
    """
    cols = [c.strip() for c in header]
    if all(c in cols for c in ("ticker", "sip_timestamp", "price", "size", "exchange")):
        return "flatfile"
    if all(c in cols for c in PLAIN_REQUIRED):
        return "plain"
    raise DataError(
        f"header {cols!r} is neither a plain trades CSV ({','.join(PLAIN_REQUIRED)}[,...]) "
        f"nor a Polygon trades_v1 flat file ({','.join(FLAT_FILE_COLUMNS)})"
    )


def _opt_int(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    value = int(float(text)) if "." in text or "e" in text.lower() else int(text)
    return value or None


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.replace(" ", ",").split(",") if p.strip())


def read_trades(
    path: Path, *, default_tape: int | None = None, stats: FileStats | None = None
) -> Iterator[Trade | Reject]:
    """Yield one :class:`Trade` (or :class:`Reject`) per data row of a trades file, in file order.

    Parameters
    ----------
    path
        A plain trades CSV or a Polygon ``trades_v1`` flat file, optionally gzipped.
    default_tape
        Tape for rows without one (plain CSVs have no listing venue).
    stats
        Filled while reading (format, counts, unmapped TAQ letters).

    Yields
    ------
    Trade | Reject
        Trades with ``source="file"``; rejects for unreadable rows.

    Raises
    ------
    DataError
        If the file is missing, empty or has an unknown header.
    """
    st = stats if stats is not None else FileStats()
    if not path.is_file():
        raise DataError(f"trades file {path} does not exist")
    with _open_text(path) as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            raise DataError(f"trades file {path} is empty")
        fmt = detect_format(header)
        st.format = fmt
        cols = {name.strip(): k for k, name in enumerate(header)}
        rows = (
            _flat_rows(reader, cols, st)
            if fmt == "flatfile"
            else _plain_rows(reader, cols, st, default_tape)
        )
        yield from rows


def _reject(st: FileStats, code: str, line: int, detail: str, row: list[str]) -> Reject:
    st.rejects[code] += 1
    return Reject(STAGE, f"{code}: line {line} {detail}", ",".join(row).encode())


def _plain_rows(
    reader: Iterator[list[str]], cols: dict[str, int], st: FileStats, default_tape: int | None
) -> Iterator[Trade | Reject]:
    i_ts, i_sym, i_px, i_sz = (cols[c] for c in PLAIN_REQUIRED)
    i_ex = cols.get("exchange")
    i_cond = cols.get("conditions")
    i_tape = cols.get("tape")
    i_id = cols.get("trade_id")
    i_seq = cols.get("sequence_number")
    st.synthesized_sequence = i_seq is None
    st.synthesized_trade_id = i_id is None
    width = max(cols.values()) + 1
    ny_date = _NyDate()
    seq_counter: Counter[tuple[str, date]] = Counter()
    id_counter: Counter[tuple[str, date, int]] = Counter()
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        st.rows += 1
        if len(row) < width:
            yield _reject(st, MISSING_FIELD, line, f"has {len(row)} columns, expected {width}", row)
            continue
        try:
            ts = int(row[i_ts])
            price = float(row[i_px])
            size_f = float(row[i_sz])
        except ValueError as e:
            yield _reject(st, MISTYPED_FIELD, line, f"has a bad number: {e}", row)
            continue
        if not size_f.is_integer():
            yield _reject(
                st, MISTYPED_FIELD, line, f"size {row[i_sz]!r} is not a whole number", row
            )
            continue
        symbol = row[i_sym].strip().upper()
        exchange = taq.UNKNOWN_EXCHANGE
        if i_ex is not None:
            raw_ex = row[i_ex].strip()
            if raw_ex.isdigit():
                exchange = int(raw_ex)
            else:
                mapped = taq.map_exchange(raw_ex)
                if mapped is None:
                    st.unmapped_exchanges[raw_ex] += 1
                else:
                    exchange = mapped
        conditions: tuple[int, ...] = ()
        if i_cond is not None:
            raw_c = row[i_cond]
            bare = raw_c.strip()
            # Polygon codes are comma lists ("14,37") or one multi-digit number ("37");
            # TAQ letters are single characters, digits included ("4 B", "7").
            if ("," in bare and bare.replace(",", "").replace(" ", "").isdigit()) or (
                bare.isdigit() and len(bare) > 1
            ):
                conditions = _int_list(bare)
            else:
                conditions, unmapped = taq.map_conditions(raw_c)
                for ch in unmapped:
                    st.unmapped_conditions[ch] += 1
        tape = default_tape
        if i_tape is not None and row[i_tape].strip():
            tape = _TAPES.get(row[i_tape].strip().upper(), default_tape)
        day = ny_date(ts)
        if i_seq is not None and row[i_seq].strip():
            seq: int | None = int(row[i_seq])
        else:
            seq_counter[(symbol, day)] += 1
            seq = seq_counter[(symbol, day)]
        if i_id is not None and row[i_id].strip():
            trade_id = row[i_id].strip()
        else:
            id_counter[(symbol, day, exchange)] += 1
            trade_id = str(id_counter[(symbol, day, exchange)])
        st.trades += 1
        yield Trade(
            symbol=symbol,
            sip_timestamp_ns=ts,
            price=price,
            size=int(size_f),
            exchange=exchange,
            trade_id=trade_id,
            tape=tape,
            conditions=conditions,
            sequence_number=seq,
            source="file",
        )


def _flat_rows(
    reader: Iterator[list[str]], cols: dict[str, int], st: FileStats
) -> Iterator[Trade | Reject]:
    missing = [
        c for c in ("ticker", "sip_timestamp", "price", "size", "exchange", "id") if c not in cols
    ]
    if missing:
        raise DataError(f"flat file lacks columns {missing}")
    i_sym, i_ts, i_px, i_sz, i_ex, i_id = (
        cols[c] for c in ("ticker", "sip_timestamp", "price", "size", "exchange", "id")
    )
    i_cond = cols.get("conditions")
    i_seq = cols.get("sequence_number")
    i_tape = cols.get("tape")
    i_trf = cols.get("trf_id")
    i_trft = cols.get("trf_timestamp")
    width = max(cols.values()) + 1
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        st.rows += 1
        if len(row) < width:
            yield _reject(st, MISSING_FIELD, line, f"has {len(row)} columns, expected {width}", row)
            continue
        try:
            ts = int(row[i_ts])
            price = float(row[i_px])
            size_f = float(row[i_sz])
            exchange = int(row[i_ex])
            conditions = _int_list(row[i_cond]) if i_cond is not None else ()
            seq = _opt_int(row[i_seq]) if i_seq is not None else None
            tape = _opt_int(row[i_tape]) if i_tape is not None else None
            trf_id = _opt_int(row[i_trf]) if i_trf is not None else None
            trf_ts = _opt_int(row[i_trft]) if i_trft is not None else None
        except ValueError as e:
            yield _reject(st, MISTYPED_FIELD, line, f"has a bad number: {e}", row)
            continue
        if not size_f.is_integer():
            yield _reject(st, MISTYPED_FIELD, line, f"size {row[i_sz]!r} is fractional", row)
            continue
        # sequence_number 0 is a real value in flat files; _opt_int maps 0 to None, undo that.
        if i_seq is not None and row[i_seq].strip() in ("0", "0.0"):
            seq = 0
        st.trades += 1
        yield Trade(
            symbol=row[i_sym].strip(),
            sip_timestamp_ns=ts,
            price=price,
            size=int(size_f),
            exchange=exchange,
            trade_id=row[i_id].strip(),
            tape=tape,
            conditions=conditions,
            sequence_number=seq,
            trf_id=trf_id,
            trf_timestamp_ns=trf_ts,
            source="file",
        )
