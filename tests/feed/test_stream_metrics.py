"""The metrics naming rule and cheap histograms; the stream command's REST default."""

from __future__ import annotations

import pytest

from pipeline.commands.stream import rest_base
from pipeline.errors import ConfigError
from pipeline.metrics import FastHistogram, LatencyHistograms, metric_name


def test_metric_names_follow_the_platform_rule() -> None:
    assert metric_name("stream", "receipt_to_ack", "seconds") == (
        "microstructure_stream_receipt_to_ack_seconds"
    )
    for bad in (("", "x", "total"), ("stream", "Events", "total"), ("stream", "a-b", "total")):
        with pytest.raises(ConfigError, match="lower snake case"):
            metric_name(*bad)


def test_a_fast_histogram_counts_in_the_bucket_of_its_upper_bound() -> None:
    h = FastHistogram((0.001, 0.005))
    for ns in (500_000, 1_000_000, 4_000_000, 9_000_000, -5):
        h.observe_ns(ns)
    assert h.counts == [3, 1, 1]
    assert h.count == 5
    assert h.quantile_s(0.5) == 0.001
    assert h.quantile_s(1.0) == float("inf")
    assert FastHistogram().quantile_s(0.5) is None
    with pytest.raises(ConfigError, match="ascending"):
        FastHistogram((0.5, 0.1))


def test_latency_histograms_keep_each_kind_apart_and_count_acks() -> None:
    lat = LatencyHistograms()
    lat.record_ack("trade", 1_000, 2_000, 3_000)
    lat.record_ack("gap", None, 2_000, 9_000)
    lat.observe_sip_to_receipt("quote", 10)
    assert lat.acked == {"trade": 1, "gap": 1}
    assert lat.receipt_to_ack["trade"].sum_ns == 1_000
    assert lat.sip_to_ack["trade"].sum_ns == 2_000
    assert "gap" not in lat.sip_to_ack
    assert lat.sip_to_receipt["quote"].count == 1


def test_rest_defaults_to_the_replay_server_itself_for_a_plain_ws_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MICROSTRUCTURE_REST_URL", raising=False)
    assert rest_base("ws://127.0.0.1:8865", None) == "http://127.0.0.1:8865"
    assert rest_base("wss://socket.massive.com/stocks", None) == "https://api.massive.com"
    assert rest_base("ws://127.0.0.1:8865", "http://x:1") == "http://x:1"
    monkeypatch.setenv("MICROSTRUCTURE_REST_URL", "https://api.polygon.io")
    assert rest_base("ws://127.0.0.1:8865", None) == "https://api.polygon.io"
