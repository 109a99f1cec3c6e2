"""What a published signals day was computed from: the ``signal_runs`` row (pure).

Kept beside the warehouse because it describes the rows :meth:`Warehouse.publish_signals`
stores: the input offset range per Kafka partition (and per symbol, for
``symbol_day_metrics.input_offsets``), a content hash of the published rows (equal hashes
mean a bit-identical replay), and whether the day was final when computed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from pandas.util import hash_pandas_object

from pipeline.warehouse import queries as q
from pipeline.warehouse.base import SignalRun, SignalTables
from pipeline.warehouse.finality import DEFAULT_FINAL_GRACE_NS, is_final


def params_json(params: Mapping[str, object]) -> str:
    """Return the kernel parameters as stored in ``signal_runs.params`` (sorted keys)."""
    return json.dumps(dict(params), sort_keys=True)


def _offsets_json(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "{}"
    parts = frame["kafka_partition"].to_numpy(dtype=np.int64)
    offsets = frame["kafka_offset"].to_numpy(dtype=np.int64)
    out: dict[str, list[int]] = {}
    for p in np.unique(parts):
        sel = offsets[parts == p]
        out[str(int(p))] = [int(sel.min()), int(sel.max())]
    return json.dumps(out)


def input_offsets(trades: pd.DataFrame) -> tuple[str, dict[str, str]]:
    """Return the offset range read, for the day and per symbol.

    Parameters
    ----------
    trades
        The day's input trades with ``symbol``, ``kafka_partition`` and ``kafka_offset``.

    Returns
    -------
    tuple[str, dict[str, str]]
        JSON ``{partition: [first_offset, last_offset]}`` of all trades, and the same per symbol.
    """
    per_symbol = {str(s): _offsets_json(g) for s, g in trades.groupby("symbol", sort=True)}
    return _offsets_json(trades), per_symbol


def content_hash(frames: SignalTables) -> str:
    """Return a SHA-256 over the contract columns of the three frames, in a fixed order.

    Parameters
    ----------
    frames
        The computed frames.

    Returns
    -------
    str
        Hex digest; identical inputs and kernels give identical digests.
    """
    h = hashlib.sha256()
    for frame, columns in (
        (frames.trade_signals, q.TRADING_SIGNALS_COLUMNS),
        (frames.symbol_day_metrics, q.SYMBOL_DAY_METRICS_COLUMNS),
        (frames.intensity_buckets, q.TRADE_INTENSITY_COLUMNS),
    ):
        present = [c for c in columns if c in frame.columns]
        h.update(",".join(present).encode())
        if len(frame):
            hashed = hash_pandas_object(frame[present], index=False)  # pyright: ignore[reportCallIssue]
            h.update(hashed.to_numpy().tobytes())
    return h.hexdigest()


def build_signal_run(
    *,
    run_id: str,
    day: date,
    trades: pd.DataFrame,
    frames: SignalTables,
    kernel_version: str,
    params: Mapping[str, Any],
    computed_ns: int,
    session_close_ns: int,
    ingested_through_ns: int | None,
    ledger_ends_json: str | None = None,
    grace_ns: int = DEFAULT_FINAL_GRACE_NS,
    quality_passed: bool | None = None,
    quality_summary_json: str | None = None,
) -> SignalRun:
    """Describe one signals computation of ``day`` as a ``signal_runs`` row.

    Parameters
    ----------
    run_id
        The Dagster run (or command) id.
    day
        The trading day.
    trades
        The input trades (what was read).
    frames
        What was computed.
    kernel_version, params
        ``udx.kernels.KERNEL_VERSION`` and ``Params.to_dict()``.
    computed_ns
        When it was computed (UTC epoch ns).
    session_close_ns
        The day's close (13:00 on half days).
    ingested_through_ns
        What every partition was loaded through when the day was read
        (:func:`pipeline.warehouse.finality.ingested_through`).
    ledger_ends_json
        The ledger ends of that read (:meth:`LedgerFrontier.ends_json`), by which a later
        batch tells the run went stale.
    grace_ns
        How far past the close ingest must be for the day to be final.
    quality_passed, quality_summary_json
        The signal suite's verdict.

    Returns
    -------
    SignalRun
        The row, with per-symbol input offsets for ``symbol_day_metrics``.
    """
    day_offsets, per_symbol = input_offsets(trades)
    final = is_final(session_close_ns, ingested_through_ns, grace_ns)
    return SignalRun(
        run_id=run_id,
        day=day,
        n_symbols=len(frames.symbol_day_metrics["symbol"].unique()),
        n_trades=len(frames.trade_signals),
        n_buckets=len(frames.intensity_buckets),
        kernel_version=kernel_version,
        params_json=params_json(params),
        input_offsets_json=day_offsets,
        content_hash=content_hash(frames),
        final=final,
        computed_ns=computed_ns,
        ingested_through_ns=ingested_through_ns,
        ledger_ends_json=ledger_ends_json,
        quality_passed=quality_passed,
        quality_summary_json=quality_summary_json,
        symbol_input_offsets=per_symbol,
    )
