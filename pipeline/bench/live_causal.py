"""Live signal records against the batch on the same trades: mismatches of the causal columns.

``bench live`` counts them on the demo day. Pure functions, small on purpose: the
comparison of issue 17 part 4 (``pipeline/live/reconcile.py``) can replace
:func:`causal_mismatches` without touching the benchmark.

The batch is :func:`udx.kernels.symbol_day` on every trade of a symbol's New York day,
as read from the input topic; it keeps regular-hours prints sorted stably by time. The
live records of that symbol-day are put in the same order (time, then input partition
and offset) and compared row by row on :data:`CAUSAL_COLUMNS`, which the live path
computes exactly as the batch does (docs/live.md): a row mismatches when any of them
differs in nullness or by more than ``rtol`` relative.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.events import Trade

CAUSAL_COLUMNS: tuple[str, ...] = ("log_return", "lee_mykland_stat", "bns_stat")

SymbolDay = tuple[str, str]


def batch_causal(trades: Iterable[Trade]) -> dict[SymbolDay, dict[str, np.ndarray]]:
    """Return the batch's per-print columns of every symbol-day of ``trades``.

    Parameters
    ----------
    trades
        Trades in input (offset) order.

    Returns
    -------
    dict
        ``(symbol, date) -> {column: array}`` with ``timestamp_ns`` and
        :data:`CAUSAL_COLUMNS`, regular-hours prints in the batch's order.
    """
    from udx.kernels import local_date, symbol_day

    groups: dict[SymbolDay, list[Trade]] = defaultdict(list)
    for t in trades:
        groups[(t.symbol, local_date(t.sip_timestamp_ns))].append(t)
    out: dict[SymbolDay, dict[str, np.ndarray]] = {}
    for (symbol, date), day in groups.items():
        res = symbol_day(
            np.array([t.sip_timestamp_ns for t in day], dtype=np.int64),
            np.array([t.price for t in day], dtype=np.float64),
            np.array([t.size for t in day], dtype=np.int64),
            date=date,
        )
        out[(symbol, date)] = {
            name: np.asarray(res.trades[name]) for name in ("timestamp_ns", *CAUSAL_COLUMNS)
        }
    return out


def live_in_batch_order(
    records: Iterable[tuple[int, int, Mapping[str, Any]]],
) -> dict[SymbolDay, list[Mapping[str, Any]]]:
    """Group ``signal.v1`` values by symbol-day, each in the batch's order.

    Parameters
    ----------
    records
        ``(input partition, input offset, decoded signal value)``.

    Returns
    -------
    dict
        ``(symbol, date) -> values`` sorted by time, then input partition and offset.
    """
    groups: dict[SymbolDay, list[tuple[int, int, int, Mapping[str, Any]]]] = defaultdict(list)
    for p, o, v in records:
        groups[(str(v["symbol"]), str(v["date"]))].append((int(v["timestamp_ns"]), p, o, v))
    return {k: [v for *_, v in sorted(rows, key=lambda r: r[:3])] for k, rows in groups.items()}


def causal_mismatches(
    live: Sequence[Mapping[str, Any]], batch: Mapping[str, np.ndarray], rtol: float = 1e-12
) -> int:
    """Count the prints of one symbol-day whose causal columns differ from the batch's.

    Parameters
    ----------
    live
        The symbol-day's live values in the batch's order (:func:`live_in_batch_order`).
    batch
        Its batch columns (:func:`batch_causal`).
    rtol
        Relative tolerance (docs/live.md: equal to 1e-12).

    Returns
    -------
    int
        Rows that differ in time or in any of :data:`CAUSAL_COLUMNS`, plus rows present
        on one side only.
    """
    n = min(len(live), len(batch["timestamp_ns"]))
    bad = np.zeros(n, dtype=bool)
    ts = np.array([v["timestamp_ns"] for v in live[:n]], dtype=np.int64)
    bad |= ts != batch["timestamp_ns"][:n]
    for name in CAUSAL_COLUMNS:
        got = np.array([np.nan if v[name] is None else v[name] for v in live[:n]], dtype=float)
        want = np.asarray(batch[name][:n], dtype=float)
        null_got, null_want = np.isnan(got), np.isnan(want)
        with np.errstate(invalid="ignore"):
            far = np.abs(got - want) > rtol * np.abs(want)
        bad |= (null_got != null_want) | (~null_got & ~null_want & far)
    return int(bad.sum()) + abs(len(live) - len(batch["timestamp_ns"]))


def all_causal_mismatches(
    live: Mapping[SymbolDay, Sequence[Mapping[str, Any]]],
    batch: Mapping[SymbolDay, Mapping[str, np.ndarray]],
) -> int:
    """Sum :func:`causal_mismatches` over every symbol-day on either side."""
    empty = {"timestamp_ns": np.empty(0, dtype=np.int64)} | {
        name: np.empty(0) for name in CAUSAL_COLUMNS
    }
    return sum(causal_mismatches(live.get(k, []), batch.get(k, empty)) for k in {*live, *batch})
