"""pipeline.processes: a zombie is gone, a running child is alive, CPU and memory add up."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline import processes
from tests.support.wait import wait_until


def test_running_child_is_alive_and_its_exit_unreaped_is_not() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert processes.alive(child.pid)
        assert processes.command_line(child.pid) == [
            sys.executable,
            "-c",
            "import sys; sys.stdin.read()",
        ]
        assert [p.pid for p in processes.tree(child.pid)] == [child.pid]
        assert processes.rss_mb(processes.tree(child.pid)) > 1.0
        assert child.stdin is not None
        child.stdin.close()  # it exits; nobody has waited for it yet: a zombie
        wait_until(lambda: not processes.alive(child.pid), timeout_s=10.0)
    finally:
        child.wait()
    assert not processes.alive(child.pid)
    assert processes.command_line(child.pid) is None
    assert processes.tree(child.pid) == []


def test_cpu_seconds_grow_with_work() -> None:
    procs = processes.tree(os.getpid())
    before, busy = processes.cpu_s(procs), processes.machine_busy_s()
    sum(i * i for i in range(3_000_000))
    assert processes.cpu_s(procs) > before
    assert processes.machine_busy_s() > busy
