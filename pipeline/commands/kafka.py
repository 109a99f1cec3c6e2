"""``microstructure kafka fetch|up|down|status``: the local Kafka broker (or an external cluster).

With ``KAFKA_BOOTSTRAP_SERVERS`` set no local broker is involved: ``up`` only ensures
the topic, ``down`` does nothing, ``status`` describes that cluster.
"""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.settings import Settings


def register(sub: Any) -> None:
    """Add the ``kafka`` subcommand."""
    p = sub.add_parser("kafka", help="local Kafka broker: fetch jars, up, down, status")
    ksub = p.add_subparsers(dest="kafka_action", metavar="ACTION")
    f = ksub.add_parser(
        "fetch", help="download the broker's jars from Maven Central (once; cached)"
    )
    f.set_defaults(func=_fetch)
    u = ksub.add_parser(
        "up", help="start the broker (if local), wait for readiness, ensure the topic"
    )
    u.add_argument("--timeout-s", type=float, default=90.0, help="readiness bound (default 90)")
    u.set_defaults(func=_up)
    d = ksub.add_parser("down", help="stop the local broker (SIGTERM, then SIGKILL after a bound)")
    d.add_argument(
        "--timeout-s", type=float, default=30.0, help="grace before SIGKILL (default 30)"
    )
    d.set_defaults(func=_down)
    s = ksub.add_parser("status", help="bootstrap, pid, topics with partitions and watermarks")
    s.set_defaults(func=_status)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _fetch(args: argparse.Namespace) -> int:
    from pipeline.kafka.broker import LocalBroker

    settings = Settings.from_env()
    broker = LocalBroker.from_settings(settings)
    cached = broker.fetched()
    libs = broker.fetch()
    jars = len(list(libs.glob("*.jar")))
    print(f"Kafka {settings.kafka_version}: {jars} jars in {libs}{' (cached)' if cached else ''}")
    return 0


def _up(args: argparse.Namespace) -> int:
    from pipeline.kafka.broker import LocalBroker, ensure_topic

    settings = Settings.from_env()
    if settings.uses_local_broker:
        broker = LocalBroker.from_settings(settings)
        pid = broker.up(timeout_s=args.timeout_s)
        where = f"{broker.bootstrap} (pid {pid}, log {broker.log_file})"
        print(f"Kafka {settings.kafka_version} running at {where}")
    else:
        print(f"using external Kafka at {settings.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)")
    info = ensure_topic(
        settings.bootstrap_servers,
        settings.topic,
        settings.topic_partitions,
        extra_conf=settings.kafka_extra,
        timeout_s=args.timeout_s,
    )
    verb = "created" if info.created else "exists"
    print(f"topic {info.name}: {info.partitions} partitions ({verb})")
    return 0


def _down(args: argparse.Namespace) -> int:
    from pipeline.kafka.broker import LocalBroker

    settings = Settings.from_env()
    if not settings.uses_local_broker:
        print(f"external Kafka at {settings.bootstrap_servers}: nothing to stop")
        return 0
    stopped = LocalBroker.from_settings(settings).down(timeout_s=args.timeout_s)
    print("Kafka stopped" if stopped else "Kafka was not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    from pipeline.kafka.broker import LocalBroker, cluster_status

    settings = Settings.from_env()
    if settings.uses_local_broker:
        st = LocalBroker.from_settings(settings).status(extra_conf=settings.kafka_extra)
    else:
        st = cluster_status(settings.bootstrap_servers, extra_conf=settings.kafka_extra)
    where = f"pid {st.pid}" if st.pid is not None else "external cluster"
    print(
        f"bootstrap {st.bootstrap}  ({where}, {st.brokers} broker{'s' if st.brokers != 1 else ''})"
    )
    if not st.topics:
        print("no topics")
    for name, parts in st.topics.items():
        total = sum(p.high - p.low for p in parts)
        print(f"topic {name}: {len(parts)} partitions, {total} records retained")
        for p in parts:
            print(f"  partition {p.partition}: low {p.low}  high {p.high}")
    return 0
