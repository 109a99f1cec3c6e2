"""Prometheus metrics of the platform's services: one registry, one naming rule, one endpoint.

Names read ``microstructure_<service>_<what>_<unit>`` (:func:`metric_name`): counters end
in ``_total``, times in ``_seconds``, sizes in ``_bytes`` or a count noun
(``_frames``, ``_messages``). Each service adds its own collector to :data:`REGISTRY`
(or to a private registry in tests) and serves it with :func:`serve_metrics`, bound to
127.0.0.1 by default: metrics name symbols and hosts, so they are not published on
every interface unless asked.

Hot paths never call into ``prometheus_client``: a counter increment there takes a lock
and costs about as much as parsing a trade. Services keep plain integer counters and
:class:`FastHistogram` buckets, and a :class:`~prometheus_client.registry.Collector`
reads them when Prometheus scrapes (reading an int another thread increments is safe
under the GIL; a scrape may see a histogram mid-update, off by the one observation
being made).

The streamer's metrics (service ``stream``) are :class:`StreamMetrics`; the streamer
documents which of its counters each one reads. The batch half of the pipeline (Dagster's
short-lived microbatch and signals runs) is measured from what it stored by
``microstructure metrics-exporter``: :class:`PipelineMetrics` (services ``trade``,
``ingest``, ``feed``, ``signals``, ``dagster``, ``exporter``; docs/observability.md). The
MCP server's own metrics live in ``mcp_server/telemetry.py`` under the same scheme.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

import numpy as np
import numpy.typing as npt
from prometheus_client import (
    REGISTRY as _DEFAULT_REGISTRY,  # noqa: F401 - re-exported for services that want it
)
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from pipeline.errors import ConfigError

PREFIX = "microstructure"

REGISTRY = CollectorRegistry(auto_describe=True)
"""The process-wide registry every service of the platform adds its collectors to."""
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Latency buckets in seconds: sub-millisecond resolution where the Kafka ack lives,
# then up to the minutes a broker outage can hold a message.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


def metric_name(service: str, what: str, unit: str) -> str:
    """Return ``microstructure_<service>_<what>_<unit>``.

    Parameters
    ----------
    service
        The service (``stream``, ``ingest``, ``mcp``, ...).
    what
        What is measured, snake case (``events_in``, ``receipt_to_ack``).
    unit
        ``total`` for counters, ``seconds``, ``bytes`` or a count noun.

    Returns
    -------
    str
        The metric name.

    Raises
    ------
    ConfigError
        If a part is empty or not snake case.
    """
    for part in (service, what, unit):
        if not part or not part.replace("_", "").isalnum() or part != part.lower():
            raise ConfigError(f"metric name part {part!r} must be non-empty lower snake case")
    return f"{PREFIX}_{service}_{what}_{unit}"


class FastHistogram:
    """Bucket counts of nanosecond durations, cheap to observe (one bisect, no lock).

    Parameters
    ----------
    bounds_s
        Upper bounds of the buckets in seconds (ascending); +Inf is implicit.
    """

    __slots__ = ("_bounds_ns", "bounds_s", "count", "counts", "sum_ns")

    def __init__(self, bounds_s: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        if list(bounds_s) != sorted(bounds_s) or not bounds_s:
            raise ConfigError(f"histogram bounds {bounds_s!r} must be ascending and non-empty")
        self.bounds_s = tuple(bounds_s)
        self._bounds_ns = [round(b * 1e9) for b in bounds_s]
        self.counts = [0] * (len(bounds_s) + 1)
        self.sum_ns = 0
        self.count = 0

    def observe_ns(self, value_ns: int) -> None:
        """Add one duration (ns); negative values (clock skew) count in the first bucket."""
        self.counts[bisect.bisect_left(self._bounds_ns, value_ns)] += 1
        self.sum_ns += value_ns
        self.count += 1

    def observe_many_ns(
        self, values_ns: npt.NDArray[np.int64], weights: npt.NDArray[np.int64] | None = None
    ) -> None:
        """Add many durations (ns) at once, each counted ``weights[i]`` times (default 1).

        Same buckets as :meth:`observe_ns` (a value equal to a bound falls in that bound's
        bucket); used by exporters that measure whole microbatches from stored stamps.
        """
        if values_ns.shape[0] == 0:
            return
        w = np.ones(values_ns.shape[0], dtype=np.int64) if weights is None else weights
        idx = np.searchsorted(np.asarray(self._bounds_ns, dtype=np.int64), values_ns, side="left")
        for i, n in enumerate(np.bincount(idx, weights=w, minlength=len(self.counts)).tolist()):
            self.counts[i] += round(n)
        # float: a replayed day's SIP stages are ~1e17 ns each, and their product with a
        # weight overflows int64.
        self.sum_ns += round(float(np.dot(values_ns.astype(np.float64), w.astype(np.float64))))
        self.count += int(w.sum())

    def family(self, name: str, documentation: str, labels: dict[str, str] | None = None) -> Metric:
        """Return the histogram as a Prometheus metric family (seconds)."""
        fam = HistogramMetricFamily(
            name, documentation, labels=list(labels) if labels else None, unit=""
        )
        self.add_to(fam, labels)
        return fam

    def add_to(self, fam: HistogramMetricFamily, labels: dict[str, str] | None = None) -> None:
        """Add this histogram's sample set to ``fam`` under ``labels``."""
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds_s, self.counts, strict=False):
            running += n
            cumulative.append((repr(bound), float(running)))
        running += self.counts[-1]
        cumulative.append(("+Inf", float(running)))
        fam.add_metric(
            list(labels.values()) if labels else [], cumulative, sum_value=self.sum_ns / 1e9
        )

    def quantile_s(self, q: float) -> float | None:
        """Return the upper bound of the bucket holding quantile ``q`` (0-1), None if empty."""
        total = sum(self.counts)
        if total == 0:
            return None
        rank = q * total
        running = 0
        for bound, n in zip((*self.bounds_s, float("inf")), self.counts, strict=True):
            running += n
            if running >= rank:
                return bound
        return float("inf")


@dataclass
class LatencyHistograms:
    """SIP -> receipt, receipt -> Kafka ack and SIP -> ack histograms per event kind.

    A :class:`~pipeline.kafka.producer.LatencySink` (``record_ack``) fed from the producer's
    delivery-report thread, and ``observe_sip_to_receipt`` fed from the parser.
    """

    sip_to_receipt: dict[str, FastHistogram] = field(default_factory=lambda: {})
    receipt_to_ack: dict[str, FastHistogram] = field(default_factory=lambda: {})
    sip_to_ack: dict[str, FastHistogram] = field(default_factory=lambda: {})
    acked: Counter[str] = field(default_factory=lambda: Counter[str]())
    on_ack: Callable[[str, int | None, int, int], None] | None = None

    @staticmethod
    def _get(table: dict[str, FastHistogram], kind: str) -> FastHistogram:
        h = table.get(kind)
        if h is None:
            h = table[kind] = FastHistogram()
        return h

    def observe_sip_to_receipt(self, kind: str, value_ns: int) -> None:
        """Add one SIP -> receipt duration."""
        self._get(self.sip_to_receipt, kind).observe_ns(value_ns)

    def record_ack(
        self, kind: str, sip_ns: int | None, receipt_ns: int, ack_ns: int, count: int = 1
    ) -> None:
        """Record acknowledged messages (the producer's latency sink)."""
        self.acked[kind] += count
        h = self.receipt_to_ack.get(kind)
        if h is None:
            h = self._get(self.receipt_to_ack, kind)
        h.observe_ns(ack_ns - receipt_ns)
        if sip_ns is not None:
            self._get(self.sip_to_ack, kind).observe_ns(ack_ns - sip_ns)
        if self.on_ack is not None:
            self.on_ack(kind, sip_ns, receipt_ns, ack_ns)


def _counter(name: str, doc: str, label: str | None, values: dict[str, float] | float) -> Metric:
    if label is None:
        fam = CounterMetricFamily(name, doc)
        assert isinstance(values, int | float)
        fam.add_metric([], float(values))
        return fam
    fam = CounterMetricFamily(name, doc, labels=[label])
    assert isinstance(values, dict)
    for k, v in sorted(values.items()):
        fam.add_metric([k], float(v))
    return fam


def _gauge(
    name: str, doc: str, value: dict[str, float] | float, label: str | None = None
) -> Metric:
    if label is None:
        fam = GaugeMetricFamily(name, doc)
        assert isinstance(value, int | float)
        fam.add_metric([], float(value))
        return fam
    fam = GaugeMetricFamily(name, doc, labels=[label])
    assert isinstance(value, dict)
    for k, v in sorted(value.items()):
        fam.add_metric([k], float(v))
    return fam


class StreamMetrics(Collector):
    """The streamer's metrics, read from its live state at scrape time.

    Parameters
    ----------
    snapshot
        Returns the streamer's current :class:`StreamSnapshot` (called per scrape).
    latency
        The latency histograms the producer and parser feed.
    """

    SERVICE = "stream"

    def __init__(self, snapshot: Callable[[], StreamSnapshot], latency: LatencyHistograms) -> None:
        self._snapshot = snapshot
        self.latency = latency

    def describe(self) -> Iterable[Metric]:
        """Return no descriptions: the metric set depends on live labels."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield every stream metric."""
        s = self._snapshot()
        n = lambda what, unit: metric_name(self.SERVICE, what, unit)  # noqa: E731
        yield _counter(
            n("events_in", "total"), "Events parsed from the feed, by type.", "type", s.events_in
        )
        out = {k: float(v) for k, v in self.latency.acked.items()}
        yield _counter(
            n("events_out", "total"), "Records acknowledged by Kafka, by type.", "type", out
        )
        yield _counter(n("rejects", "total"), "Rejected input by reason code.", "reason", s.rejects)
        yield _counter(
            n("reconnects", "total"), "Feed outages followed by a reconnect.", None, s.reconnects
        )
        yield _counter(
            n("gaps", "total"), "Gap records produced, by repair outcome.", "repair", s.gaps
        )
        yield _counter(
            n("gap", "seconds_total"),
            "Sum of gap windows (SIP time between the last event before and the first after).",
            None,
            s.gap_seconds,
        )
        yield _counter(
            n("backfilled_trades", "total"),
            "Trades produced from the REST backfill.",
            None,
            s.backfilled,
        )
        yield _counter(
            n("duplicates_skipped", "total"),
            "Trades not produced because their dedup key was already produced.",
            None,
            s.duplicates_skipped,
        )
        yield _counter(
            n("blocked", "seconds_total"),
            "Time a stage waited for room downstream (reader: frame queue full; "
            "producer: Kafka client queue full).",
            "stage",
            s.blocked_s,
        )
        yield _counter(
            n("slow_consumer", "total"),
            "Connections dropped by the slow-consumer policy or the provider.",
            None,
            s.slow_consumer,
        )
        yield _counter(
            n("watchdog_reconnects", "total"),
            "Reconnects forced by the silence watchdog.",
            None,
            s.watchdog_reconnects,
        )
        yield _counter(n("frame", "bytes_total"), "Bytes of frames read.", None, s.frame_bytes)
        yield _gauge(n("queue_depth", "frames"), "Frames waiting for the parser.", s.queue_depth)
        yield _gauge(n("queue_capacity", "frames"), "Bound of the frame queue.", s.queue_capacity)
        yield _gauge(
            n("buffer", "bytes"),
            "Bytes held by a bounded buffer (queue: frames waiting for the parser; ring: recent "
            "frames kept for dedup seeds; dedup: the repair guards' keys, estimated).",
            s.buffer_bytes,
            "buffer",
        )
        yield _gauge(
            n("buffer_limit", "bytes"),
            "Byte bound of a buffer (queue: the slow-consumer policy applies; ring: oldest "
            "frames forgotten; dedup: a repair reaching it fails).",
            s.buffer_limit_bytes,
            "buffer",
        )
        yield _gauge(
            n("kafka_in_flight", "messages"),
            "Records produced and not yet acknowledged.",
            s.in_flight,
        )
        yield _gauge(n("connected", "bool"), "1 while subscribed to the feed.", s.connected)
        yield _gauge(
            n("last_frame_age", "seconds"),
            "Seconds since the last frame arrived.",
            s.last_frame_age_s,
        )
        yield _gauge(n("open_gaps", "count"), "Gaps detected and not yet repaired.", s.open_gaps)
        for what, table, doc in (
            ("sip_to_receipt", self.latency.sip_to_receipt, "SIP time to receipt"),
            ("receipt_to_ack", self.latency.receipt_to_ack, "Receipt to Kafka acknowledgement"),
            ("sip_to_ack", self.latency.sip_to_ack, "SIP time to Kafka acknowledgement"),
        ):
            fam = HistogramMetricFamily(n(what, "seconds"), doc + " (seconds).", labels=["type"])
            for kind, h in sorted(table.items()):
                h.add_to(fam, {"type": kind})
            yield fam


@dataclass(frozen=True)
class StreamSnapshot:
    """What :class:`StreamMetrics` reads from a running streamer at scrape time."""

    events_in: dict[str, float]
    rejects: dict[str, float]
    reconnects: float
    gaps: dict[str, float]
    gap_seconds: float
    backfilled: float
    duplicates_skipped: float
    blocked_s: dict[str, float]
    slow_consumer: float
    watchdog_reconnects: float
    frame_bytes: float
    queue_depth: float
    queue_capacity: float
    in_flight: float
    connected: float
    last_frame_age_s: float
    open_gaps: float
    buffer_bytes: dict[str, float]
    buffer_limit_bytes: dict[str, float]


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint (stop it with :meth:`close`)."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        """Return the scrape URL."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and join the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


def serve_metrics(
    port: int, *, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    Parameters
    ----------
    port
        TCP port (0 = any free port; see :attr:`MetricsServer.port`).
    host
        Bind address; loopback by default.
    registry
        What to serve.

    Returns
    -------
    MetricsServer
        The running server.

    Raises
    ------
    ConfigError
        If the port cannot be bound.
    """
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {e}") from e
    return MetricsServer(host, int(server.server_address[1]), server, thread)


# --- the pipeline exporter (``microstructure metrics-exporter``) ---------------------------

# Stage buckets: the real-time buckets above, then the minutes-to-hours of microbatches and
# the hourly signals schedule; a replayed recording's SIP stages land in +Inf (years).
STAGE_BUCKETS_S: tuple[float, ...] = (
    *LATENCY_BUCKETS_S,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    86400.0,
)

# Names shared with docker/prometheus/rules.yml and the Grafana dashboard (a test checks
# that every name those files use is one a collector yields).
TRADE_STAGE_LATENCY = metric_name("trade", "stage_latency", "seconds")


@dataclass
class LagRow:
    """Consumer lag of one topic-partition: Kafka's high watermark vs the warehouse ledger."""

    topic: str
    partition: int
    high_watermark: int
    ledger_offset: int

    @property
    def lag(self) -> int:
        """Return offsets written to Kafka and not yet committed to the warehouse."""
        return max(self.high_watermark - self.ledger_offset, 0)


@dataclass
class PipelineSnapshot:
    """What :class:`PipelineMetrics` reads from the exporter at scrape time.

    Counters (``*_total``) count what the exporter has seen committed since it started
    (plus its start-up look-back); gauges describe the warehouse, the broker and the
    Dagster instance at the last refresh. ``None`` means "source not reachable": the
    metric is left out rather than reported as zero.
    """

    stage_latency: dict[str, FastHistogram] = field(default_factory=lambda: {})
    trades: float = 0.0
    rejects: float = 0.0
    duplicates: float = 0.0
    gap_records: float = 0.0
    batches: dict[str, float] = field(default_factory=lambda: {})  # verdict -> batches
    lag: list[LagRow] | None = None
    broker_up: float = 0.0
    last_commit_s: float | None = None
    gap_today_s: dict[str, float] = field(default_factory=lambda: {})  # symbol -> seconds
    gaps_today: dict[str, float] = field(default_factory=lambda: {})  # symbol -> windows
    signal_runs: dict[tuple[str, str], float] = field(default_factory=lambda: {})
    blocked_days: float = 0.0
    last_signal_run_s: float | None = None
    dagster_runs: dict[tuple[str, str], float] | None = None  # (job, status) -> runs
    warehouse_up: float = 0.0
    refresh_s: float = 0.0
    last_refresh_s: float = 0.0
    refresh_errors: dict[str, float] = field(default_factory=lambda: {})


class PipelineMetrics(Collector):
    """Metrics measured from the warehouse, the broker and the Dagster instance.

    Dagster runs are short-lived processes, so they do not serve ``/metrics`` themselves:
    what they did is in the warehouse (every trade's stamps, the offset ledger, the
    signal runs, the quality verdicts) and in the Dagster instance, and this collector,
    served by the long-lived ``metrics-exporter``, reads it from there.

    Parameters
    ----------
    snapshot
        Returns the exporter's current :class:`PipelineSnapshot` (called per scrape).
    """

    def __init__(self, snapshot: Callable[[], PipelineSnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        """Return no descriptions: the metric set depends on live labels."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield every exporter metric."""
        s = self._snapshot()
        fam = HistogramMetricFamily(
            TRADE_STAGE_LATENCY,
            "Per-trade latency of each stage of SIP -> receipt -> Kafka append -> warehouse "
            "commit -> signal computed, measured from the stamps stored with each trade "
            "(seconds).",
            labels=["stage"],
        )
        for stage, h in sorted(s.stage_latency.items()):
            h.add_to(fam, {"stage": stage})
        yield fam
        yield _counter(
            metric_name("ingest", "trades", "total"), "Trades committed.", None, s.trades
        )
        yield _counter(
            metric_name("ingest", "rejects", "total"),
            "Rejected records committed.",
            None,
            s.rejects,
        )
        yield _counter(
            metric_name("ingest", "duplicates", "total"),
            "Trades not stored again (dedup key already loaded).",
            None,
            s.duplicates,
        )
        yield _counter(
            metric_name("ingest", "gap_records", "total"),
            "Feed gap records committed.",
            None,
            s.gap_records,
        )
        yield _counter(
            metric_name("ingest", "batches", "total"),
            "Microbatches committed, by ingest quality verdict (passed, failed, unchecked).",
            "verdict",
            s.batches,
        )
        yield _gauge(
            metric_name("ingest", "broker_up", "bool"), "1 if Kafka answered.", s.broker_up
        )
        if s.lag is not None:
            fams = {
                "lag": GaugeMetricFamily(
                    metric_name("ingest", "consumer_lag", "messages"),
                    "Offsets in Kafka not yet committed to the warehouse (high watermark - "
                    "ledger), per partition.",
                    labels=["topic", "partition"],
                ),
                "high": GaugeMetricFamily(
                    metric_name("ingest", "high_watermark", "offset"),
                    "Kafka's high watermark per partition.",
                    labels=["topic", "partition"],
                ),
                "ledger": GaugeMetricFamily(
                    metric_name("ingest", "ledger", "offset"),
                    "Next offset to load per partition (the warehouse ledger).",
                    labels=["topic", "partition"],
                ),
            }
            for row in s.lag:
                labels = [row.topic, str(row.partition)]
                fams["lag"].add_metric(labels, float(row.lag))
                fams["high"].add_metric(labels, float(row.high_watermark))
                fams["ledger"].add_metric(labels, float(row.ledger_offset))
            yield from fams.values()
        if s.last_commit_s is not None:
            yield _gauge(
                metric_name("ingest", "last_commit_timestamp", "seconds"),
                "Unix time of the newest microbatch commit.",
                s.last_commit_s,
            )
        for what, doc, values in (
            (
                "gap_today",
                "Feed gap seconds in today's regular session, per symbol.",
                s.gap_today_s,
            ),
            (
                "gaps_today",
                "Feed gap windows overlapping today's session, per symbol.",
                s.gaps_today,
            ),
        ):
            unit = "seconds" if what == "gap_today" else "count"
            g = GaugeMetricFamily(metric_name("feed", what, unit), doc, labels=["symbol"])
            for sym, v in sorted(values.items()):
                g.add_metric([sym], v)
            yield g
        runs = CounterMetricFamily(
            metric_name("signals", "runs", "total"),
            "Signal runs published, by finality and audit verdict.",
            labels=["final", "audit"],
        )
        for (final, audit), v in sorted(s.signal_runs.items()):
            runs.add_metric([final, audit], v)
        yield runs
        yield _gauge(
            metric_name("signals", "blocked_days", "count"),
            "Trading days (last 7) whose newest signals audit failed after their newest publish.",
            s.blocked_days,
        )
        if s.last_signal_run_s is not None:
            yield _gauge(
                metric_name("signals", "last_run_timestamp", "seconds"),
                "Unix time the newest signals run was computed.",
                s.last_signal_run_s,
            )
        yield _gauge(
            metric_name("dagster", "up", "bool"),
            "1 if the Dagster instance could be read.",
            0.0 if s.dagster_runs is None else 1.0,
        )
        if s.dagster_runs is not None:
            g = GaugeMetricFamily(
                metric_name("dagster", "runs", "count"),
                "Runs in the Dagster instance by job and status (QUEUED/STARTED: now; "
                "FAILURE/SUCCESS/CANCELED: grows, use delta()).",
                labels=["job", "status"],
            )
            for (job, status), v in sorted(s.dagster_runs.items()):
                g.add_metric([job, status], v)
            yield g
        yield _gauge(
            metric_name("exporter", "warehouse_up", "bool"),
            "1 if the last refresh read the warehouse.",
            s.warehouse_up,
        )
        yield _gauge(
            metric_name("exporter", "refresh", "seconds"),
            "Duration of the last refresh.",
            s.refresh_s,
        )
        yield _gauge(
            metric_name("exporter", "last_refresh_timestamp", "seconds"),
            "Unix time of the last refresh.",
            s.last_refresh_s,
        )
        yield _counter(
            metric_name("exporter", "refresh_errors", "total"),
            "Refreshes that could not read a source, by source.",
            "source",
            s.refresh_errors,
        )


# --- reading other services' endpoints (``microstructure status``) ------------------------


def parse_histograms(
    text: str, name: str
) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
    """Return the cumulative buckets of histogram ``name`` in a Prometheus exposition text.

    Parameters
    ----------
    text
        What a ``/metrics`` endpoint answered.
    name
        Histogram name without the ``_bucket`` suffix.

    Returns
    -------
    dict
        Label set (sorted ``(name, value)`` pairs, without ``le``) -> ``[(le, count), ...]``
        sorted by ``le`` (``+Inf`` last).
    """
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name != f"{name}_bucket":
                continue
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            out.setdefault(labels, []).append((float(sample.labels["le"]), float(sample.value)))
    return {k: sorted(v) for k, v in out.items()}


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Estimate a quantile from cumulative buckets as PromQL's ``histogram_quantile`` does.

    Linear interpolation inside the bucket holding the rank; a rank in the ``+Inf`` bucket
    returns the highest finite bound (the estimate says "at least this").

    Parameters
    ----------
    q
        Quantile in [0, 1].
    buckets
        ``[(le, cumulative count), ...]`` sorted by ``le``, ending with ``+Inf``.

    Returns
    -------
    float or None
        Seconds; None when the histogram is empty.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


def sample_quantile(values: Sequence[float] | npt.ArrayLike, q: float) -> float:
    """Return the ``q`` quantile of measured samples (numpy's linear interpolation).

    The one definition of a sample percentile in the platform's figures (benchmarks,
    latency recorders); a histogram's quantile is :func:`histogram_quantile`.

    Parameters
    ----------
    values
        The samples, in any order.
    q
        Quantile in [0, 1].

    Returns
    -------
    float
        The quantile; NaN when there are no samples.
    """
    arr = np.asarray(values, dtype=np.float64)
    return float(np.quantile(arr, q)) if arr.size else float("nan")
