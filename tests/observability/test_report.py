"""The report picture: jump markers exactly at the detected prints, PNG and HTML outputs."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import cast

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.resources import QualityResource, WarehouseResource
from assets.signals import signal_tables
from pipeline.cli import main
from pipeline.errors import DataError
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.report import load_from_dir, render_symbol_day, write_report
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from tests.assets.support import kafka_without_broker
from tests.observability.conftest import DAY1, signal_rows
from tests.warehouse.factories import as_records, sample_trades

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_jump_markers_sit_exactly_on_the_detected_prints(compute_dir: Path) -> None:
    data = load_from_dir(compute_dir, "XXX", DAY1.isoformat())
    rendered = render_symbol_day(data)
    assert rendered.png.startswith(PNG_MAGIC)
    assert len(rendered.png) > 50_000
    rows = signal_rows(compute_dir, DAY1)
    for side in ("BUY", "SELL"):
        expected = cast(
            "pd.DataFrame", rows[rows["jump_detected"] & (rows["trading_signal"] == side)]
        )
        ts, price = rendered.markers[side]
        np.testing.assert_array_equal(ts, expected["timestamp_ns"].to_numpy(dtype=np.int64))
        np.testing.assert_array_equal(price, expected["price"].to_numpy(dtype=np.float64))
    n = sum(len(v[0]) for v in rendered.markers.values())
    assert (
        n == int(cast("pd.Series", rows["jump_detected"]).sum()) == 232
    )  # the reference day's flags
    assert "BNS" in rendered.title
    assert "232 Lee-Mykland jumps" in rendered.title
    assert rendered.panels == [
        "price + jumps",
        "GARCH volatility",
        "intensity z-score",
        "ACD surprise",
    ]


def test_html_is_one_self_contained_page(compute_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    rendered = write_report(load_from_dir(compute_dir, "XXX", DAY1.isoformat()), out)
    text = out.read_text()
    m = re.search(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert m is not None
    assert base64.b64decode(m.group(1)) == rendered.png
    assert "http://" not in text
    assert "https://" not in text
    assert text.count("<tr><td>") == 232  # one row per jump


def test_the_command_draws_a_published_day_from_the_warehouse(
    warehouse: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MICROSTRUCTURE_WAREHOUSE_URL", f"duckdb:///{warehouse}")
    out = tmp_path / "aaa.png"
    assert main(["report", "aaa", "2018-01-03", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(PNG_MAGIC)
    printed = capsys.readouterr().out
    assert "AAA 2018-01-03" in printed
    assert str(out) in printed
    assert main(["report", "XXX", "2018-01-02", "--out", str(tmp_path / "r.pdf")]) == 2


def test_an_unknown_symbol_day_says_what_there_is(compute_dir: Path) -> None:
    with pytest.raises(DataError, match=r"no signals for ZZZ on 2018-01-02.*XXX 2018-01-02"):
        load_from_dir(compute_dir, "ZZZ", "2018-01-02")


def test_each_signals_partition_carries_its_picture_in_dagster(duckdb_file: Path) -> None:
    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    records = as_records(sample_trades(day=DAY1))
    wh.load_batch(
        shape_batch(records, OffsetRange("polygon-market-data", 0, 0, len(records))),
        expected_start=0,
        run_id="load",
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [signal_tables],
            partition_key=DAY1.isoformat(),
            resources={
                "warehouse": WarehouseResource(url=f"duckdb:///{duckdb_file}"),
                "quality": QualityResource(),
                "kafka": kafka_without_broker(),
            },
            instance=instance,
        )
    [mat] = [
        m
        for m in result.asset_materializations_for_node("signal_tables")
        if m.asset_key.to_user_string() == "trading_signals"
    ]
    md = mat.metadata["report"]
    assert isinstance(md, dg.MarkdownMetadataValue)
    m = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", md.value)
    assert m is not None
    png = base64.b64decode(m.group(1))
    assert png.startswith(PNG_MAGIC)
    assert mat.metadata["report_png_bytes"].value == len(png)
    assert "XXX 2018-01-02" in md.value
