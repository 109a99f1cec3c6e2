"""Live signal records against the batch on the same trades, without a warehouse (pure).

``bench live`` counts the causal mismatches of the demo day with the project's own
comparison, :func:`pipeline.live.reconcile.reconcile` (issue 17 part 4: the print itself,
``log_return``, ``lee_mykland_stat`` and ``bns_stat`` on every trade, the intensity z at
each bucket's last print, rel 1e-9; a missing or extra record counts too). ``reconcile``
takes the batch as the warehouse's ``trading_signals`` rows of the day with their input
offsets; :func:`batch_rows` builds the same rows from :func:`udx.kernels.symbol_day` run on
the trades as read back from the input topic, each row carrying the offset of the record
it came from (``SymbolDayResult.index``: the input position of each regular-hours print in
the batch's stable time order), so no loader, warehouse or signals run is needed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import pandas as pd

from pipeline.events import Trade

InputTrade = tuple[int, int, Trade]
"""``(partition, offset, trade)`` of one input record."""


def batch_rows(trades: Iterable[InputTrade]) -> pd.DataFrame:
    """Return the batch's ``trading_signals`` rows of every symbol-day of ``trades``.

    Parameters
    ----------
    trades
        Input trades with their partition and offset, in offset order per partition.

    Returns
    -------
    pandas.DataFrame
        Columns of :data:`pipeline.warehouse.queries.RECONCILE_COLUMNS` except ``run_id``:
        ``symbol``, ``seq`` (position in the symbol-day), the per-print statistics, and
        ``kafka_partition`` / ``kafka_offset`` of the input record of each row.
    """
    from udx.kernels import local_date, symbol_day

    groups: dict[tuple[str, str], list[InputTrade]] = defaultdict(list)
    for p, o, t in trades:
        groups[(t.symbol, local_date(t.sip_timestamp_ns))].append((p, o, t))
    frames: list[pd.DataFrame] = []
    for (symbol, date), day in groups.items():
        res = symbol_day(
            np.array([t.sip_timestamp_ns for _, _, t in day], dtype=np.int64),
            np.array([t.price for _, _, t in day], dtype=np.float64),
            np.array([t.size for _, _, t in day], dtype=np.int64),
            date=date,
        )
        rows = pd.DataFrame(dict(res.trades))
        rows.insert(0, "symbol", symbol)
        rows.insert(1, "seq", np.arange(len(rows), dtype=np.int64))
        rows["kafka_partition"] = np.array([day[i][0] for i in res.index], dtype=np.int64)
        rows["kafka_offset"] = np.array([day[i][1] for i in res.index], dtype=np.int64)
        frames.append(rows)
    if not frames:
        return pd.DataFrame(columns=["symbol", "seq", "timestamp_ns", "kafka_partition"])
    return pd.concat(frames, ignore_index=True)
