"""Trade files: the TAQ sample, Polygon flat files, TAQ -> Polygon mapping, synthesized keys."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from pipeline.errors import DataError
from pipeline.events import Reject, Trade
from pipeline.feed.files import FLAT_FILE_COLUMNS, FileStats, read_trades
from pipeline.feed.taq import map_conditions, map_exchange

SAMPLE = (
    Path(__file__).parents[2] / "pipeline" / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
)


def _read(path: Path, **kw: object) -> tuple[list[Trade], list[Reject], FileStats]:
    stats = FileStats()
    items = list(read_trades(path, stats=stats, **kw))  # type: ignore[arg-type]
    return (
        [t for t in items if isinstance(t, Trade)],
        [r for r in items if isinstance(r, Reject)],
        stats,
    )


@pytest.fixture(scope="module")
def sample() -> tuple[list[Trade], list[Reject], FileStats]:
    return _read(SAMPLE, default_tape=1)


def test_taq_letters_map_to_polygon_ids() -> None:
    assert [map_exchange(x) for x in "NPTDKZ"] == [10, 11, 12, 4, 8, 19]
    assert map_exchange("?") is None
    assert map_conditions("F I") == ((14, 37), "")
    assert map_conditions("4 B") == ((10, 4), "")
    assert map_conditions("@") == ((), "")
    assert map_conditions("") == ((), "")
    assert map_conditions("FE") == ((14,), "E")


def test_the_whole_sample_reads_with_every_letter_mapped(
    sample: tuple[list[Trade], list[Reject], FileStats],
) -> None:
    trades, rejects, stats = sample
    assert (stats.format, stats.rows, len(trades), rejects) == ("plain", 77_263, 77_263, [])
    assert not stats.unmapped_exchanges
    assert not stats.unmapped_conditions
    assert Counter(t.exchange for t in trades)[4] == 23_697  # TAQ "D" (FINRA) prints
    assert all(t.source == "file" and t.tape == 1 and t.price > 0 and t.size > 0 for t in trades)
    assert trades[0].conditions == (14, 12, 37)


def test_synthesized_sequence_numbers_count_per_symbol_and_new_york_day(
    sample: tuple[list[Trade], list[Reject], FileStats],
) -> None:
    trades, _, stats = sample
    assert stats.synthesized_sequence
    assert stats.synthesized_trade_id
    day1 = [
        t for t in trades if t.sip_timestamp_ns < 1_514_955_600_000_000_000
    ]  # 2018-01-03 00:00 New York
    day2 = trades[len(day1) :]
    assert [t.sequence_number for t in day1] == list(range(1, len(day1) + 1))
    assert [t.sequence_number for t in day2] == list(range(1, len(day2) + 1))


def test_synthesized_trade_ids_make_the_dedup_key_unique_and_deterministic(
    sample: tuple[list[Trade], list[Reject], FileStats],
) -> None:
    trades, _, _ = sample

    def day2(t: Trade) -> bool:
        return t.sip_timestamp_ns >= 1_514_955_600_000_000_000

    keys = {(t.symbol, day2(t), t.exchange, t.trf_id, t.trade_id) for t in trades}
    assert len(keys) == len(trades)
    again, _, _ = _read(SAMPLE, default_tape=1)
    assert [t.trade_id for t in again[:1000]] == [t.trade_id for t in trades[:1000]]


def test_plain_csv_bad_rows_become_file_rejects_and_values_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "timestamp_ns,symbol,price,size,exchange,conditions\n"
        "1514903400000000000,aaa,10.5,100,N,\n"
        "1514903400000000001,AAA,abc,100,N,\n"
        "1514903400000000002,AAA,10.5\n"
        "1514903400000000003,AAA,-1,100,Q,F\n"
        "1514903400000000004,AAA,10.5,2.5,N,\n"
        "1514903400000000005,AAA,10.5,100,?,14,37\n"
    )
    trades, rejects, stats = _read(path)
    assert [r.reason.split(":")[0] for r in rejects] == [
        "mistyped_field",
        "missing_field",
        "mistyped_field",
    ]
    assert rejects[0].reason.startswith("mistyped_field: line 3 ")
    assert rejects[0].raw == b"1514903400000000001,AAA,abc,100,N,"
    assert [t.price for t in trades] == [10.5, -1.0, 10.5]  # values are checked by validate_trade
    assert trades[0].symbol == "AAA"
    assert trades[2].exchange == 0
    assert stats.unmapped_exchanges == Counter({"?": 1})


def test_plain_csv_accepts_polygon_condition_codes(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        'timestamp_ns,symbol,price,size,exchange,conditions\n1,AAA,1,1,4,"14,37"\n2,AAA,1,1,4,37\n'
    )
    trades, _, _ = _read(path)
    assert [t.conditions for t in trades] == [(14, 37), (37,)]


def test_polygon_flat_file_reads_with_ns_times_and_trf_fields(tmp_path: Path) -> None:
    # The published trades_v1 header; rows shaped like the provider's (exchange print, TRF print).
    path = tmp_path / "2024-01-02.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(",".join(FLAT_FILE_COLUMNS) + "\n")
        f.write('AAPL,"12,37",0,11,1,1704186000005000000,187.5,1001,1704186000010000000,5,3,,\n')
        f.write(
            "AAPL,,0,4,52983525034138,1704207600100000000,187.25,1002,1704207600123456789,100,3,201,1704207600120000000\n"
        )
        f.write("AAPL,,0,4,7,1,187.25,1003,1704207600123456790,0.5,3,0,0\n")
    trades, rejects, stats = _read(path)
    assert stats.format == "flatfile"
    assert trades[0] == Trade(
        "AAPL", 1_704_186_000_010_000_000, 187.5, 5, 11, "1", 3, (12, 37), 1001, source="file"
    )
    assert (trades[1].trf_id, trades[1].trf_timestamp_ns, trades[1].trade_id) == (
        201,
        1_704_207_600_120_000_000,
        "52983525034138",
    )
    assert [r.reason.split(":")[0] for r in rejects] == ["mistyped_field"]
    assert "fractional" in rejects[0].reason


def test_an_unknown_header_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="neither a plain trades CSV"):
        list(read_trades(path))
    with pytest.raises(DataError, match="does not exist"):
        list(read_trades(tmp_path / "missing.csv"))
