"""A real ``microstructure serve-mcp --http`` process on an ephemeral port, for tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.wait import wait_until

_LISTENING = re.compile(r"listening on (https?)://[^ ]+:(\d+)/mcp")


@dataclass(frozen=True)
class RunningServer:
    """Where a started server listens and where it logs."""

    scheme: str
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def mcp(self) -> str:
        return f"{self.base}/mcp"

    def log_text(self) -> str:
        return self.log.read_text()


@contextmanager
def serve_http(
    warehouse: Path,
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[RunningServer]:
    """Start the server, wait for its port and a ready snapshot, stop it afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "server.log"
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "MICROSTRUCTURE_MCP_"))
    }
    child_env.update({"MICROSTRUCTURE_WAREHOUSE_URL": f"duckdb:///{warehouse}", **(env or {})})
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mcp_server", "--http", "--port", "0", *args],
            env=child_env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:

        def announced() -> re.Match[str] | None:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
            return _LISTENING.search(log.read_text())

        m = wait_until(announced, timeout_s=60, what="the server's listening line")
        assert m is not None
        server = RunningServer(m.group(1), int(m.group(2)), log)

        def healthy() -> bool:
            try:
                r = httpx.get(f"{server.base}/health", verify=False, timeout=5)
            except httpx.HTTPError:
                return False
            return r.status_code == 200

        wait_until(healthy, timeout_s=60, what="a ready snapshot (/health 200)")
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# A writer in another process: optionally commit a batch as a loader does (trades of a new
# symbol and their ledger row, one transaction), then hold the file open (DuckDB's
# exclusive lock) until a line arrives on stdin.
WRITER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
if sys.argv[2] == "add-symbol":
    (p, start) = con.execute(
        "SELECT kafka_partition, max(stop_offset) FROM kafka_offsets GROUP BY 1 ORDER BY 1 "
        "LIMIT 1"
    ).fetchall()[0]
    con.execute("BEGIN")
    con.execute(
        "INSERT INTO market_data SELECT * REPLACE ('NEW' AS symbol, ? AS kafka_partition, "
        "? + row_number() OVER () - 1 AS kafka_offset) FROM market_data WHERE symbol = 'XXX' "
        "LIMIT 7",
        [p, start],
    )
    con.execute(
        "INSERT INTO kafka_offsets (kafka_topic, kafka_partition, start_offset, stop_offset, "
        "n_messages, n_trades, n_duplicates, n_rejects, n_gaps, quality_passed, committed_ns) "
        "VALUES ('polygon-market-data', ?, ?, ?, 7, 7, 0, 0, 0, true, "
        "epoch_ns(current_timestamp))",
        [p, start, start + 7],
    )
    con.execute("COMMIT")
print("holding", flush=True)
sys.stdin.readline()
con.close()
"""


@contextmanager
def writer(path: Path, action: str = "hold") -> Iterator[None]:
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), action],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin
        assert proc.stdout
        assert proc.stderr
        try:
            line = proc.stdout.readline()
            assert line.strip() == "holding", proc.stderr.read()
            yield
        finally:
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(timeout=30)
        assert proc.returncode == 0, proc.stderr.read()
