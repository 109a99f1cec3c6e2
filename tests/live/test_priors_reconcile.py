"""Priors from a warehouse the real batch path wrote, and the reconciliation of a live day.

Real broker, real DuckDB file, the real batch path: the sample's first 8,000 prints of
2018-01-02 and of 2018-01-03 are produced to Kafka, ``microstructure ingest`` loads them,
``signals run 2018-01-02`` publishes day 1 (with its fit state, migration 0016), then one
``live-signals`` instance reads priors from that warehouse and consumes both days to the end
offsets, then ``signals run 2018-01-03`` publishes day 2. Day 2's live GARCH and ACD columns
must equal filtering day 2 with day 1's fits (computed here independently by the kernels),
its n must be day 1's; day 1 has no prior day and falls back. ``reconcile 2018-01-03`` must
find 0 causal mismatches, and a corrupted, a conflicting or a missing live record must not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from pipeline.cli import main
from pipeline.commands.ingest import run_ingest
from pipeline.commands.reconcile import read_signal_records, reconcile_day
from pipeline.commands.signals import run_signals
from pipeline.live.priors import WarehousePriors, warehouse_reader
from pipeline.live.reconcile import RawRecord, collect_live, reconcile
from pipeline.live.service import LiveConfig, LiveSignalsService, end_offsets
from pipeline.settings import Settings
from pipeline.warehouse import open_warehouse
from tests.assets.support import produce
from tests.support import kafka as kafka_support
from tests.warehouse.factories import sample_trades
from udx.kernels import Params, session_bounds, symbol_day
from udx.kernels.acd import acd_expected, diurnal_phi, tod_seconds
from udx.kernels.garch import garch_variance
from udx.kernels.jumps import lm_threshold_constants

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

DAY1, DAY2 = "2018-01-02", "2018-01-03"
N_PRINTS = 8_000


@dataclass(frozen=True)
class World:
    settings: Settings
    env: dict[str, str]
    raw: list[RawRecord]
    priors_counts: dict[str, int]


@pytest.fixture(scope="module")
def world(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    make_topic, cleanup = kafka_support.topic_factory(kafka_broker, "priors-reconcile")
    tmp: Path = tmp_path_factory.mktemp("priors-reconcile")
    topic, out = make_topic(4), make_topic(4)
    env = {
        "MICROSTRUCTURE_HOME": str(tmp),
        "MICROSTRUCTURE_WAREHOUSE_URL": f"duckdb:///{tmp}/warehouse.duckdb",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker,
        "MICROSTRUCTURE_TOPIC": topic,
        "MICROSTRUCTURE_SIGNALS_TOPIC": out,
    }
    settings = Settings.from_env(env)
    trades = [
        *sample_trades(N_PRINTS, day=date(2018, 1, 2)),
        *sample_trades(N_PRINTS, day=date(2018, 1, 3)),
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DAGSTER_HOME", raising=False)
        produce(kafka_broker, topic, trades)
        assert run_ingest(settings, echo=lambda _: None).trades == len(trades)
        assert run_signals(settings, [DAY1], echo=lambda _: None).failed == []
        config = LiveConfig(kafka_broker, topic, out, group_id=f"g-{topic}", batch_size=500)
        priors = WarehousePriors(warehouse_reader(settings.warehouse_url))
        LiveSignalsService(config, priors).run(until=end_offsets(config), idle_exit_s=120)
        assert run_signals(settings, [DAY2], echo=lambda _: None).failed == []
    try:
        yield World(settings, env, read_signal_records(kafka_broker, out), dict(priors.counts))
    finally:
        cleanup()


def _live(world: World, day: str) -> list[dict[str, Any]]:
    live = collect_live(world.raw, day, world.settings.topic)
    return [live.records[k] for k in sorted(live.records)]  # one symbol: offset = print order


def _rel(a: float, b: float) -> float:
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


def test_day_two_filters_with_day_ones_fits_read_from_the_warehouse(world: World) -> None:
    wh = open_warehouse(world.settings.warehouse_url, read_only=True)
    p = Params()
    day1 = wh.read_day_trades(date(2018, 1, 2))
    fit1 = symbol_day(day1["timestamp_ns"], day1["price"], day1["size"], p, date=DAY1)
    assert fit1.garch is not None
    assert fit1.garch.fitted
    assert fit1.acd is not None
    assert fit1.acd.exp.fitted
    assert fit1.acd.diurnal is not None
    day2 = wh.read_day_trades(date(2018, 1, 3))
    ts2 = day2["timestamp_ns"].to_numpy(dtype=np.int64)
    r2 = symbol_day(ts2, day2["price"], day2["size"], p, date=DAY2).trades["log_return"]
    sigma2, _ = garch_variance(r2, fit1.garch)
    open2, _ = session_bounds(DAY2, p)
    phi = diurnal_phi(fit1.acd.diurnal, tod_seconds(ts2, open2, p.open_s))
    cond, surp, _ = acd_expected(ts2, phi, fit1.acd.exp)
    n1 = int(fit1.metrics["n_returns"])
    c_n, s_n = lm_threshold_constants(n1)

    live = _live(world, DAY2)
    assert len(live) == len(day2) > 5_000
    assert {r["lm_n_rule"] for r in live} == {"prior"}
    assert {r["lm_n"] for r in live} == {n1}
    assert all(r["garch_params"] and r["acd_params"] for r in live)
    assert all(DAY1 in r["garch_params"] for r in live)
    expected = {"garch_sigma2": sigma2, "conditional_duration": cond, "acd_surprise": surp}
    for col, want in expected.items():
        got = np.array([math.nan if r[col] is None else r[col] for r in live])
        assert np.isnan(got).sum() == np.isnan(want).sum() <= 1, col  # the day's first print
        ok = ~np.isnan(want)
        worst = max(_rel(a, b) for a, b in zip(got[ok], want[ok], strict=True))
        assert worst <= 1e-12, (col, worst)
    std = np.array([math.nan if r["standardized_return"] is None else r["standardized_return"]
                    for r in live])  # fmt: skip
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(std, r2 / np.sqrt(sigma2), rtol=1e-12)
    for r in live:
        if r["lee_mykland_stat"] is not None:
            assert _rel(r["lm_xi"], (abs(r["lee_mykland_stat"]) - c_n) / s_n) <= 1e-12
    # One warehouse read per date, not per trade; day 1 had no earlier day in the warehouse.
    assert world.priors_counts["reads"] == 2
    assert world.priors_counts["symbol_days_without_prior:no_prior_day"] == 1
    assert world.priors_counts["symbol_days_with_prior"] == 1


def test_a_symbol_day_without_a_prior_day_falls_back_and_says_so(world: World) -> None:
    live = _live(world, DAY1)
    assert len(live) > 5_000
    assert {r["lm_n_rule"] for r in live} == {"running"}
    assert {r["garch_params"] for r in live} == {None}
    assert {r["acd_params"] for r in live} == {None}
    assert all(r["garch_sigma2"] is None and r["acd_surprise"] is None for r in live)


def test_reconcile_of_day_two_finds_no_causal_mismatch(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = reconcile_day(world.settings, DAY2)
    assert result.causal_mismatches == 0, result.lines()
    assert result.compared == len(_live(world, DAY2))
    assert result.causal["intensity prints compared"] > 30
    # Previous-day fits and n: close, not equal (the columns' reasons, reported).
    assert 0.0 <= result.whole_day["garch_sigma2"]["agree_rate"] < 0.5
    assert result.whole_day["garch_sigma2"]["max_rel_diff"] > 0.0
    assert result.provenance["lm_n_rule"] == {"prior": result.compared}

    for k, v in world.env.items():
        monkeypatch.setenv(k, v)
    assert main(["reconcile", DAY2, "--json"]) == 0
    obj = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert obj["causal_mismatches"] == 0
    assert obj["compared"] == result.compared
    assert main(["reconcile", DAY2]) == 0
    assert "causal mismatches 0" in capsys.readouterr().out


def _batch(world: World) -> Any:
    wh = open_warehouse(world.settings.warehouse_url, read_only=True)
    return wh.query_frame("trading_signals_of_day", (date(2018, 1, 3),))


def test_a_corrupted_live_record_is_a_causal_mismatch(world: World) -> None:
    batch = _batch(world)
    live = collect_live(world.raw, DAY2, world.settings.topic)
    assert reconcile(live, batch, DAY2).causal_mismatches == 0
    key = sorted(live.records)[4_000]
    rec = live.records[key]
    rec["log_return"] = rec["log_return"] * (1.0 + 1e-8)
    result = reconcile(live, batch, DAY2)
    assert result.causal_mismatches == 1
    assert result.causal["log_return"] == 1
    assert result.examples[0]["offset"] == key[1]

    live = collect_live(world.raw, DAY2, world.settings.topic)
    del live.records[sorted(live.records)[10]]
    result = reconcile(live, batch, DAY2)
    assert (result.causal_mismatches, result.missing_live) == (1, 1)


def test_a_duplicate_with_another_value_is_a_causal_mismatch(world: World) -> None:
    batch = _batch(world)
    headers, value = next((h, v) for h, v in world.raw if b'"date":"2018-01-03"' in (v or b""))
    obj = orjson.loads(value or b"")
    bumped = replace_value(obj, "bns_stat", 1.0)
    live = collect_live([*world.raw, (headers, orjson.dumps(bumped))], DAY2, world.settings.topic)
    result = reconcile(live, batch, DAY2)
    assert result.conflicting_duplicates == 1
    assert result.causal_mismatches == 1


def replace_value(obj: dict[str, Any], name: str, value: float) -> dict[str, Any]:
    out = dict(obj)
    out[name] = value if obj[name] is None else obj[name] + value
    return out


def test_a_rerun_until_caught_up_stops_without_records_when_the_group_is_at_the_end(
    world: World,
) -> None:
    s = world.settings
    config = LiveConfig(s.bootstrap_servers, s.topic, s.signals_topic, group_id=f"g-{s.topic}")
    t0 = time.monotonic()
    summary = LiveSignalsService(config).run(until=end_offsets(config), idle_exit_s=120)
    assert time.monotonic() - t0 < 60  # not the idle exit (it waited 120 s before the fix)
    assert summary.counts == {}
    assert summary.restored  # the day's state was rebuilt, and nothing was left to consume
