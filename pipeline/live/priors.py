"""The live path's priors from the warehouse: each symbol's previous fitted day.

For a symbol-day ``(symbol, D)`` the prior day is the symbol's most recent date in
``[D - max_age_days, D)`` with at least one regular-hours return in ``symbol_day_metrics``
(the read ``symbol_day_priors`` of both backends). From its row (:func:`priors_from_row`,
pure):

- ``lm_n`` = its ``n_returns`` (rule ``prior``): the provisional ``n`` of the Lee-Mykland
  threshold for the whole of ``D``;
- GARCH: its fit, in the fit's scaled units, **and its backcast**: the recursion of ``D``
  starts from ``h_0 = e_0^2 =`` the prior day's backcast (the 0.94-EWMA of that day's first
  75 scaled squared returns). The batch starts each day from the backcast of the same day's
  first 75 returns, which is not known at the open; the prior day's is the causal stand-in
  for "variance at the open" (it is an open's variance, not a close's), and it makes the live
  column equal to filtering ``D`` with the prior day's fit exactly as the batch filters its
  own day (:func:`udx.kernels.garch.garch_variance` with that fit);
- ACD: the exponential fit's omega, alpha, beta, its ``psi_1`` and the prior day's diurnal
  curve (migration 0016 stores both).

Whatever is missing (no prior day within the age limit, no fit, days stored before migration
0016, days computed in Vertica by the UDx, a failed read) falls back to the service's
behaviour without priors, per field: ``lm_n_rule = running``, ``garch_params`` /
``acd_params`` null and those columns null. The ``*_params`` fields name the row used.

Cost. :class:`WarehousePriors` reads the warehouse once per New York date (all symbols' prior
rows in one short read-only statement, then closes it: a DuckDB loader is never held up
longer than that read), keeps the rows of the two newest dates and builds each symbol-day's
:class:`~pipeline.live.state.Priors` once; a failed read is retried no sooner than
``retry_s`` later, and the symbol-days started meanwhile keep their fallback.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from pipeline.live.state import NO_PRIORS, AcdPrior, GarchPrior, Priors
from pipeline.signals.fit_state import diurnal_from_json

logger = logging.getLogger(__name__)

DEFAULT_MAX_AGE_DAYS = 14
DEFAULT_RETRY_S = 60.0

PriorRows = Callable[[dt.date, dt.date], pd.DataFrame]
"""``(day, earliest) -> rows`` of the read ``symbol_day_priors``."""


def _float(row: Mapping[str, Any], name: str) -> float | None:
    v = row.get(name)
    if v is None or v is pd.NA:
        return None
    x = float(v)
    return x if math.isfinite(x) else None


def priors_from_row(row: Mapping[str, Any]) -> Priors:
    """Return the priors a prior day's ``symbol_day_metrics`` row gives (pure).

    Parameters
    ----------
    row
        The columns of :data:`pipeline.warehouse.queries.PRIOR_COLUMNS`.

    Returns
    -------
    Priors
        ``lm_n`` from ``n_returns``; GARCH and ACD when every value they need is there.
    """
    day_text = pd.Timestamp(row["date"]).date().isoformat()
    source = f"symbol_day_metrics {row['symbol']} {day_text} run {row['run_id']}"
    n = row.get("n_returns")
    lm_n = int(n) if n is not None and n is not pd.NA else None
    garch = None
    g = [_float(row, c) for c in ("garch_scale", "garch_omega_scaled", "garch_alpha",
                                  "garch_beta", "garch_backcast_scaled")]  # fmt: skip
    if all(v is not None for v in g):
        scale, omega, alpha, beta, backcast = (float(v) for v in g if v is not None)
        if scale > 0.0:
            garch = GarchPrior(scale, omega, alpha, beta, backcast, source)
    acd = None
    a = [_float(row, c) for c in ("acd_exp_omega", "acd_exp_alpha", "acd_exp_beta",
                                  "acd_exp_psi1")]  # fmt: skip
    curve = row.get("acd_diurnal")
    if all(v is not None for v in a) and isinstance(curve, str) and curve:
        omega, alpha, beta, psi1 = (float(v) for v in a if v is not None)
        acd = AcdPrior(omega, alpha, beta, psi1, diurnal_from_json(curve), source)
    return Priors(lm_n=lm_n, garch=garch, acd=acd)


class WarehousePriors:
    """A :data:`~pipeline.live.partition.PriorsSource` reading the warehouse once per date.

    Parameters
    ----------
    read
        ``(day, earliest) -> rows`` of ``symbol_day_priors`` (see :func:`warehouse_reader`).
    max_age_days
        A prior day older than this many calendar days is not used.
    retry_s
        After a failed read, the next attempt for that date waits this long.
    clock
        Monotonic seconds (tests).
    """

    def __init__(
        self,
        read: PriorRows,
        *,
        max_age_days: int = DEFAULT_MAX_AGE_DAYS,
        retry_s: float = DEFAULT_RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.max_age_days = max_age_days
        self.retry_s = retry_s
        self._clock = clock
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}  # date -> symbol -> row
        self._failed_at: dict[str, float] = {}
        self._priors: dict[tuple[str, str], Priors] = {}
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def __call__(self, symbol: str, date: str) -> Priors:
        """Return the priors of ``(symbol, date)`` (``date`` is ``YYYY-MM-DD``)."""
        with self._lock:
            key = (symbol, date)
            cached = self._priors.get(key)
            if cached is not None:
                return cached
            rows = self._rows_of(date)
            if rows is None:
                self.counts["symbol_days_without_prior:read_failed"] += 1
                return NO_PRIORS  # not cached: a later symbol-day may read again
            row = rows.get(symbol)
            if row is None:
                self.counts["symbol_days_without_prior:no_prior_day"] += 1
                priors = NO_PRIORS
            else:
                try:
                    priors = priors_from_row(row)
                except Exception as e:  # a malformed stored row must not stop the service
                    logger.warning("priors of %s %s unusable: %s", symbol, date, e)
                    self.counts["symbol_days_without_prior:bad_row"] += 1
                    priors = NO_PRIORS
                else:
                    self.counts["symbol_days_with_prior"] += 1
                    self.counts["with_garch" if priors.garch else "without_garch"] += 1
                    self.counts["with_acd" if priors.acd else "without_acd"] += 1
            self._priors[key] = priors
            return priors

    def _rows_of(self, date: str) -> dict[str, dict[str, Any]] | None:
        rows = self._rows.get(date)
        if rows is not None:
            return rows
        failed = self._failed_at.get(date)
        if failed is not None and self._clock() - failed < self.retry_s:
            return None
        day = dt.date.fromisoformat(date)
        earliest = day - dt.timedelta(days=self.max_age_days)
        t0 = time.perf_counter()
        try:
            frame = self._read(day, earliest)
        except Exception as e:  # the live path goes on without priors; the records say so
            self._failed_at[date] = self._clock()
            self.counts["reads_failed"] += 1
            logger.warning("priors of %s unavailable (%s); retry in %g s", date, e, self.retry_s)
            return None
        self.counts["reads"] += 1
        rows = {str(r["symbol"]): r for r in frame.to_dict("records")}
        logger.info(
            "priors of %s: %d symbols read in %.3f s", date, len(rows), time.perf_counter() - t0
        )
        self._failed_at.pop(date, None)
        self._rows[date] = rows
        # Keep the two newest dates (a partition may still finish yesterday while another
        # starts today); older rows and priors are dropped.
        for old in sorted(self._rows)[:-2]:
            del self._rows[old]
        keep = set(self._rows)
        self._priors = {k: v for k, v in self._priors.items() if k[1] in keep}
        return rows


def warehouse_reader(url: str, *, lock_timeout_s: float = 10.0) -> PriorRows:
    """Return a :data:`PriorRows` that opens the warehouse read-only for each read.

    Parameters
    ----------
    url
        The warehouse URL (``duckdb:///...`` or ``vertica://...``).
    lock_timeout_s
        DuckDB: how long a read waits for a writer's transaction before it fails.

    Returns
    -------
    callable
        ``(day, earliest) -> rows``; each call opens, reads and closes (DuckDB allows one
        writing process: a short read-only connection only ever waits for one transaction).
    """
    from pipeline.warehouse import open_warehouse

    def read(day: dt.date, earliest: dt.date) -> pd.DataFrame:
        wh = open_warehouse(url, read_only=True, lock_timeout_s=lock_timeout_s)
        return wh.query_frame("symbol_day_priors", (day, earliest))

    return read
