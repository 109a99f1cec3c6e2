"""Facts about operating-system processes, through psutil: one place, no /proc parsing.

Used where the platform supervises or measures processes: the local Kafka broker's JVM,
the ingest command's run workers, and the benchmarks' CPU and memory figures. A process
that has exited but is not reaped yet (a zombie) still has a pid and answers signal 0;
here it counts as gone, since it will never do anything again.
"""

from __future__ import annotations

from collections.abc import Sequence

import psutil


def alive(pid: int) -> bool:
    """Return True if ``pid`` is a running process (a zombie is not).

    Parameters
    ----------
    pid
        The process id.

    Returns
    -------
    bool
        False if no such process exists or it has exited and awaits reaping. A process
        this user may not inspect counts as alive (it exists).
    """
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def command_line(pid: int) -> list[str] | None:
    """Return the arguments ``pid`` was started with, None if it is gone or hidden.

    Parameters
    ----------
    pid
        The process id.

    Returns
    -------
    list[str] or None
        ``argv`` of the process; None when it does not exist or may not be read.
    """
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def tree(pid: int) -> list[psutil.Process]:
    """Return ``pid`` and all its descendants (empty if ``pid`` is gone).

    Parameters
    ----------
    pid
        The root process.

    Returns
    -------
    list[psutil.Process]
        The root first, then its children, recursively.
    """
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_s(processes: Sequence[psutil.Process], *, reaped_children: bool = False) -> float:
    """Return the user + system CPU seconds of ``processes``, skipping those that exited.

    Parameters
    ----------
    processes
        From :func:`tree` (taken once, so a later sum covers the same processes).
    reaped_children
        Also count the CPU of their children that exited and were waited for.

    Returns
    -------
    float
        Seconds of CPU, all threads.
    """
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
        if reaped_children:
            total += t.children_user + t.children_system
    return total


def rss_mb(processes: Sequence[psutil.Process]) -> float:
    """Return the summed resident memory of ``processes`` in MiB, skipping those that exited.

    Parameters
    ----------
    processes
        From :func:`tree`.

    Returns
    -------
    float
        Resident set size, MiB.
    """
    total = 0
    for p in processes:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def machine_busy_s() -> float:
    """Return the CPU seconds the whole machine has spent busy since boot (all cores).

    Returns
    -------
    float
        Every CPU time except idle and I/O wait.
    """
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)
