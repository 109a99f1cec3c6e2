"""``microstructure bench mcp``: the MCP server over HTTP under an agent-fleet load.

What it does:

1. writes a warehouse of real-sized data (:func:`write_sample_warehouse`): the shipped
   XXX sample (77,263 real NYSE-TAQ trades over 2018-01-02/03) plus three symbols derived
   from it by jittering times and scaling prices, so 8 symbol-days of about 38,000
   trades each (about 309,000 trades), loaded the way ingest loads them (microbatches
   per Kafka partition with ledger rows, rejects, a failed quality check and a feed gap),
   with each day's signals computed by the real kernels and published by the warehouse;
2. starts ``microstructure serve-mcp --http`` on an ephemeral port with bearer tokens
   for 100 clients, ``--workers`` uvicorn workers (default 2);
3. drives it from a separate process (:mod:`asyncio` + uvloop over raw HTTP/1.1
   keep-alive sockets, pre-encoded MCP 2026-07-28 ``tools/call`` requests) with a mix of
   every tool: (a) saturation, 100 closed-loop clients for ``--duration`` seconds;
   (b) latency, 100 clients at an aggregate open-loop ``--rate`` (200/s), latency
   measured from each request's scheduled time so queueing is counted;
4. measures each tool's warehouse query directly on a snapshot (p50/p99 over many
   runs), and the CPU of the load generator and of the server processes, so the
   report shows the load generator is not the bottleneck.

The load generator is this module run as ``python -m pipeline.bench.mcp_http loadgen ...``;
it needs nothing outside the project's lock file (no wrk), so ``make bench`` works on a
fresh machine.
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
TOPIC = "polygon-market-data"
DEFAULT_SYMBOLS: tuple[str, ...] = ("XXX", "AAA", "BBB", "CCC")
N_PARTITIONS = 4
BATCH_RECORDS = 20_000


@dataclass(frozen=True)
class SampleFacts:
    """What :func:`write_sample_warehouse` wrote."""

    path: Path
    symbols: tuple[str, ...]
    days: tuple[str, ...]
    n_trades: int
    n_signals: int
    n_batches: int
    n_rejects: int
    n_gaps: int


def _partition(symbol: str) -> int:
    # Stable across processes (Python's hash() is salted); Kafka uses murmur2, any
    # stable hash serves the fixture.
    return zlib.crc32(symbol.encode()) % N_PARTITIONS


def write_sample_warehouse(
    path: Path,
    *,
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    trades_per_day: int | None = None,
    batch_records: int = BATCH_RECORDS,
    seed: int = 7,
) -> SampleFacts:
    """Write a DuckDB warehouse from the shipped sample, as ingest and signals would.

    The schema comes from the migration runner; trades, ledger rows, rejects and a gap are
    inserted as microbatches per Kafka partition (one batch fails its quality check, with
    its expectation in ``quality_results``); each day's signals are computed by the real
    kernels (``compute_frames``) and published by ``Warehouse.publish_signals``.

    Parameters
    ----------
    path
        The DuckDB file to create (must not exist).
    symbols
        The first is the real XXX sample (renamed if not ``XXX``); the others are
        derived from it (times jittered by up to 0.5 s, prices scaled).
    trades_per_day
        Keep only the first N trades of each symbol-day (small, fast test fixtures);
        None keeps all (about 38,000 per symbol-day).
    batch_records
        Largest offset span of one microbatch (one ledger row each).
    seed
        Seed of the jitter.

    Returns
    -------
    SampleFacts
        Counts of what was written.
    """
    import time
    from datetime import date, datetime

    import numpy as np
    import pandas as pd

    from pipeline.microbatch import local_time_columns
    from pipeline.nytime import NEW_YORK, ny_dates
    from pipeline.signals.assemble import compute_frames
    from pipeline.warehouse import open_warehouse
    from pipeline.warehouse.base import QualityResultRow
    from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
    from pipeline.warehouse.finality import ingested_through, loaded_watermarks
    from pipeline.warehouse.provenance import build_signal_run
    from udx.kernels import KERNEL_VERSION, Params

    if path.exists():
        raise FileExistsError(path)
    rng = np.random.default_rng(seed)
    base = pd.read_csv(SAMPLE, keep_default_na=False)
    frames = []
    for k, sym in enumerate(symbols):
        d = base.copy()
        if k:
            d["timestamp_ns"] = d["timestamp_ns"] + rng.integers(-500_000_000, 500_000_000, len(d))
            d["price"] = (d["price"] * (0.5 + 0.4 * k)).round(2)
        d["symbol"] = sym
        frames.append(d.sort_values("timestamp_ns", kind="stable"))
    t = pd.concat(frames, ignore_index=True)
    t["trade_date"] = ny_dates(t["timestamp_ns"].to_numpy(dtype=np.int64))
    if trades_per_day is not None:
        t = t.groupby(["symbol", "trade_date"], sort=False).head(trades_per_day)
    t = t.sort_values(["timestamp_ns", "symbol"], kind="stable").reset_index(drop=True)
    # The loader's own derivation (pipeline.microbatch), so tests built on this fixture
    # notice when it changes.
    derived = local_time_columns(t["timestamp_ns"].to_numpy(dtype=np.int64))
    t["ns_from_open"] = derived["ns_from_open"].to_numpy()
    t["in_regular_hours"] = derived["in_regular_hours"].to_numpy()
    t["kafka_partition"] = t["symbol"].map(_partition).astype("int32")
    t["exchange_id"] = t["exchange"].map(lambda x: ord(x) - 64 if x else 0).astype("int32")

    wh = open_warehouse(f"duckdb:///{path}")
    assert isinstance(wh, DuckDBWarehouse)
    wh.migrate()
    md_rows, ledger, rejects, gaps = _ingest_frames(t, rng, batch_records)
    with wh.connect() as con:
        columns = _table_columns(con)
        con.execute("BEGIN TRANSACTION")
        for table, frame in (
            ("market_data", md_rows),
            ("kafka_offsets", ledger),
            ("market_data_rejects", rejects),
            ("feed_gaps", gaps),
        ):
            _insert(con, table, frame, columns[table])
        con.execute("COMMIT")
    failed = ledger[ledger["quality_passed"] == False]  # noqa: E712 - a pandas mask
    wh.record_quality(
        "ingest-fixture",
        [
            QualityResultRow(
                suite="ingest",
                target=f"{r.kafka_topic}:{r.kafka_partition}:[{r.start_offset},{r.stop_offset})",
                expectation="expect_column_values_to_be_between(size)",
                passed=False,
                observed_json=json.dumps({"unexpected_count": 3}),
            )
            for r in failed.itertuples()
        ],
    )
    params = Params()
    n_signals = 0
    for day in sorted(set(md_rows["trade_date"])):
        day_input = wh.read_day(day)
        trades = day_input.trades
        frames_ = compute_frames(trades, params, passthrough=("kafka_partition", "kafka_offset"))
        close = datetime(day.year, day.month, day.day, 16, tzinfo=NEW_YORK)
        run = build_signal_run(
            run_id=f"signals-{day}-bench",
            day=day,
            trades=trades,
            frames=frames_,
            kernel_version=KERNEL_VERSION,
            params=params.to_dict(),
            computed_ns=time.time_ns(),
            session_close_ns=int(close.timestamp()) * 1_000_000_000,
            ingested_through_ns=ingested_through(
                day_input.frontier, TOPIC, loaded_watermarks(day_input.frontier, TOPIC)
            ),
            ledger_ends_json=day_input.frontier.ends_json(),
            quality_passed=True,
        )
        wh.publish_signals(day, frames_, run)
        n_signals += len(frames_.trade_signals)
    del date
    return SampleFacts(
        path=path,
        symbols=tuple(symbols),
        days=tuple(sorted({str(d) for d in md_rows["trade_date"]})),
        n_trades=len(md_rows),
        n_signals=n_signals,
        n_batches=len(ledger),
        n_rejects=len(rejects),
        n_gaps=len(gaps),
    )


def _table_columns(con: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns ORDER BY ordinal_position"
    ).fetchall():
        out.setdefault(str(table), []).append(str(column))
    return out


def _insert(con: Any, table: str, frame: Any, present: list[str]) -> None:
    # Only the columns the table has (the schema is still growing); BY NAME fills the rest.
    cols = [c for c in frame.columns if c in present]
    view = frame[cols]
    con.register("fixture_rows", view)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM fixture_rows")  # noqa: S608
    finally:
        con.unregister("fixture_rows")


def _ingest_frames(t: Any, rng: Any, batch_records: int) -> tuple[Any, Any, Any, Any]:
    """Assign Kafka offsets, cut microbatches and build ledger, reject and gap rows."""
    import numpy as np
    import pandas as pd

    n = len(t)
    # A few records per partition are rejects (non-positive price, unparsable frame).
    reject_at = set(rng.choice(n, size=max(3, n // 20_000), replace=False).tolist())
    t = t.assign(is_reject=[i in reject_at for i in range(n)])
    t["kafka_offset"] = t.groupby("kafka_partition").cumcount().astype("int64")
    loaded_base = int(t["timestamp_ns"].max()) + 5_000_000_000
    t["batch"] = (t["kafka_offset"] // batch_records).astype("int64")
    t["loaded_ns"] = loaded_base + (t["kafka_partition"] * 100 + t["batch"]) * 1_000_000
    trades = t[~t["is_reject"]]
    md = pd.DataFrame(
        {
            "symbol": trades["symbol"],
            "timestamp_ns": trades["timestamp_ns"],
            "price": trades["price"],
            "size": trades["size"].astype("int64"),
            "exchange": trades["exchange_id"],
            "trade_id": trades["kafka_offset"].astype(str),
            "trf_id": 0,
            "tape": 1,
            "conditions": trades["conditions"],
            "sequence_number": trades["kafka_offset"],
            "trf_timestamp_ns": pd.array([None] * len(trades), dtype="Int64"),
            "trade_date": trades["trade_date"],
            "in_regular_hours": trades["in_regular_hours"],
            "ns_from_open": trades["ns_from_open"],
            "source": "ws",
            "receipt_ns": trades["timestamp_ns"] + 1_500_000,
            "kafka_ts_ns": trades["timestamp_ns"] + 2_500_000,
            "loaded_ns": trades["loaded_ns"],
            "kafka_topic": TOPIC,
            "kafka_partition": trades["kafka_partition"],
            "kafka_offset": trades["kafka_offset"],
        }
    )
    bad = t[t["is_reject"]]
    rejects = pd.DataFrame(
        {
            "stage": "ingest",
            "reason": [
                "non-positive price" if i % 2 else "unparsable value" for i in range(len(bad))
            ],
            "raw": [
                json.dumps({"sym": s, "p": -1.0 if i % 2 else "??", "note": "'; DROP TABLE x;--"})
                for i, s in enumerate(bad["symbol"])
            ],
            "symbol": [s if i % 2 else None for i, s in enumerate(bad["symbol"])],
            "receipt_ns": bad["timestamp_ns"] + 1_500_000,
            "kafka_topic": TOPIC,
            "kafka_partition": bad["kafka_partition"],
            "kafka_offset": bad["kafka_offset"],
            "loaded_ns": bad["loaded_ns"],
        }
    )
    groups = t.groupby(["kafka_partition", "batch"], sort=True)
    ledger_rows = []
    for i, ((part, _batch), g) in enumerate(groups):
        good = g[~g["is_reject"]]
        failed = i == 1  # one batch with a failed expectation, as the gate records it
        ledger_rows.append(
            {
                "kafka_topic": TOPIC,
                "kafka_partition": int(part),
                "start_offset": int(g["kafka_offset"].min()),
                "stop_offset": int(g["kafka_offset"].max()) + 1,
                "n_messages": len(g),
                "n_trades": len(good),
                "n_duplicates": 0,
                "n_rejects": int(g["is_reject"].sum()),
                "n_gaps": 0,
                "min_timestamp_ns": int(good["timestamp_ns"].min()),
                "max_timestamp_ns": int(good["timestamp_ns"].max()),
                "quality_passed": not failed,
                "quality_summary": json.dumps(
                    {"failed": ["expect_column_values_to_be_between(size)"], "unexpected": 3}
                )
                if failed
                else None,
                "run_id": f"ingest-{part}-{i}",
                "committed_ns": int(g["loaded_ns"].max()),
            }
        )
    # One reconnect of the second symbol's subscription on the last day: 40 s missed. The
    # gap record is the last record of its partition, loaded by that partition's last batch
    # (as ingest loads it: inside a ledger range, counted in the batch's n_gaps).
    gap_part = int(t["kafka_partition"].iloc[0])
    gap_offset = int(t.loc[t["kafka_partition"] == gap_part, "kafka_offset"].max()) + 1
    last_row = max(
        (r for r in ledger_rows if r["kafka_partition"] == gap_part),
        key=lambda r: r["start_offset"],
    )
    last_row.update(stop_offset=gap_offset + 1, n_messages=last_row["n_messages"] + 1, n_gaps=1)
    ledger = pd.DataFrame(ledger_rows)
    sym = str(t["symbol"].iloc[len(t) // 2])
    last_day = t[t["trade_date"] == t["trade_date"].max()]
    mid = int(last_day["timestamp_ns"].iloc[len(last_day) // 2])
    gaps = pd.DataFrame(
        {
            "subscription": [f"T.{sym}"],
            "last_before_ns": [mid],
            "first_after_ns": [mid + 40_000_000_000],
            "reason": ["reconnect after watchdog timeout"],
            "detected_ns": [mid + 41_000_000_000],
            "kafka_topic": [TOPIC],
            "kafka_partition": [gap_part],
            "kafka_offset": [gap_offset],
            "loaded_ns": [loaded_base + 10**9],
        }
    )
    del np
    return md.reset_index(drop=True), ledger, rejects, gaps


# --- the request mix ----------------------------------------------------------------------

# (tool, weight, arguments variants); {s} is replaced by each symbol in turn. Weights model
# an agent fleet: mostly "what is new" and recent signals, some drill-down and quality.
MIX: tuple[tuple[str, int, tuple[dict[str, Any], ...]], ...] = (
    ("get_real_time_data", 25, ({"symbols": ["{s}"]}, {"symbols": ["XXX", "AAA", "BBB", "CCC"]})),
    (
        "get_trading_signals",
        20,
        (
            {"symbol": "{s}", "signal_type": "BUY", "limit": 20},
            {"symbol": "{s}", "signal_type": "SELL", "limit": 20},
            {"symbol": "{s}", "signal_type": "ALL", "limit": 50, "hours_back": 1},
        ),
    ),
    (
        "get_enriched_data",
        20,
        (
            {"symbol": "{s}", "limit": 50},
            {"symbol": "{s}", "limit": 50, "start": "2018-01-03T10:00", "end": "2018-01-03T10:15"},
        ),
    ),
    ("get_jump_events", 10, ({"symbol": "{s}", "limit": 20},)),
    ("get_symbol_metrics", 10, ({"symbol": "{s}"},)),
    ("get_data_quality", 10, ({"symbol": "{s}"}, {"symbol": "{s}", "day": "2018-01-02"})),
    ("list_symbols", 5, ({},)),
)


def mix_calls(symbols: Sequence[str], seed: int = 11) -> list[tuple[str, dict[str, Any]]]:
    """Return a shuffled list of (tool, arguments) whose frequencies follow :data:`MIX`."""
    import random

    calls: list[tuple[str, dict[str, Any]]] = []
    for tool, weight, variants in MIX:
        expanded = [
            json.loads(json.dumps(v).replace("{s}", sym)) for v in variants for sym in symbols
        ]
        calls.extend((tool, expanded[i % len(expanded)]) for i in range(weight * 4))
    random.Random(seed).shuffle(calls)  # noqa: S311 - a reproducible order, not a secret
    return calls


PROTOCOLS: tuple[str, ...] = ("2026-07-28", "2025-11-25", "plain")


def encode_call(
    host: str,
    port: int,
    token: str | None,
    tool: str,
    args: dict[str, Any],
    rid: int,
    protocol: str = "2026-07-28",
) -> bytes:
    """Return one HTTP/1.1 POST calling ``tool``, ready to write.

    ``2026-07-28``: a self-contained MCP request (what the SDK's ``Client`` sends);
    ``2025-11-25``: a handshake-era JSON-RPC request, served statelessly; ``plain``: the
    original design's ``{"method", "params", "id"}`` request.
    """
    headers = "Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
    if protocol == "plain":
        payload: dict[str, Any] = {"method": tool, "params": args, "id": rid}
    else:
        params: dict[str, Any] = {"name": tool, "arguments": args}
        if protocol == "2026-07-28":
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": protocol,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
            headers += (
                f"MCP-Protocol-Version: {protocol}\r\nMcp-Method: tools/call\r\n"
                f"Mcp-Name: {tool}\r\n"
            )
        else:
            headers += f"MCP-Protocol-Version: {protocol}\r\n"
        payload = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}
    body = json.dumps(payload, separators=(",", ":")).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


# --- the load generator (a separate process) -------------------------------------------------


def loadgen_main(spec_path: Path) -> dict[str, Any]:
    """Drive the server as the spec says and return the raw measurements.

    One asyncio connection per client (uvloop, raw HTTP/1.1 keep-alive, requests encoded
    in advance, responses parsed by Content-Length only), so the generator spends a few
    tens of microseconds per request; its own CPU time is measured and reported.
    """
    import asyncio
    import time

    import uvloop

    spec = json.loads(spec_path.read_text())
    host, port = spec["host"], int(spec["port"])
    tokens: list[str | None] = spec["tokens"] or [None] * spec["clients"]
    calls = [(t, a) for t, a in spec["calls"]]
    clients = int(spec["clients"])
    plain = spec["protocol"] == "plain"
    per_client: list[list[tuple[str, bytes]]] = []
    for c in range(clients):
        token = tokens[c % len(tokens)]
        reqs = [
            (tool, encode_call(host, port, token, tool, args, i + 1, spec["protocol"]))
            for i, (tool, args) in enumerate(calls[c:] + calls[:c])
        ]
        per_client.append(reqs)

    class Conn(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = bytearray()
            self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            i = head.find(b"content-length:")
            if i < 0:
                length = 0
            else:
                j = head.find(b"\r\n", i)
                length = int(head[i + 15 : j if j > 0 else None])
            if len(self.buf) < end + 4 + length:
                return
            status = int(self.buf[9:12])
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((status, body))

        def connection_lost(self, exc: Exception | None) -> None:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(ConnectionError("connection lost"))

    results: dict[str, Any] = {}

    async def one_phase(mode: str, duration_s: float, rate: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        lat: dict[str, list[int]] = {}
        errors: dict[str, int] = {}
        conns: list[Conn] = []
        for _ in range(clients):
            _, proto = await loop.create_connection(Conn, host, port)
            conns.append(proto)
        t_start = time.perf_counter()
        deadline = t_start + duration_s

        async def send(conn: Conn, tool: str, req: bytes, t_ref: float) -> None:
            conn.waiter = loop.create_future()
            assert conn.transport is not None
            conn.transport.write(req)
            try:
                status, body = await conn.waiter
            except ConnectionError:
                errors[tool] = errors.get(tool, 0) + 1
                return
            lat.setdefault(tool, []).append(int((time.perf_counter() - t_ref) * 1e9))
            ok = b'"result":' in body if plain else b'"isError":false' in body
            if status != 200 or not ok:
                errors[tool] = errors.get(tool, 0) + 1

        async def closed(c: int) -> None:
            reqs, conn, k = per_client[c], conns[c], 0
            while time.perf_counter() < deadline:
                tool, req = reqs[k % len(reqs)]
                k += 1
                await send(conn, tool, req, time.perf_counter())

        async def opened(c: int) -> None:
            # Client c owns schedule slots c, c + clients, ...; latency counts from the
            # slot's time, so a late send (queueing) is charged, not hidden.
            reqs, conn, k = per_client[c], conns[c], 0
            slot = c
            while True:
                t_sched = t_start + slot / rate
                if t_sched >= deadline:
                    return
                delay = t_sched - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tool, req = reqs[k % len(reqs)]
                k += 1
                await send(conn, tool, req, t_sched)
                slot += clients

        cpu0 = time.process_time()
        await asyncio.gather(*((closed if mode == "closed" else opened)(c) for c in range(clients)))
        wall = time.perf_counter() - t_start
        cpu = time.process_time() - cpu0
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "latency_ns": lat,
            "errors": errors,
            "requests": sum(len(v) for v in lat.values()),
        }

    async def main() -> None:
        for phase in spec["phases"]:
            results[phase["name"]] = await one_phase(
                phase["mode"], phase["duration_s"], phase["rate"]
            )

    uvloop.run(main())
    return results


# --- the benchmark -----------------------------------------------------------------------------


def measure_queries(
    path: Path, symbols: Sequence[str], repeat: int = 300
) -> dict[str, dict[str, float]]:
    """Time each tool's read of the serving view (p50/p99 in ms), in this process."""
    import tempfile

    from mcp_server.tools import ToolService
    from pipeline.metrics import sample_quantile
    from pipeline.serving.store_view import StorePort

    with tempfile.TemporaryDirectory(prefix="bench-mcp-store-") as store:
        port = StorePort(path, store=Path(store), materialize="inline")
        port.start()
        try:
            view = port.view()
            svc = ToolService()
            calls = mix_calls(symbols)
            by_tool: dict[str, list[float]] = {}
            for k in range(repeat * 7):
                tool, a = calls[k % len(calls)]
                ans = svc.call(view, tool, a)
                if k >= len(calls):  # first pass warms the caches
                    by_tool.setdefault(tool, []).append(ans.query_s * 1e3)
        finally:
            port.close()
    return {
        t: {
            "p50_ms": round(sample_quantile(v, 0.5), 3),
            "p99_ms": round(sample_quantile(v, 0.99), 3),
            "n": len(v),
        }
        for t, v in sorted(by_tool.items())
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options."""
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests/s")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the server")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="2026-07-28",
        help="how requests are sent: MCP 2026-07-28 (default), MCP 2025-11-25 (stateless "
        "JSON-RPC), or the original design's plain requests",
    )
    parser.add_argument(
        "--warehouse", type=Path, default=None, help="use this warehouse (default: write one)"
    )


def start_server(
    warehouse: Path, workdir: Path, n_clients: int, workers: int, *, log_level: str | None = None
) -> tuple[Any, list[str], Path]:
    """Start ``microstructure serve-mcp --http`` on ``warehouse`` for a benchmark.

    One bearer token per simulated client (a tokens file), any free port (announced in the
    log), the per-client rate limit raised far above what a client sends (the limiter still
    runs on every request: the bench measures capacity), MCP settings of the caller's
    environment left out. The caller waits for the port and stops it with
    :func:`stop_server`.

    Returns
    -------
    tuple[subprocess.Popen, list[str], Path]
        The process (its own session), the tokens, the log file.
    """
    import os
    import secrets
    import subprocess
    import sys

    tokens = [secrets.token_urlsafe(24) for _ in range(n_clients)]
    tokens_file = workdir / "tokens"
    tokens_file.write_text("".join(f"agent-{i:03d}:{t}\n" for i, t in enumerate(tokens)))
    tokens_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "MICROSTRUCTURE_MCP_"))}
    env.update(
        {
            "MICROSTRUCTURE_WAREHOUSE_URL": f"duckdb:///{warehouse}",
            "MICROSTRUCTURE_MCP_TOKENS_FILE": str(tokens_file),
            "MICROSTRUCTURE_MCP_RATE": "10000",
            "MICROSTRUCTURE_MCP_BURST": "10000",
        }
    )
    if log_level is not None:
        env["MICROSTRUCTURE_LOG_LEVEL"] = log_level
    log_path = workdir / "server.log"
    command = [
        sys.executable,
        "-m",
        "mcp_server",
        "--http",
        "--port",
        "0",
        "--workers",
        str(workers),
    ]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
        )
    return proc, tokens, log_path


def stop_server(proc: Any, timeout_s: float = 30.0) -> None:
    """Interrupt a server of :func:`start_server` and its workers; kill them if they linger."""
    import os
    import signal
    import subprocess

    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its figures (one JSON object with --json)."""
    import logging
    import os
    import subprocess
    import sys
    import tempfile
    import time

    import httpx

    from pipeline import processes
    from pipeline.metrics import sample_quantile

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per /health poll otherwise
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp_s:
        tmp = Path(tmp_s)
        if args.warehouse is None:
            _note(args, "writing the bench warehouse (8 symbol-days, ~309,000 trades) ...")
            facts = write_sample_warehouse(tmp / "warehouse.duckdb")
            warehouse, symbols = facts.path, list(facts.symbols)
        else:
            warehouse, symbols = args.warehouse, list(DEFAULT_SYMBOLS)
        server, tokens, log_path = start_server(warehouse, tmp, args.clients, args.workers)
        try:
            port = wait_port(log_path, server, timeout_s=60)
            _wait_healthy(httpx, port, timeout_s=120)
            _note(
                args,
                f"server up on port {port} with {args.workers} worker(s); load generator starting",
            )
            calls = mix_calls(symbols)
            warm = {"name": "warmup", "mode": "closed", "duration_s": 3.0, "rate": 0}
            sat = {"name": "saturation", "mode": "closed", "duration_s": args.duration, "rate": 0}
            lat = {
                "name": "latency",
                "mode": "open",
                "duration_s": args.duration,
                "rate": args.rate,
            }
            results: dict[str, Any] = {}
            server_cpu: dict[str, float] = {}
            machine_cpu: dict[str, float] = {}
            for phase in (warm, sat, lat):
                spec = {
                    "host": "127.0.0.1",
                    "port": port,
                    "clients": args.clients,
                    "tokens": tokens,
                    "calls": calls,
                    "protocol": args.protocol,
                    "phases": [phase],
                }
                spec_path = tmp / f"spec-{phase['name']}.json"
                spec_path.write_text(json.dumps(spec))
                procs = processes.tree(server.pid)
                cpu0, busy0 = processes.cpu_s(procs), processes.machine_busy_s()
                t0 = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-m", "pipeline.bench.mcp_http", "loadgen", str(spec_path)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                wall = time.perf_counter() - t0
                server_cpu[phase["name"]] = (processes.cpu_s(procs) - cpu0) / wall
                machine_cpu[phase["name"]] = (processes.machine_busy_s() - busy0) / wall
                results.update(json.loads(out.stdout))
        finally:
            stop_server(server, timeout_s=20)
        queries = measure_queries(warehouse, symbols)
        audit_lines = sum(1 for line in log_path.read_text().splitlines() if "mcp.audit" in line)

    sat_r, lat_r = results["saturation"], results["latency"]
    all_lat = [v / 1e6 for vs in lat_r["latency_ns"].values() for v in vs]
    report = {
        "saturation_requests_per_s": round(sat_r["requests"] / sat_r["wall_s"], 1),
        "p50_ms": round(sample_quantile(all_lat, 0.5), 3),
        "p99_ms": round(sample_quantile(all_lat, 0.99), 3),
        "max_ms": round(max(all_lat), 3) if all_lat else None,
        "per_tool": {
            t: {
                "p50_ms": round(sample_quantile([x / 1e6 for x in v], 0.5), 3),
                "p99_ms": round(sample_quantile([x / 1e6 for x in v], 0.99), 3),
            }
            for t, v in sorted(lat_r["latency_ns"].items())
        },
        "latency_phase_requests_per_s": round(lat_r["requests"] / lat_r["wall_s"], 1),
        "errors": {"saturation": sat_r["errors"], "latency": lat_r["errors"]},
        "query_ms": queries,
        "saturation_p50_ms": round(
            sample_quantile([v / 1e6 for vs in sat_r["latency_ns"].values() for v in vs], 0.5), 3
        ),
        "saturation_p99_ms": round(
            sample_quantile([v / 1e6 for vs in sat_r["latency_ns"].values() for v in vs], 0.99), 3
        ),
        "loadgen_cpu_pct_of_core": {
            "saturation": round(100 * sat_r["cpu_s"] / sat_r["wall_s"], 1),
            "latency": round(100 * lat_r["cpu_s"] / lat_r["wall_s"], 1),
        },
        "server_cpu_pct_of_core": {
            k: round(100 * v, 1) for k, v in server_cpu.items() if k != "warmup"
        },
        # Everything else on the machine during the phase (other users' jobs, the kernel):
        # the server competes with it for the same cores.
        "other_cpu_pct_of_core": {
            k: round(
                100 * (machine_cpu[k] - server_cpu[k] - results[k]["cpu_s"] / results[k]["wall_s"]),
                1,
            )
            for k in ("saturation", "latency")
        },
        "audit_lines": audit_lines,
        "setup": {
            "clients": args.clients,
            "duration_s": args.duration,
            "rate": args.rate,
            "workers": args.workers,
            "protocol": args.protocol,
            "cores": os.cpu_count(),
            "load_generator": "pipeline.bench.mcp_http loadgen: asyncio+uvloop raw HTTP/1.1 "
            "keep-alive, separate process, tools/call requests encoded in advance, "
            "bearer token per client",
            "loadavg_at_end": os.getloadavg(),
        },
    }
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
    return 0


def _note(args: argparse.Namespace, text: str) -> None:
    import sys

    print(text, file=sys.stderr, flush=True)
    del args


def wait_port(log_path: Path, proc: Any, timeout_s: float, poll_s: float = 0.1) -> int:
    """Return the port a server of :func:`start_server` announced in its log.

    Raises
    ------
    RuntimeError
        If the server exited first (with the end of its log).
    TimeoutError
        If no port was announced within ``timeout_s``.
    """
    import re
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(r"listening on https?://[^:]+:(\d+)/mcp", log_path.read_text())
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log_path.read_text()[-2000:]}")
        time.sleep(poll_s)
    raise TimeoutError("the server did not announce its port")


def _wait_healthy(httpx: Any, port: int, timeout_s: float) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the server's snapshot was not ready in time")


def _print_report(r: dict[str, Any]) -> None:
    s = r["setup"]
    print(
        f"MCP over HTTP ({s['protocol']} requests), {s['clients']} clients, "
        f"{s['workers']} worker(s), {s['cores']} cores"
    )
    print(
        f"  saturation (closed loop, {s['duration_s']:g} s): "
        f"{r['saturation_requests_per_s']:.0f} requests/s "
        f"(p50 {r['saturation_p50_ms']} ms, p99 {r['saturation_p99_ms']} ms)"
    )
    print(
        f"  latency at {s['rate']:g} requests/s (open loop): p50 {r['p50_ms']} ms, "
        f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms"
    )
    for tool, v in r["per_tool"].items():
        q = r["query_ms"].get(tool, {})
        print(
            f"    {tool:22s} p50 {v['p50_ms']:7.3f} ms  p99 {v['p99_ms']:7.3f} ms   "
            f"warehouse query p50 {q.get('p50_ms', 0):.3f} ms p99 {q.get('p99_ms', 0):.3f} ms"
        )
    print(f"  errors: {r['errors']}")
    print(
        f"  CPU, % of one core: load generator {r['loadgen_cpu_pct_of_core']}; server "
        f"{r['server_cpu_pct_of_core']}; everything else {r['other_cpu_pct_of_core']}"
    )
    print(f"  load generator: {s['load_generator']}; load average at end {s['loadavg_at_end']}")


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "loadgen":
        print(json.dumps(loadgen_main(Path(sys.argv[2]))))
    else:
        print("usage: python -m pipeline.bench.mcp_http loadgen SPEC.json", file=sys.stderr)
        sys.exit(2)
