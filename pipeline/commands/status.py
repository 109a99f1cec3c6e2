"""``microstructure status``: where every trade's time goes, and whether the pipeline is healthy.

Prints, from what is stored and what answers (nothing is estimated):

- per stage of SIP -> receipt -> Kafka append -> warehouse commit -> signal computed,
  p50 and p99 over the trades committed in the last ``--window-s`` of commit time
  (measured from the stamps stored with each trade), plus the live stages the streamer
  (receipt -> Kafka ack) and the MCP server (signal -> served) export, when they answer;
- consumer lag per partition (Kafka high watermark vs the warehouse ledger);
- feed gap seconds per symbol today (and on the newest loaded day);
- the last microbatch and signals runs, their check results, and the Dagster runs.

Every source is optional: a stopped broker, streamer, MCP server or Dagster instance is
said, not fatal.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pipeline.errors import ConfigError, PipelineError
from pipeline.settings import Settings

DEFAULT_STREAM_METRICS = "http://127.0.0.1:9108/metrics"

_LEDGER_PER_PARTITION = (
    "SELECT kafka_partition, max(stop_offset), max(committed_ns), count(*) FROM kafka_offsets "
    "WHERE kafka_topic = ? GROUP BY kafka_partition ORDER BY kafka_partition"
)
_RECENT_BATCHES = (
    "SELECT kafka_topic, kafka_partition, start_offset, stop_offset, n_trades, n_rejects, "
    "n_duplicates, n_gaps, quality_passed, run_id, committed_ns FROM kafka_offsets "
    "ORDER BY committed_ns DESC LIMIT ?"
)
_VERDICTS = "SELECT quality_passed, count(*) FROM kafka_offsets GROUP BY quality_passed"
_FAILED_CHECKS = (
    "SELECT suite, target, expectation, observed, run_id, checked_ns FROM quality_results "
    "WHERE passed = false ORDER BY checked_ns DESC LIMIT ?"
)
_CHECK_COUNTS = "SELECT suite, passed, count(*) FROM quality_results GROUP BY suite, passed"
_RECENT_RUNS = (
    "SELECT run_id, date, n_symbols, n_trades, final, quality_passed, computed_ns "
    "FROM signal_runs ORDER BY computed_ns DESC LIMIT ?"
)
_DAY_GAPS = (
    "SELECT symbol, n_trades, rth_minutes_with_trades, n_gaps, gap_seconds FROM day_completeness "
    "WHERE trade_date = ? ORDER BY gap_seconds DESC, symbol"
)
_NEWEST_DAY = "SELECT max(trade_date) FROM market_data"


def register(sub: Any) -> None:
    """Add the ``status`` subcommand."""
    p = sub.add_parser(
        "status",
        help="per-stage latency p50/p99, consumer lag, gaps today, last runs and checks",
        description=(__doc__ or "").split("\n\n")[1],
    )
    p.add_argument(
        "--window-s",
        type=float,
        default=900.0,
        help="stage latency over trades committed in this many seconds before the newest "
        "commit (default 900)",
    )
    p.add_argument(
        "--stream-metrics",
        default=DEFAULT_STREAM_METRICS,
        help=f"the streamer's /metrics (default {DEFAULT_STREAM_METRICS}; 'off' to skip)",
    )
    p.add_argument(
        "--mcp-metrics",
        default=None,
        help="the MCP server's /metrics (default http://MICROSTRUCTURE_MCP_HOST:PORT/metrics, "
        "token MCP_AUTH_TOKEN; 'off' to skip)",
    )
    p.add_argument("--no-dagster", action="store_true", help="do not read the Dagster instance")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=_main)


@dataclass
class StageRow:
    """One stage of the latency table."""

    stage: str
    title: str
    source: str  # warehouse stamps | streamer /metrics | MCP /metrics
    realtime: bool
    n: int | None = None
    p50_s: float | None = None
    p99_s: float | None = None
    note: str = ""


@dataclass
class PartitionRow:
    """Lag of one partition."""

    partition: int
    high_watermark: int | None
    ledger_offset: int | None
    lag: int | None
    batches: int
    last_commit_ns: int | None


@dataclass
class StatusReport:
    """Everything ``status`` found (``--json`` prints it as is)."""

    generated_ns: int
    warehouse_url: str
    topic: str
    bootstrap: str
    window: str = ""
    warehouse_error: str | None = None
    broker_error: str | None = None
    stages: list[StageRow] = field(default_factory=lambda: [])
    partitions: list[PartitionRow] = field(default_factory=lambda: [])
    gaps_today: str = ""
    gaps: list[dict[str, Any]] = field(default_factory=lambda: [])
    gaps_newest_day: str | None = None
    gaps_newest: list[dict[str, Any]] = field(default_factory=lambda: [])
    batches: list[dict[str, Any]] = field(default_factory=lambda: [])
    batch_verdicts: dict[str, int] = field(default_factory=lambda: {})
    check_counts: dict[str, dict[str, int]] = field(default_factory=lambda: {})
    failed_checks: list[dict[str, Any]] = field(default_factory=lambda: [])
    signal_runs: list[dict[str, Any]] = field(default_factory=lambda: [])
    blocked_days: list[str] = field(default_factory=lambda: [])
    dagster_home: str | None = None
    dagster_error: str | None = None
    dagster_runs: list[dict[str, Any]] = field(default_factory=lambda: [])


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def _verdict(passed: Any) -> str:
    return "unchecked" if passed is None else ("passed" if passed else "FAILED")


def _warehouse_part(report: StatusReport, settings: Settings, window_s: float) -> None:
    from pipeline.commands.metrics_exporter import _AUDITS, _RUNS_SINCE, blocked_days, ny_today
    from pipeline.stages import STAGES, measure_window
    from pipeline.warehouse import open_warehouse

    wh = open_warehouse(settings.warehouse_url, read_only=True, lock_timeout_s=10.0)
    today = ny_today()
    with wh.transaction() as s:
        m = measure_window(s, window_s)
        ledger = s.execute(_LEDGER_PER_PARTITION, (settings.topic,))
        batches = s.execute(_RECENT_BATCHES, (5,))
        verdicts = s.execute(_VERDICTS)
        failed = s.execute(_FAILED_CHECKS, (5,))
        counts = s.execute(_CHECK_COUNTS)
        runs = s.execute(_RECENT_RUNS, (5,))
        gaps = s.execute(_DAY_GAPS, (today,))
        newest_day = s.execute(_NEWEST_DAY)[0][0]
        newest_gaps = s.execute(_DAY_GAPS, (newest_day,)) if newest_day not in (None, today) else []
        audits = s.execute(_AUDITS, (time.time_ns() - 7 * 86_400 * 1_000_000_000,))
        published = s.execute(_RUNS_SINCE, (date.fromordinal(today.toordinal() - 10),))
    if m.end_ns is None:
        report.window = "no trades loaded yet"
    else:
        report.window = (
            f"{m.n_trades:,} trades committed {_iso(m.start_ns)} .. {_iso(m.end_ns)} "
            f"({window_s:g} s of commits ending at the newest"
            + (", capped to the newest trades" if m.capped else "")
            + ")"
        )
    for st in STAGES:
        sample = m.stages[st.name]
        row = StageRow(st.name, st.title, "warehouse stamps", st.realtime, sample.n)
        row.p50_s, row.p99_s = sample.quantile_s(0.5), sample.quantile_s(0.99)
        notes: list[str] = []
        if sample.replayed:
            notes.append("replayed history: the SIP stamps are the recording's, so this is its age")
        if sample.pending:
            notes.append(f"{sample.pending:,} trades not yet in a signals run")
        if st.name in ("sip_to_receipt", "receipt_to_append") and m.n_trades and sample.n == 0:
            notes.append("no receipt stamps (loaded from a file, not the streamer)")
        row.note = "; ".join(notes)
        report.stages.append(row)
    report.partitions = [
        PartitionRow(int(p), None, int(o), None, int(n), int(c)) for p, o, c, n in ledger
    ]
    report.batches = [
        {
            "partition": int(b[1]),
            "offsets": f"[{int(b[2]):,}, {int(b[3]):,})",
            "trades": int(b[4]),
            "rejects": int(b[5]),
            "duplicates": int(b[6]),
            "gaps": int(b[7]),
            "check": _verdict(b[8]),
            "run_id": str(b[9] or ""),
            "committed": _iso(int(b[10])),
        }
        for b in batches
    ]
    report.batch_verdicts = {_verdict(v).lower(): int(n) for v, n in verdicts}
    for suite, passed, n in counts:
        report.check_counts.setdefault(str(suite), {})["passed" if passed else "failed"] = int(n)
    report.failed_checks = [
        {
            "suite": str(f[0]),
            "target": str(f[1]),
            "expectation": str(f[2]),
            "observed": str(f[3] or "")[:160],
            "run_id": str(f[4]),
            "checked": _iso(int(f[5])),
        }
        for f in failed
    ]
    report.signal_runs = [
        {
            "day": str(r[1]),
            "run_id": str(r[0]),
            "symbols": int(r[2]),
            "trades": int(r[3]),
            "final": bool(r[4]),
            "check": _verdict(r[5]),
            "computed": _iso(int(r[6])),
        }
        for r in runs
    ]
    report.blocked_days = blocked_days(audits, published)
    cols = ("symbol", "trades", "rth_minutes_with_trades", "gaps", "gap_seconds")
    report.gaps_today = today.isoformat()
    report.gaps = [dict(zip(cols, (str(g[0]), *g[1:]), strict=True)) for g in gaps]
    if newest_day is not None and newest_day != today:
        report.gaps_newest_day = str(newest_day)
        report.gaps_newest = [
            dict(zip(cols, (str(g[0]), *g[1:]), strict=True)) for g in newest_gaps
        ]


def _kafka_part(report: StatusReport, settings: Settings) -> None:
    from pipeline.commands.metrics_exporter import broker_reachable
    from pipeline.kafka import consumer

    if not broker_reachable(settings.bootstrap_servers):
        report.broker_error = (
            f"no Kafka broker listens at {settings.bootstrap_servers}: lag unknown "
            "(start it with `microstructure kafka up`); the ledger column is the warehouse's"
        )
        return
    try:
        marks = consumer.watermarks(
            settings.bootstrap_servers, settings.topic, 5.0, settings.kafka_extra
        )
    except PipelineError as e:
        report.broker_error = f"Kafka did not give watermarks: {e}"
        return
    by_p = {r.partition: r for r in report.partitions}
    for p, (low, high) in sorted(marks.items()):
        row = by_p.get(p)
        if row is None:
            row = by_p[p] = PartitionRow(p, None, None, None, 0, None)
        row.high_watermark = high
        loaded = row.ledger_offset if row.ledger_offset is not None else low
        row.lag = max(high - loaded, 0)
    report.partitions = [by_p[p] for p in sorted(by_p)]


def _scrape(url: str, token: str | None = None, timeout_s: float = 2.0) -> str:
    request = urllib.request.Request(url)  # noqa: S310 - http(s) URL given by the operator
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        return response.read().decode()


def _live_stage(
    url: str | None, token: str | None, metric: str, label: tuple[str, str] | None
) -> tuple[int | None, float | None, float | None, str]:
    from pipeline.metrics import histogram_quantile, parse_histograms

    if url is None:
        return None, None, None, "skipped"
    try:
        text = _scrape(url, token)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return None, None, None, f"not reachable at {url} ({reason})"
    hists = parse_histograms(text, metric)
    merged: dict[float, float] = {}
    for labels, buckets in hists.items():
        if label is not None and label not in labels:
            continue
        for le, count in buckets:
            merged[le] = merged.get(le, 0.0) + count
    buckets = sorted(merged.items())
    if not buckets or buckets[-1][1] == 0:
        return 0, None, None, f"{url}: no observations yet"
    n = int(buckets[-1][1])
    return (
        n,
        histogram_quantile(0.5, buckets),
        histogram_quantile(0.99, buckets),
        "since the process started; bucket-interpolated",
    )


def _live_part(
    report: StatusReport, settings: Settings, stream_url: str | None, mcp_url: str | None
) -> None:
    token = settings.mcp_auth_token.get() or None
    for name, title, source, url, tok, metric, label in (
        (
            "receipt_to_ack",
            "receipt -> Kafka ack (live, streamer)",
            "streamer /metrics",
            stream_url,
            None,
            "microstructure_stream_receipt_to_ack_seconds",
            ("type", "trade"),
        ),
        (
            "signal_to_served",
            "signal computed -> served by MCP (live)",
            "MCP /metrics",
            mcp_url,
            token,
            "microstructure_mcp_signal_to_served_seconds",
            None,
        ),
    ):
        n, p50, p99, note = _live_stage(url, tok, metric, label)
        report.stages.append(
            StageRow(name, title, source, name == "receipt_to_ack", n, p50, p99, note)
        )


def _dagster_part(report: StatusReport, settings: Settings) -> None:
    import os
    from pathlib import Path

    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    report.dagster_home = str(home)
    if not (home / "dagster.yaml").exists() and not (home / "storage").exists():
        report.dagster_error = f"no Dagster instance at {home}"
        return
    try:
        import dagster as dg

        from pipeline.commands.ingest import quiet_dagster

        quiet_dagster(False)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for rec in instance.get_run_records(limit=6):
                run = rec.dagster_run
                start, end = rec.start_time, rec.end_time
                report.dagster_runs.append(
                    {
                        "job": run.job_name,
                        "status": run.status.value,
                        "run_id": run.run_id,
                        "partition": run.tags.get("dagster/partition", ""),
                        "started": None if start is None else _iso(int(start * 1e9)),
                        "seconds": None if start is None or end is None else round(end - start, 2),
                    }
                )
    except Exception as e:  # the instance is optional; say why it could not be read
        report.dagster_error = f"cannot read the Dagster instance at {home}: {e}"


def collect_status(
    settings: Settings,
    *,
    window_s: float = 900.0,
    stream_metrics: str | None = DEFAULT_STREAM_METRICS,
    mcp_metrics: str | None = None,
    dagster: bool = True,
) -> StatusReport:
    """Gather the status report from every source that answers.

    Parameters
    ----------
    settings
        Warehouse, topic, broker, MCP address and token.
    window_s
        Stage latency window (seconds of commits ending at the newest commit).
    stream_metrics
        The streamer's ``/metrics`` URL (None: skip).
    mcp_metrics
        The MCP server's ``/metrics`` URL (None: skip).
    dagster
        Read the Dagster instance (``DAGSTER_HOME`` or ``$MICROSTRUCTURE_HOME/dagster``).

    Returns
    -------
    StatusReport
        What was found; unreachable sources carry their reason.
    """
    report = StatusReport(
        time.time_ns(), settings.warehouse_url, settings.topic, settings.bootstrap_servers
    )
    try:
        _warehouse_part(report, settings, window_s)
    except PipelineError as e:
        report.warehouse_error = str(e)
    except Exception as e:  # e.g. an old warehouse without the views: say it, go on
        report.warehouse_error = f"{type(e).__name__}: {e} (try `microstructure warehouse migrate`)"
    _kafka_part(report, settings)
    _live_part(report, settings, stream_metrics, mcp_metrics)
    if dagster:
        _dagster_part(report, settings)
    return report


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 86_400:
        return f"{v / 86_400:,.0f} d"
    if v >= 60:
        return f"{v:,.0f} s"
    return f"{v * 1e3:,.1f} ms" if v < 1 else f"{v:,.2f} s"


def _ago(iso: str | None, now_ns: int) -> str:
    if iso is None:
        return "-"
    ns = int(datetime.fromisoformat(iso).timestamp() * 1e9)
    s = (now_ns - ns) / 1e9
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    if s < 172_800:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86_400:.0f} d ago"


def render(report: StatusReport, console: Any) -> None:
    """Print the report with rich tables.

    Parameters
    ----------
    report
        What :func:`collect_status` found.
    console
        A ``rich.console.Console``.
    """
    from rich.table import Table

    now = report.generated_ns
    console.rule(f"[bold]microstructure status[/bold]  {_iso(now)}", align="left")
    console.print(
        f"warehouse {report.warehouse_url}   topic {report.topic} @ {report.bootstrap}",
        highlight=False,
    )
    if report.warehouse_error:
        console.print(f"[red]warehouse not readable:[/red] {report.warehouse_error}")
    t = Table(title="latency per stage (p50 / p99)", title_justify="left")
    for col in ("stage", "real-time", "trades", "p50", "p99", "measured from"):
        t.add_column(col, justify="right" if col in ("trades", "p50", "p99") else "left")
    notes: list[str] = []
    for r in report.stages:
        flag = ""
        if r.realtime and r.p99_s is not None and r.p99_s > 0.05:
            flag = " [red]> 50 ms[/red]"
        mark = ""
        if r.note:
            notes.append(f"[{len(notes) + 1}] {r.title}: {r.note}")
            mark = f" [{len(notes)}]"
        t.add_row(
            r.title,
            "yes: 50 ms" if r.realtime else "no",
            "-" if r.n is None else f"{r.n:,}",
            _ms(r.p50_s),
            _ms(r.p99_s) + flag,
            r.source + mark,
        )
    console.print(t)
    for line in notes:
        console.print(line, highlight=False, markup=False)
    console.print(f"window: {report.window or '-'}", highlight=False)
    t = Table(
        title="consumer lag per partition (Kafka high watermark - ledger)", title_justify="left"
    )
    for col in ("partition", "high watermark", "ledger next", "lag", "batches", "last commit"):
        t.add_column(col, justify="right")
    for p in report.partitions:
        t.add_row(
            str(p.partition),
            "-" if p.high_watermark is None else f"{p.high_watermark:,}",
            "-" if p.ledger_offset is None else f"{p.ledger_offset:,}",
            "-" if p.lag is None else f"{p.lag:,}",
            f"{p.batches:,}",
            _ago(_iso(p.last_commit_ns), now),
        )
    console.print(t)
    if report.broker_error:
        console.print(f"[yellow]{report.broker_error}[/yellow]")
    for day, rows in (
        (report.gaps_today, report.gaps),
        (report.gaps_newest_day, report.gaps_newest),
    ):
        if day is None or (day != report.gaps_today and not rows):
            continue
        label = "today" if day == report.gaps_today else "newest loaded day"
        if not rows:
            console.print(f"feed gaps {label} ({day}): no trades loaded for this day")
            continue
        t = Table(title=f"feed gaps {label} ({day}), per symbol", title_justify="left")
        for col in ("symbol", "trades", "minutes with trades", "gaps", "gap seconds"):
            t.add_column(col, justify="left" if col == "symbol" else "right")
        for g in rows[:15]:
            t.add_row(
                g["symbol"],
                f"{int(g['trades']):,}",
                f"{int(g['rth_minutes_with_trades'])}/390",
                str(int(g["gaps"])),
                f"{float(g['gap_seconds']):,.1f}",
            )
        console.print(t)
        if len(rows) > 15:
            console.print(f"... {len(rows) - 15} more symbols (--json has them all)")
    t = Table(title="last microbatches (ingest) and their checks", title_justify="left")
    for col in ("partition", "offsets", "trades", "rejects", "dups", "gaps", "check", "committed"):
        t.add_column(col, justify="left" if col in ("offsets", "check") else "right")
    for b in report.batches:
        t.add_row(
            str(b["partition"]),
            b["offsets"],
            f"{b['trades']:,}",
            str(b["rejects"]),
            str(b["duplicates"]),
            str(b["gaps"]),
            b["check"],
            _ago(b["committed"], now),
        )
    console.print(t)
    console.print(
        "batch checks (all time): "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(report.batch_verdicts.items())) or "none")
        + "; expectations: "
        + (
            ", ".join(
                f"{suite} {c.get('passed', 0):,} passed / {c.get('failed', 0):,} failed"
                for suite, c in sorted(report.check_counts.items())
            )
            or "none recorded"
        ),
        highlight=False,
    )
    t = Table(title="last signals runs and their audits", title_justify="left")
    for col in ("day", "trades", "symbols", "final", "audit", "computed", "run"):
        t.add_column(col)
    for r in report.signal_runs:
        t.add_row(
            r["day"],
            f"{r['trades']:,}",
            str(r["symbols"]),
            "final" if r["final"] else "provisional",
            r["check"],
            _ago(r["computed"], now),
            r["run_id"][:8],
        )
    console.print(t)
    if report.blocked_days:
        console.print(
            f"[red]blocked days[/red] (audit failed, last good version still served): "
            f"{', '.join(report.blocked_days)}"
        )
    for f in report.failed_checks:
        console.print(
            f"[red]failed check[/red] {f['suite']} {f['target']}: {f['expectation']} "
            f"({f['observed']}) {_ago(f['checked'], now)}",
            highlight=False,
        )
    if report.dagster_error:
        console.print(f"Dagster: {report.dagster_error}", highlight=False)
    elif report.dagster_runs:
        t = Table(title=f"Dagster runs ({report.dagster_home})", title_justify="left")
        for col in ("job", "partition", "status", "started", "seconds", "run"):
            t.add_column(col)
        for r in report.dagster_runs:
            t.add_row(
                r["job"],
                r["partition"],
                r["status"],
                _ago(r["started"], now),
                "-" if r["seconds"] is None else f"{r['seconds']:.1f}",
                r["run_id"][:8],
            )
        console.print(t)


def _main(args: argparse.Namespace) -> int:
    from rich.console import Console

    if args.window_s <= 0:
        raise ConfigError(f"--window-s is {args.window_s} and must be positive")
    settings = Settings.from_env()
    stream = None if args.stream_metrics == "off" else args.stream_metrics
    mcp = args.mcp_metrics or f"http://{settings.mcp_host}:{settings.mcp_port}/metrics"
    mcp = None if mcp == "off" else mcp
    if not args.json:
        from pipeline.commands.ingest import quiet_dagster

        quiet_dagster(bool(getattr(args, "verbose", False)))
    report = collect_status(
        settings,
        window_s=args.window_s,
        stream_metrics=stream,
        mcp_metrics=mcp,
        dagster=not args.no_dagster,
    )
    if args.json:
        print(json.dumps(asdict(report), default=str))
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=140)
        render(report, console)
    return 1 if report.warehouse_error else 0
