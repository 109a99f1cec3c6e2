"""Priors from stored rows (pure) and the per-date cache of ``WarehousePriors``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataError, WarehouseError
from pipeline.live.priors import WarehousePriors, priors_from_row
from pipeline.live.state import NO_PRIORS
from pipeline.signals.fit_state import diurnal_from_json, diurnal_to_json
from udx.kernels.acd import Diurnal

CURVE = Diurnal(
    np.array([35100.0, 36900.0, 38700.0]),
    np.array([2.5, 4.0 / 3.0, 0.1 + 0.2]),
    np.array([0.0, -1.234567890123e-7, 0.0]),
    -1e-4,
    3e-5,
    0.0025,
)


def _row(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "symbol": "XXX",
        "date": pd.Timestamp("2018-01-02"),
        "n_returns": 39_000,
        "garch_scale": 10_000.0,
        "garch_omega_scaled": 0.01,
        "garch_alpha": 0.05,
        "garch_beta": 0.9,
        "garch_backcast_scaled": 1.7,
        "acd_exp_omega": 0.02,
        "acd_exp_alpha": 0.1,
        "acd_exp_beta": 0.85,
        "acd_exp_psi1": 0.99,
        "acd_diurnal": diurnal_to_json(CURVE),
        "run_id": "r1",
    }
    row.update(over)
    return row


def test_a_stored_diurnal_curve_reads_back_bit_for_bit() -> None:
    back = diurnal_from_json(diurnal_to_json(CURVE))
    for name in ("knots_s", "knot_means_s", "second_derivs"):
        assert getattr(back, name).tobytes() == getattr(CURVE, name).tobytes()
    assert (back.slope_left, back.slope_right, back.floor) == (-1e-4, 3e-5, 0.0025)
    with pytest.raises(DataError, match="not a diurnal curve"):
        diurnal_from_json('{"knots_s": [1.0]}')


def test_a_full_row_gives_n_garch_and_acd_with_their_source() -> None:
    p = priors_from_row(_row())
    assert p.lm_n == 39_000
    assert p.garch is not None
    assert p.acd is not None
    assert (p.garch.scale, p.garch.omega_scaled, p.garch.backcast_scaled) == (1e4, 0.01, 1.7)
    assert (p.acd.psi1, p.acd.diurnal.floor) == (0.99, 0.0025)
    assert p.garch.source == "symbol_day_metrics XXX 2018-01-02 run r1"


@pytest.mark.parametrize(
    ("over", "garch", "acd"),
    [
        ({"garch_backcast_scaled": float("nan")}, False, True),  # stored before migration 0016
        ({"garch_alpha": None}, False, True),  # no GARCH fit
        ({"acd_diurnal": None}, True, False),  # computed by the Vertica UDx
        ({"acd_exp_psi1": float("nan")}, True, False),
    ],
)
def test_what_a_row_lacks_is_left_out_field_by_field(
    over: dict[str, Any], garch: bool, acd: bool
) -> None:
    p = priors_from_row(_row(**over))
    assert p.lm_n == 39_000
    assert (p.garch is not None, p.acd is not None) == (garch, acd)


class _Reads:
    def __init__(self, frames: list[pd.DataFrame | Exception]) -> None:
        self.frames = frames
        self.calls: list[tuple[dt.date, dt.date]] = []

    def __call__(self, day: dt.date, earliest: dt.date) -> pd.DataFrame:
        self.calls.append((day, earliest))
        got = self.frames.pop(0)
        if isinstance(got, Exception):
            raise got
        return got


def test_one_read_per_date_and_one_priors_object_per_symbol_day() -> None:
    reads = _Reads([pd.DataFrame([_row(), _row(symbol="YYY", garch_alpha=None)])])
    source = WarehousePriors(reads, max_age_days=7)
    a = source("XXX", "2018-01-03")
    assert source("XXX", "2018-01-03") is a
    assert source("YYY", "2018-01-03").garch is None
    assert source("ZZZ", "2018-01-03") is NO_PRIORS
    assert reads.calls == [(dt.date(2018, 1, 3), dt.date(2017, 12, 27))]
    assert source.counts["reads"] == 1
    assert source.counts["symbol_days_without_prior:no_prior_day"] == 1


def test_a_failed_read_falls_back_and_is_retried_after_the_wait() -> None:
    now = [0.0]
    reads = _Reads([WarehouseError("locked"), pd.DataFrame([_row()])])
    source = WarehousePriors(reads, retry_s=60.0, clock=lambda: now[0])
    assert source("XXX", "2018-01-03") is NO_PRIORS
    now[0] = 30.0
    assert source("XXY", "2018-01-03") is NO_PRIORS  # within the wait: no new read
    assert len(reads.calls) == 1
    now[0] = 61.0
    assert source("XXX", "2018-01-03").garch is not None
    assert len(reads.calls) == 2
    assert source.counts["reads_failed"] == 1


def test_the_vertica_statement_picks_the_rows_duckdb_picks(tmp_path) -> None:
    # The Vertica read (ROW_NUMBER in a subquery, named values) is standard SQL that DuckDB
    # runs too: on the same rows it must choose what DuckDB's QUALIFY chooses.
    from pipeline.warehouse import open_warehouse
    from pipeline.warehouse import queries as q
    from pipeline.warehouse import vertica_backend as vb

    wh = open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    wh.migrate()
    rows = [  # symbol, date, n_returns
        ("XXX", "2018-01-02", 100),
        ("XXX", "2018-01-03", 200),  # the newest before D
        ("XXX", "2018-01-04", 300),  # D itself: not a prior
        ("AAA", "2017-12-01", 50),  # older than the age limit
        ("BBB", "2018-01-02", 70),
        ("BBB", "2018-01-03", 0),  # no return that day: the day before is the prior
    ]
    with wh.transaction() as s:
        for sym, day, n in rows:
            s.execute(
                "INSERT INTO symbol_day_metrics (symbol, date, n_trades, n_returns, bns_jump, "
                "lm_jump_count, kernel_version, params, input_offsets, run_id, acd_diurnal) "
                "VALUES (?, ?, ?, ?, false, 0, 'k', '{}', '{}', 'r', ?)",
                (sym, day, n + 1, n, diurnal_to_json(CURVE)),
            )
    args = (dt.date(2018, 1, 4), dt.date(2017, 12, 21))
    duck = wh.query_frame("symbol_day_priors", args)
    sql, names = vb.READS["symbol_day_priors"]
    for name in names:
        sql = sql.replace(f":{name}", "?")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
        vert = conn.execute(sql, list(args)).fetch_df()
    assert list(duck.columns) == list(vert.columns) == list(q.PRIOR_COLUMNS)
    picked = [(r["symbol"], str(r["date"])[:10], r["n_returns"]) for r in duck.to_dict("records")]
    assert picked == [("BBB", "2018-01-02", 70), ("XXX", "2018-01-03", 200)]
    pd.testing.assert_frame_equal(duck, vert)
