"""``microstructure demo``: one real trading day end to end, on this machine.

replay-server (the shipped XXX sample, 2018-01-02) -> ``microstructure stream`` -> a real
local Kafka broker -> Dagster microbatches (the real sensor tick and runs, recorded in a
persistent Dagster instance) -> DuckDB -> the signals asset for the day -> the MCP server,
queried by the official MCP client over stdio; beside the batch, ``microstructure
live-signals`` consumes the same topic into ``trading-signals``, and ``microstructure
reconcile`` compares its records with the batch's, trade by trade. Each stage is the
product's own command or code path; nothing is simulated.

The demo keeps its state apart from the platform's (``$MICROSTRUCTURE_HOME/demo``) and its
own broker on port 19192, so it never touches a user's topic or warehouse. It resets that
state on every run, so two runs print the same numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import FeedError, PipelineError
from pipeline.settings import Settings

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
DEMO_DAY = "2018-01-02"
DEMO_SYMBOL = "XXX"
DEMO_KAFKA_PORT = 19192
DEMO_API_KEY = "demo-key"  # the replay server's key; not a secret
DEMO_TOPIC = "polygon-market-data"


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand."""
    p = sub.add_parser(
        "demo",
        help="replay a real trading day end to end (Kafka, Dagster, DuckDB, signals, MCP)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument(
        "--day", default=DEMO_DAY, help=f"day of the shipped sample (default {DEMO_DAY})"
    )
    p.add_argument(
        "--kafka-port", type=int, default=DEMO_KAFKA_PORT, help="demo broker port (default 19192)"
    )
    p.add_argument(
        "--keep-broker", action="store_true", help="leave the demo broker running at the end"
    )
    p.set_defaults(func=_main)


@dataclass
class DemoFacts:
    """What the demo measured, for the summary and for tests."""

    source_trades: int = 0
    stream: dict[str, Any] = field(default_factory=dict)
    ingest: dict[str, Any] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    signals: dict[str, Any] = field(default_factory=dict)
    mcp: dict[str, Any] = field(default_factory=dict)
    live: dict[str, Any] = field(default_factory=dict)
    reconcile: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    report: str = ""


class _Steps:
    """Numbered step headers with elapsed time (rich when attached to a terminal)."""

    def __init__(self, total: int) -> None:
        from rich.console import Console

        self.console = Console(stderr=False, highlight=False)
        self.total = total
        self.n = 0

    @contextlib.contextmanager
    def step(self, title: str, facts: DemoFacts, key: str) -> Iterator[None]:
        self.n += 1
        self.console.rule(f"[bold]{self.n}/{self.total}  {title}", align="left")
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        facts.seconds[key] = round(dt, 2)
        self.console.print(f"[green]done[/green] in {dt:.1f} s")

    def say(self, text: str) -> None:
        self.console.print(text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FeedError(f"replay-server exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise FeedError(f"replay-server did not listen on port {port} within {timeout_s} s")


def demo_settings(base: Settings, kafka_port: int) -> Settings:
    """Return the demo's settings: its own state directory, warehouse and broker port.

    Parameters
    ----------
    base
        The platform settings (``$MICROSTRUCTURE_HOME`` etc.).
    kafka_port
        Port of the demo broker (ignored when ``KAFKA_BOOTSTRAP_SERVERS`` is set).

    Returns
    -------
    Settings
        Settings rooted at ``$MICROSTRUCTURE_HOME/demo``.
    """
    home = base.home / "demo"
    return dataclasses.replace(
        base,
        home=home,
        warehouse_url=f"duckdb:///{home / 'warehouse.duckdb'}",
        kafka_port=kafka_port,
        topic=DEMO_TOPIC if base.uses_local_broker else f"demo-{base.topic}",
        signals_topic=(
            base.signals_topic if base.uses_local_broker else f"demo-{base.signals_topic}"
        ),
        live_group=f"demo-{base.live_group}",
        topic_partitions=4,
    )


def child_env(settings: Settings) -> dict[str, str]:
    """Return the environment for the demo's child processes (same settings as this one).

    Parameters
    ----------
    settings
        The demo settings.

    Returns
    -------
    dict[str, str]
        ``os.environ`` plus the demo's ``MICROSTRUCTURE_*`` values.
    """
    env = dict(os.environ)
    env.update(
        {
            "MICROSTRUCTURE_HOME": str(settings.home),
            "MICROSTRUCTURE_WAREHOUSE_URL": settings.warehouse_url,
            "MICROSTRUCTURE_TOPIC": settings.topic,
            "MICROSTRUCTURE_SIGNALS_TOPIC": settings.signals_topic,
            "MICROSTRUCTURE_LIVE_GROUP": settings.live_group,
            "MICROSTRUCTURE_KAFKA_PORT": str(settings.kafka_port),
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "DAGSTER_HOME": str(settings.dagster_home),
            "MASSIVE_API_KEY": DEMO_API_KEY,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("POLYGON_API_KEY", None)
    return env


def reset_state(home: Path) -> None:
    """Remove the demo's previous state but keep the cached Kafka jars.

    Parameters
    ----------
    home
        The demo state directory.
    """
    if not home.exists():
        return
    for child in home.iterdir():
        if child.name == "kafka":
            # jars under kafka/<version>/libs are a cache; broker data is not.
            for sub in child.iterdir():
                if sub.name == "broker":
                    shutil.rmtree(sub)
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def write_day_file(day: str, out: Path) -> int:
    """Write the sample's prints of New York date ``day`` (all hours) to ``out``.

    Parameters
    ----------
    day
        ``YYYY-MM-DD``.
    out
        Destination ``.csv.gz``.

    Returns
    -------
    int
        Number of prints written.
    """
    import pandas as pd

    from pipeline.nytime import NEW_YORK

    frame = pd.read_csv(SAMPLE, keep_default_na=False, dtype={"conditions": str, "exchange": str})
    local = pd.to_datetime(frame["timestamp_ns"], unit="ns", utc=True).dt.tz_convert(NEW_YORK)
    day_frame = frame[local.dt.strftime("%Y-%m-%d") == day]
    if day_frame.empty:
        raise PipelineError(
            f"the sample has no trades on {day}; it covers 2018-01-02 and 2018-01-03"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    day_frame.to_csv(out, index=False)
    return len(day_frame)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def run_feed(settings: Settings, day_file: Path, steps: _Steps) -> dict[str, Any]:
    """Replay the day through replay-server -> stream -> Kafka (two real processes).

    Parameters
    ----------
    settings
        Demo settings.
    day_file
        The trades of the day.
    steps
        Output sink.

    Returns
    -------
    dict[str, Any]
        The streamer's JSON summary.
    """
    env = child_env(settings)
    port = _free_port()
    log = settings.home / "replay-server.log"
    with log.open("wb") as log_fh:
        server = subprocess.Popen(
            _cli(
                "replay-server",
                str(day_file),
                "--port",
                str(port),
                "--speed",
                "max",
                "--api-key",
                DEMO_API_KEY,
                "--close-at-end",
            ),
            env=env,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_port(port, server, 60.0)
            steps.say(f"replay-server on ws://127.0.0.1:{port} (log {log})")
            out = subprocess.run(
                _cli(
                    "stream",
                    "--url",
                    f"ws://127.0.0.1:{port}",
                    "--symbols",
                    DEMO_SYMBOL,
                    "--exit-on-close",
                    "--idle-exit-s",
                    "30",
                    "--max-reconnects",
                    "3",
                    "--json",
                ),
                env=env,
                stdout=subprocess.PIPE,
                text=True,
                check=False,
            )
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    if out.returncode != 0:
        raise FeedError(f"stream exited with code {out.returncode}; see the messages above")
    summary: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return summary


def start_live(settings: Settings) -> subprocess.Popen[str]:
    """Start ``live-signals`` beside the batch: it stops at the topic's end offsets.

    Parameters
    ----------
    settings
        Demo settings (topic, signals topic, group, warehouse for priors).

    Returns
    -------
    subprocess.Popen
        The process; its last stdout line is its JSON summary (:func:`finish_live`).
    """
    log = settings.home / "live-signals.log"
    with log.open("wb") as log_fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            _cli("live-signals", "--until-caught-up", "--idle-exit-s", "60", "--json"),
            env=child_env(settings),
            stdout=subprocess.PIPE,
            stderr=log_fh,
            text=True,
        )


def finish_live(proc: subprocess.Popen[str], timeout_s: float = 300.0) -> dict[str, Any]:
    """Wait for the live process and return its JSON summary.

    Raises
    ------
    PipelineError
        If it failed or printed no summary.
    """
    out, _ = proc.communicate(timeout=timeout_s)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise PipelineError(f"live-signals exited with code {proc.returncode}; see its log")
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary


async def query_mcp(settings: Settings) -> dict[str, Any]:
    """Call the MCP server over stdio with the official client, as an AI client would.

    Parameters
    ----------
    settings
        Demo settings (the server opens the demo warehouse read-only).

    Returns
    -------
    dict[str, Any]
        Structured results of ``list_symbols``, ``get_trading_signals``,
        ``get_jump_events`` and ``get_symbol_metrics``.
    """
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "pipeline.cli", "serve-mcp"], env=child_env(settings)
    )
    results: dict[str, Any] = {}
    async with Client(params, read_timeout_seconds=60) as client:
        tools = await client.list_tools()
        results["tools"] = [t.name for t in tools.tools]
        calls: list[tuple[str, dict[str, Any]]] = [
            ("list_symbols", {}),
            ("get_trading_signals", {"symbol": DEMO_SYMBOL, "signal_type": "BUY", "limit": 3}),
            ("get_trading_signals", {"symbol": DEMO_SYMBOL, "signal_type": "SELL", "limit": 3}),
            ("get_jump_events", {"symbol": DEMO_SYMBOL, "limit": 5}),
            ("get_symbol_metrics", {"symbol": DEMO_SYMBOL}),
        ]
        for name, arguments in calls:
            res = await client.call_tool(name, arguments)
            if res.is_error:
                text = " ".join(getattr(c, "text", "") for c in res.content)
                raise PipelineError(f"MCP tool {name} answered with an error: {text}")
            key = name if name != "get_trading_signals" else f"{name}:{arguments['signal_type']}"
            results[key] = res.structured_content
            if name == "get_trading_signals" and res.structured_content:
                results["signal_to_served_s"] = _served_age_s(res.structured_content)
    return results


def _served_age_s(answer: dict[str, Any]) -> float | None:
    """Seconds from the newest signals run behind an answer to its arrival at the client."""
    from datetime import datetime

    runs = (answer.get("provenance") or {}).get("signal_runs") or []
    stamps = [datetime.fromisoformat(r["computed"]) for r in runs if r.get("computed")]
    return round(time.time() - max(stamps).timestamp(), 3) if stamps else None


def show_status(settings: Settings, steps: _Steps, served_s: float | None) -> None:
    """Print ``microstructure status`` for the demo's state (broker still up).

    Parameters
    ----------
    settings
        Demo settings.
    steps
        Output sink.
    served_s
        Signal computed -> served as the demo's MCP client saw it (its stdio server has
        no ``/metrics`` to scrape once it exits).
    """
    from pipeline.commands.status import collect_status, render

    report = collect_status(settings, window_s=3600.0, stream_metrics=None, mcp_metrics=None)
    render(report, steps.console)
    if served_s is not None:
        steps.say(
            f"signal computed -> served by MCP: {served_s:.1f} s (the demo's stdio server, "
            "measured by its client; `serve-mcp --http` exports it on /metrics)"
        )


def write_demo_report(settings: Settings, day: str) -> Path:
    """Draw the demo day (``microstructure report``) as a PNG under the demo's state.

    Parameters
    ----------
    settings
        Demo settings (the warehouse is read read-only).
    day
        The replayed day.

    Returns
    -------
    pathlib.Path
        The PNG written.
    """
    from pipeline.commands.report import make_report

    out = settings.home / f"report_{DEMO_SYMBOL}_{day}.png"
    make_report(settings, DEMO_SYMBOL, day, out, None)
    return out


def _fmt_ts(ns: int) -> str:
    from datetime import UTC, datetime

    from pipeline.nytime import NEW_YORK

    t = datetime.fromtimestamp(ns / 1e9, tz=UTC).astimezone(NEW_YORK)
    return t.strftime("%H:%M:%S.%f")[:-3]


def print_summary(facts: DemoFacts, settings: Settings, steps: _Steps) -> None:
    """Print what a user wants to see at the end of the demo.

    Parameters
    ----------
    facts
        Everything measured during the run.
    settings
        Demo settings (paths for the next steps).
    steps
        Output sink.
    """
    from rich.table import Table

    c = steps.console
    c.rule("[bold]Summary", align="left")
    st, ing, sig = facts.stream, facts.ingest, facts.signals
    c.print(
        f"source prints on {DEMO_DAY}: {facts.source_trades:,} -> streamed {st.get('trades', 0):,} "
        f"trades, {sum(st.get('rejects', {}).values()):,} rejects, "
        f"delivered {st.get('delivered', 0):,} of {st.get('sent', 0):,} messages (acks=all), "
        f"receipt->ack p50 {st.get('p50_receipt_to_ack_ms') or 0:.2f} ms / "
        f"p99 {st.get('p99_receipt_to_ack_ms') or 0:.2f} ms (a whole day replayed as one burst, "
        "so this is queueing; `microstructure bench stream` measures it at a steady rate)"
    )
    c.print(
        f"warehouse: {facts.tables.get('market_data', 0):,} trades loaded by "
        f"{ing.get('runs', 0)} Dagster microbatch runs ({ing.get('duplicates', 0)} duplicates, "
        f"{facts.tables.get('market_data_rejects', 0)} rejects kept with reasons)"
    )
    ledger = Table(title="offsets committed with the rows (kafka_offsets ledger)")
    for col in ("topic", "partition", "batches", "messages", "next offset", "trades"):
        ledger.add_column(col, justify="right" if col != "topic" else "left")
    for row in facts.ledger:
        ledger.add_row(
            row["topic"],
            str(row["partition"]),
            str(row["batches"]),
            f"{row['messages']:,}",
            f"{row['next']:,}",
            f"{row['trades']:,}",
        )
    c.print(ledger)
    metrics = (facts.mcp.get("get_symbol_metrics") or {}).get("rows") or []
    c.print(
        f"signals for {DEMO_DAY}: {sig.get('trades', 0):,} regular-hours prints scored, "
        f"{sig.get('jumps', 0)} Lee-Mykland jumps flagged"
    )
    if metrics:
        m0 = metrics[0]
        bns, garch = m0.get("bns") or {}, m0.get("garch") or {}
        acd = m0.get("acd_exponential") or {}
        c.print(
            f"day metrics via MCP get_symbol_metrics: daily 5-min BNS z {bns.get('z')} "
            f"(p {bns.get('p_value')}, jump {bns.get('jump')}); tick GARCH alpha "
            f"{garch.get('alpha')} beta {garch.get('beta')}; exponential ACD alpha "
            f"{acd.get('alpha')} beta {acd.get('beta')}; VWAP {m0.get('vwap')}"
        )
    table = Table(title="a few BUY/SELL signals, as served by MCP get_trading_signals")
    for col in ("time (New York)", "signal", "price", "log return", "L", "xi"):
        table.add_column(col, justify="right")
    for side in ("BUY", "SELL"):
        rows = (facts.mcp.get(f"get_trading_signals:{side}") or {}).get("rows") or []
        for r in rows[:3]:
            table.add_row(
                _fmt_ts(int(r["timestamp_ns"])),
                str(r.get("trading_signal")),
                f"{r.get('price')}",
                f"{r.get('log_return'):.6f}" if r.get("log_return") is not None else "",
                f"{r.get('lee_mykland_stat'):.2f}" if r.get("lee_mykland_stat") is not None else "",
                f"{r.get('lm_xi'):.2f}" if r.get("lm_xi") is not None else "",
            )
    c.print(table)
    c.print(f"MCP tools served: {', '.join(facts.mcp.get('tools', []))}")
    rc = facts.reconcile
    if rc:
        counts = facts.live.get("counts", {})
        whole = rc["whole_day"]
        no_fits = rc["provenance"]["garch_params"].get("none") == rc["compared"]
        fits = "null: no prior day in the demo warehouse" if no_fits else "from the previous day"
        c.print(
            f"live-signals beside the batch: {counts.get('signals', 0):,} provisional signals "
            f"(n rule {', '.join(rc['provenance']['lm_n_rule'])}); reconcile {DEMO_DAY}: "
            f"{rc['compared']:,} trades joined on input offset, [bold]causal mismatches "
            f"{rc['causal_mismatches']}[/bold] (returns, L, rolling BNS, intensity z); flag "
            f"agreement {whole['jump_detected']['agree_rate']:.4f} (live-only flags "
            f"{whole['jump_detected']['live_only']}, the running n); GARCH/ACD live "
            f"{fits}"
        )
    c.print(f"time per step (s): {facts.seconds}")
    c.rule("[bold]Next", align="left")
    c.print("Open the Dagster UI on the demo's runs, assets and partitions:")
    c.print("    make dev-demo        # then http://127.0.0.1:3000")
    c.print("Connect an MCP client (stdio) to the demo warehouse, e.g. Claude Code:")
    c.print(
        "    claude mcp add microstructure "
        f"-e MICROSTRUCTURE_WAREHOUSE_URL={settings.warehouse_url} "
        f"-- {Path.cwd() / '.venv/bin/microstructure'} serve-mcp"
    )
    c.print("Or over HTTP:  MCP_AUTH_TOKEN=... make mcp   (see mcp_server/README.md)")


def reconcile_demo_day(settings: Settings, day: str, steps: _Steps) -> dict[str, Any]:
    """Compare the live records of ``day`` with the batch and print the report.

    Parameters
    ----------
    settings
        Demo settings.
    day
        The demo day.
    steps
        Output sink.

    Returns
    -------
    dict[str, Any]
        The reconciliation (``microstructure reconcile DAY --json``).
    """
    from pipeline.commands.reconcile import reconcile_day

    result = reconcile_day(settings, day)
    for line in result.lines():
        steps.say(line)
    return result.as_dict()


def run_demo(base: Settings, day: str, kafka_port: int, keep_broker: bool) -> DemoFacts:
    """Run the whole demo and return what it measured.

    Parameters
    ----------
    base
        Platform settings.
    day
        Day of the sample to replay.
    kafka_port
        Demo broker port.
    keep_broker
        Leave the broker running at the end.

    Returns
    -------
    DemoFacts
        Counts and timings of every stage.
    """
    from pipeline.commands.ingest import quiet_dagster, run_ingest
    from pipeline.commands.signals import run_signals
    from pipeline.kafka.broker import LocalBroker, delete_topic, ensure_topic
    from pipeline.warehouse import open_warehouse

    settings = demo_settings(base, kafka_port)
    facts = DemoFacts()
    steps = _Steps(total=9)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    quiet_dagster(False)
    broker: LocalBroker | None = None
    live: subprocess.Popen[str] | None = None
    try:
        with steps.step("Prepare state and the day's trades", facts, "prepare"):
            reset_state(settings.home)
            settings.home.mkdir(parents=True, exist_ok=True)
            day_file = settings.home / f"trades_{DEMO_SYMBOL}_{day}.csv.gz"
            facts.source_trades = write_day_file(day, day_file)
            steps.say(f"{facts.source_trades:,} prints of {DEMO_SYMBOL} on {day} -> {day_file}")
            applied = open_warehouse(settings.warehouse_url).migrate()
            steps.say(f"warehouse {settings.warehouse_url}: {len(applied)} migrations applied")

        with steps.step("Kafka: start a real broker and create the topics", facts, "kafka"):
            if settings.uses_local_broker:
                broker = LocalBroker.from_settings(settings)
                steps.say(f"Apache Kafka {settings.kafka_version} (KRaft) from Maven Central jars")
                pid = broker.up()
                steps.say(f"broker pid {pid} at {settings.bootstrap_servers}")
            for name in (settings.topic, settings.signals_topic):
                with contextlib.suppress(PipelineError):
                    delete_topic(settings.bootstrap_servers, name, extra_conf=settings.kafka_extra)
                ensure_topic(
                    settings.bootstrap_servers,
                    name,
                    settings.topic_partitions,
                    extra_conf=settings.kafka_extra,
                )
            steps.say(
                f"topics {settings.topic} and {settings.signals_topic}: "
                f"{settings.topic_partitions} partitions each, key = symbol"
            )

        with steps.step("Feed: replay-server -> stream -> Kafka", facts, "feed"):
            facts.stream = run_feed(settings, day_file, steps)
            st = facts.stream
            steps.say(
                f"{st['trades']:,} trades streamed in {st['elapsed_s']:.1f} s, "
                f"{st['delivered']:,}/{st['sent']:,} acknowledged"
            )

        with steps.step(
            "Dagster: sensor ticks -> exactly-once microbatches -> DuckDB", facts, "ingest"
        ):
            live = start_live(settings)
            steps.say(
                f"live-signals (pid {live.pid}) consumes {settings.topic} beside the batch into "
                f"{settings.signals_topic}, as group {settings.live_group!r}"
            )
            summary = run_ingest(settings, until_caught_up=True, echo=steps.say)
            if summary.failed:
                raise PipelineError(f"{summary.failed} ingest runs failed: {summary.errors}")
            facts.ingest = {
                "runs": summary.runs,
                "trades": summary.trades,
                "duplicates": summary.duplicates,
                "rejects": summary.rejects,
                "rows_per_s": round(summary.rows_per_s),
                "lagging": summary.lagging,
            }
            wh = open_warehouse(settings.warehouse_url, read_only=True)
            facts.tables = wh.table_counts()
            facts.ledger = [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "batches": p.n_batches,
                    "messages": p.n_messages,
                    "next": p.next_offset,
                    "trades": p.n_trades,
                }
                for p in wh.partition_progress(settings.topic)
            ]

        with steps.step(f"Dagster: signals for the {day} partition", facts, "signals"):
            sig = run_signals(settings, [day], echo=steps.say)
            if sig.failed:
                raise PipelineError(f"signals failed for {sig.failed}")
            facts.signals = {"trades": sig.trades, "jumps": sig.jumps}

        with steps.step("MCP: the official client calls the server over stdio", facts, "mcp"):
            facts.mcp = asyncio.run(query_mcp(settings))
            steps.say(f"{len(facts.mcp['tools'])} tools listed; 5 calls answered")

        with steps.step("Status: latency per stage, lag, gaps, runs and checks", facts, "status"):
            show_status(settings, steps, facts.mcp.get("signal_to_served_s"))

        with steps.step(f"Live vs batch: reconcile {day}", facts, "reconcile"):
            facts.live = finish_live(live)
            live = None
            facts.reconcile = reconcile_demo_day(settings, day, steps)
    finally:
        if live is not None and live.poll() is None:
            live.terminate()
            live.communicate(timeout=30)
        if broker is not None and not keep_broker:
            broker.down()
    print_summary(facts, settings, steps)
    with steps.step(f"Report: {DEMO_SYMBOL} {day} in pictures", facts, "report"):
        facts.report = str(write_demo_report(settings, day))
    (settings.home / "demo-summary.json").write_text(
        json.dumps(dataclasses.asdict(facts), default=str, indent=1)
    )
    steps.say(
        f"[bold]report of {DEMO_SYMBOL} {day}[/bold] (price with jumps, GARCH volatility, "
        f"intensity z-score, ACD surprise, daily BNS): {facts.report}"
    )
    return facts


def _main(args: argparse.Namespace) -> int:
    run_demo(Settings.from_env(), args.day, args.kafka_port, args.keep_broker)
    return 0
