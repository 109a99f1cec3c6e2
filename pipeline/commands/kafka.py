"""``microstructure kafka fetch|up|down|status|acknowledge-topic``: the broker and the topic.

With ``KAFKA_BOOTSTRAP_SERVERS`` set no local broker is involved: ``up`` only ensures
the topic, ``down`` does nothing, ``status`` describes that cluster.

``acknowledge-topic`` is the operator's answer to a recreated topic (the loader stopped
with ``TopicRecreatedError``): it records in the warehouse ledger that Kafka's current
topic id is the topic from now on, loading from offset 0 (or ``--start-offset``), with the
old ledger kept as history (:mod:`pipeline.warehouse.topic_identity`).
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
    a = ksub.add_parser(
        "acknowledge-topic",
        help="after a topic was deleted and recreated: load the new topic from offset 0",
    )
    a.add_argument("--topic", default=None, help="topic name (default MICROSTRUCTURE_TOPIC)")
    a.add_argument(
        "--topic-id",
        default=None,
        help="the id the loader's error named; refused if Kafka's topic has another by now",
    )
    a.add_argument(
        "--start-offset",
        type=int,
        default=0,
        help="first offset to load in every partition (default 0: everything the topic holds)",
    )
    a.set_defaults(func=_acknowledge)
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


def _acknowledge(args: argparse.Namespace) -> int:
    from pipeline.errors import KafkaError, OffsetError
    from pipeline.kafka.broker import topic_id
    from pipeline.kafka.consumer import watermarks
    from pipeline.warehouse import open_warehouse

    settings = Settings.from_env()
    topic = args.topic or settings.topic
    bootstrap, extra = settings.bootstrap_servers, settings.kafka_extra
    current = topic_id(bootstrap, topic, extra_conf=extra)
    if current is None:
        raise KafkaError(
            f"Kafka at {bootstrap} reports no topic id for {topic!r} (a cluster before 2.8): "
            "recreations cannot be told apart there, so there is nothing to acknowledge"
        )
    if args.topic_id and args.topic_id != current:
        raise KafkaError(
            f"topic {topic!r} has id {current} now, not {args.topic_id}: it changed again "
            "since the loader's error; check what happened, then run this again"
        )
    marks = watermarks(bootstrap, topic, 10.0, extra)
    start: int = args.start_offset
    # The offsets below the low watermark are gone: starting there would fail every run,
    # and starting past the high watermark would skip offsets not yet written.
    outside = {p: lh for p, lh in marks.items() if not lh[0] <= start <= lh[1]}
    if outside:
        where = ", ".join(f"partition {p}: [{lo}, {hi}]" for p, (lo, hi) in sorted(outside.items()))
        raise OffsetError(
            f"--start-offset {start} is outside the retained offsets of {topic!r} ({where}); "
            "offsets below a low watermark have expired"
        )
    wh = open_warehouse(settings.warehouse_url)
    wh.migrate()
    before = wh.topic_incarnation(topic)
    after = wh.acknowledge_topic(topic, current, dict.fromkeys(marks, start))
    if after == before:
        print(f"topic {topic}: the ledger already loads topic id {current}; nothing to do")
        return 0
    was = f" (was {before.topic_id or 'unrecorded'} in epoch {before.epoch})" if before else ""
    print(f"topic {topic}: topic id {current} acknowledged as epoch {after.epoch}{was}")
    for p, (_low, high) in sorted(marks.items()):
        print(f"  partition {p} from offset {start} (high watermark {high})")
    print(
        "the ingest sensor loads it from there on its next tick; the old ledger rows stay "
        "as history and trades already stored are not stored twice"
    )
    return 0
