"""Alert rules, scrape config and the Grafana dashboard, validated without Prometheus.

promtool is not available (a Go binary; no download here), so every rule and dashboard query
is parsed by ``promql-parser`` (a port of the Prometheus parser) and every metric they name
is checked against the metrics the code's collectors actually yield
(tests/observability/metric_names).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from pipeline.commands.metrics_exporter import DAGSTER_STATUSES, DEFAULT_PORT
from pipeline.stages import STAGES
from tests.observability.metric_names import defined_metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = yaml.safe_load((ROOT / "docker/prometheus/rules.yml").read_text())
PROMETHEUS = yaml.safe_load((ROOT / "docker/prometheus/prometheus.yml").read_text())
DASHBOARD = json.loads((ROOT / "docker/grafana/dashboards/microstructure.json").read_text())
COMPOSE = yaml.safe_load((ROOT / "docker/compose.yaml").read_text())
METRIC = re.compile(r"\bmicrostructure_[a-z0-9_]+")


def _rules() -> list[dict[str, Any]]:
    return [r for g in RULES["groups"] for r in g["rules"]]


def _dashboard_exprs() -> list[str]:
    return [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]


def test_every_metric_an_alert_uses_is_defined_by_the_code() -> None:
    used = {m for r in _rules() for m in METRIC.findall(r["expr"])}
    assert used, "no metric found in the rules"
    assert used - defined_metric_names() == set()


def test_every_metric_the_dashboard_queries_is_defined_by_the_code() -> None:
    used = {m for e in _dashboard_exprs() for m in METRIC.findall(e)}
    assert len(used) >= 15
    assert used - defined_metric_names() == set()


def test_stage_and_status_labels_in_rules_and_dashboard_exist() -> None:
    text = "\n".join([r["expr"] for r in _rules()] + _dashboard_exprs())
    stages = set(re.findall(r'stage="(\w+)"', text))
    assert stages <= {s.name for s in STAGES}
    assert set(re.findall(r'status="(\w+)"', text)) <= set(DAGSTER_STATUSES)


def test_the_issue_s_alerts_are_all_there() -> None:
    names = {r["alert"] for r in _rules()}
    assert {
        "RealtimeStageP99Over50ms",
        "ConsumerLagGrowing",
        "GapsNotRepaired",
        "DagsterRunsFailed",
        "DagsterRunsBlocked",
        "SignalsDayBlocked",
        "ThroughputDrop",
    } <= names
    realtime = [r["expr"] for r in _rules() if r["alert"] == "RealtimeStageP99Over50ms"]
    assert all("> 0.05" in e and "histogram_quantile(0.99" in e for e in realtime)
    # Only the stages meant to be real-time are held to 50 ms.
    assert {s.name for s in STAGES if s.realtime} == {"receipt_to_append"}
    assert any("offset 1d" in r["expr"] for r in _rules() if r["alert"] == "ThroughputDrop")
    for r in _rules():
        assert r["labels"]["severity"] in {"page", "warning"}
        assert r["annotations"]["summary"]


# Grafana's built-in interval variables, replaced by what Grafana substitutes before sending.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def _parse_promql(expr: str) -> str:
    """Parse ``expr`` with a port of the Prometheus PromQL parser; raise ValueError if invalid."""
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    return str(promql_parser.parse(expr))


def test_the_promql_check_refuses_what_prometheus_would_refuse() -> None:
    for bad in ("sum(rate(x[5m])", "rate(x)", "x > > 1", "histogram_quantile(0.99 x)", "foo{a=}"):
        with pytest.raises(ValueError, match=r"."):
            _parse_promql(bad)


def test_every_alert_rule_parses_as_promql() -> None:
    for r in _rules():
        _parse_promql(r["expr"])
        if "for" in r:
            assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]


def test_every_dashboard_query_parses_as_promql() -> None:
    exprs = _dashboard_exprs()
    assert exprs
    for expr in exprs:
        _parse_promql(expr)


def test_prometheus_scrapes_each_service_where_compose_serves_metrics() -> None:
    services = COMPOSE["services"]
    jobs = {j["job_name"]: j for j in PROMETHEUS["scrape_configs"]}
    targets = {
        name: j["static_configs"][0]["targets"][0]
        for name, j in jobs.items()
        if name != "prometheus"
    }
    assert set(targets) == {
        "microstructure-stream",
        "microstructure-exporter",
        "microstructure-mcp",
    }
    stream = [str(c) for c in services["streamer"]["command"]]
    assert (
        targets["microstructure-stream"] == f"streamer:{stream[stream.index('--metrics-port') + 1]}"
    )
    exporter = [str(c) for c in services["metrics-exporter"]["command"]]
    assert exporter[0] == "metrics-exporter"
    port = exporter[exporter.index("--port") + 1]
    assert (
        targets["microstructure-exporter"]
        == f"metrics-exporter:{port}"
        == f"metrics-exporter:{DEFAULT_PORT}"
    )
    mcp = [str(c) for c in services["mcp"]["command"]]
    assert targets["microstructure-mcp"] == f"mcp:{mcp[mcp.index('--port') + 1]}"
    assert (
        jobs["microstructure-mcp"]["authorization"]["credentials_file"] == "/run/secrets/mcp_token"
    )
    assert "mcp_token" in services["prometheus"]["secrets"]
    assert PROMETHEUS["rule_files"] == ["/etc/prometheus/rules.yml"]
    mounts = services["prometheus"]["volumes"]
    assert "./prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounts


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard() -> None:
    ds = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    [source] = ds["datasources"]
    assert source["url"] == "http://prometheus:9090"
    uids = {t["datasource"]["uid"] for p in DASHBOARD["panels"] for t in p.get("targets", [])}
    assert uids == {source["uid"]}
    providers = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/dashboards/microstructure.yml").read_text()
    )
    path = providers["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{path}:ro" in COMPOSE["services"]["grafana"]["volumes"]
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
