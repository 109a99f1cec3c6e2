"""``microstructure warehouse migrate|info``: the warehouse's schema and what it holds."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.settings import Settings


def register(sub: Any) -> None:
    """Add the ``warehouse`` subcommand."""
    p = sub.add_parser("warehouse", help="warehouse schema (migrate) and contents (info)")
    p.add_argument("--url", help="warehouse URL (default: MICROSTRUCTURE_WAREHOUSE_URL)")
    wsub = p.add_subparsers(dest="warehouse_action", metavar="ACTION")
    m = wsub.add_parser("migrate", help="apply pending sql/migrations, recorded with checksums")
    m.set_defaults(func=_migrate)
    i = wsub.add_parser("info", help="migrations, table sizes, offset ledger, latest signal runs")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=_info)
    _register_backup_restore_retention(wsub)  # issue 6 (pipeline/warehouse/backup.py, retention.py)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _url(args: argparse.Namespace) -> str:
    return str(args.url or Settings.from_env().warehouse_url)


def _migrate(args: argparse.Namespace) -> int:
    from pipeline.warehouse import open_warehouse

    url = _url(args)
    wh = open_warehouse(url)
    applied = wh.migrate()
    for m in applied:
        print(f"applied {m.name}  sha256 {m.checksum[:12]}")
    total = len(wh.applied_migrations())
    print(f"{url}: {total} migrations applied ({len(applied)} now)")
    return 0


def _info(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from datetime import date

    from pipeline.warehouse import open_warehouse
    from pipeline.warehouse.migrate import discover

    url = _url(args)
    wh = open_warehouse(url, read_only=True)
    applied = wh.applied_migrations()
    pending = [
        m.name for m in discover(wh.dialect) if m.version not in {a.version for a in applied}
    ]
    counts = wh.table_counts() if applied else {}
    progress = wh.partition_progress() if applied else []
    runs = (
        wh.query_frame("signal_runs_latest", (date(1970, 1, 1), date(9999, 12, 31)))
        if applied
        else None
    )
    if args.json:
        print(
            json.dumps(
                {
                    "url": url,
                    "migrations": [a.name for a in applied],
                    "pending": pending,
                    "tables": counts,
                    "partitions": [asdict(p) for p in progress],
                    "signal_days": [] if runs is None else [str(d) for d in runs["date"]],
                }
            )
        )
        return 0
    print(f"warehouse {url}")
    print(f"  migrations: {len(applied)} applied, {len(pending)} pending {pending or ''}".rstrip())
    for table, n in counts.items():
        print(f"  {table:<22} {n:>12,}")
    if progress:
        print("  offset ledger (next offset = first not loaded):")
        for p in progress:
            print(
                f"    {p.topic}:{p.partition}  next {p.next_offset:,}  batches {p.n_batches:,}  "
                f"trades {p.n_trades:,}  duplicates {p.n_duplicates:,}  rejects {p.n_rejects:,}"
            )
    if runs is not None and len(runs):
        print("  signal days (latest run):")
        for r in runs.to_dict("records"):
            state = "final" if r["final"] else "provisional"
            print(
                f"    {str(r['date'])[:10]}  {r['n_trades']:,} trades  {r['n_symbols']} symbols  "
                f"{state}  kernel {r['kernel_version']}"
            )
    return 0


# --- issue 6: backup, restore, retention (logic in pipeline/warehouse/backup.py, retention.py)


def _register_backup_restore_retention(wsub: Any) -> None:
    b = wsub.add_parser("backup", help="consistent snapshot of the DuckDB warehouse (Vertica: vbr)")
    b.add_argument("dest", help="backup file to create (a .manifest.json is written beside it)")
    b.set_defaults(func=_backup)
    r = wsub.add_parser("restore", help="replace the DuckDB warehouse with a backup (offline)")
    r.add_argument("backup", help="file written by `warehouse backup`")
    r.add_argument("--force", action="store_true", help="replace an existing warehouse file")
    r.set_defaults(func=_restore)
    t = wsub.add_parser("retention", help="drop days older than MICROSTRUCTURE_RETAIN_*_DAYS")
    t.add_argument("--today", help="first kept day, YYYY-MM-DD (default: today, New York)")
    t.set_defaults(func=_retention)


def _backup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline.warehouse.backup import backup_warehouse

    manifest = backup_warehouse(_url(args), Path(args.dest))
    print(manifest.to_json())
    return 0


def _restore(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline.warehouse.backup import restore_warehouse

    manifest = restore_warehouse(_url(args), Path(args.backup), force=args.force)
    print(f"restored {args.backup}: next offsets {manifest.next_offsets}")
    return 0


def _retention(args: argparse.Namespace) -> int:
    from datetime import date, datetime

    from pipeline.nytime import NEW_YORK
    from pipeline.warehouse import open_warehouse
    from pipeline.warehouse.retention import RetentionPolicy, apply_retention

    settings = Settings.from_env()
    today = date.fromisoformat(args.today) if args.today else datetime.now(NEW_YORK).date()
    result = apply_retention(
        open_warehouse(_url(args)), RetentionPolicy.from_settings(settings), today
    )
    for table, n in sorted(result.rows_dropped.items()):
        print(f"{table}: dropped {n} rows before {result.cutoffs[table]}")
    if not result.cutoffs:
        print("no retention configured (MICROSTRUCTURE_RETAIN_RAW_DAYS / _SIGNAL_DAYS): kept all")
    return 0
