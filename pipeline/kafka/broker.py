"""A real local Apache Kafka 4.x broker (KRaft, one combined node) without Docker.

The broker runs from the jars on Maven Central with the machine's Java 17
(integrations.md 2.1):

1. :meth:`LocalBroker.fetch` writes a throw-away ``pom.xml`` (packaging ``pom``)
   that depends on ``org.apache.kafka:kafka_2.13:<version>``, ``slf4j-api`` 2.0.17
   (direct, so Maven's nearest-wins beats an older transitive one) and
   ``log4j-slf4j2-impl`` 2.25.3 (the SLF4J provider; it brings log4j-core/api),
   then runs ``mvn -q -B dependency:copy-dependencies`` into
   ``$MICROSTRUCTURE_HOME/kafka/<version>/libs``. A marker file written last makes
   the next call a no-op, so ``fetch`` is idempotent and needs no network once
   cached. The jar set is checked to hold exactly one SLF4J provider.
2. :meth:`LocalBroker.up` writes ``server.properties`` and ``log4j2.properties``,
   formats the storage dir once (``kafka.tools.StorageTool format
   --ignore-formatted`` with a cluster id kept beside it), starts ``kafka.Kafka`` in
   the background with a pid file and a log file, waits until an AdminClient sees
   a broker (an open port is not enough) and creates the market-data topic.
3. :meth:`LocalBroker.down` sends SIGTERM (controlled shutdown), waits a bounded
   time, then SIGKILL. A broker started with ``die_with_parent=True`` (tests) also
   gets ``PR_SET_PDEATHSIG`` so the JVM dies with the process that started it,
   even on ``kill -9``.

The admin helpers (:func:`ensure_topic`, :func:`topic_id`, :func:`cluster_status`) work
against any cluster, so an external ``KAFKA_BOOTSTRAP_SERVERS`` cluster uses them without a
local broker.
"""

from __future__ import annotations

import base64
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError as _LibKafkaError
from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import (  # the documented import path; the stubs re-export it quietly
    AdminClient,
    NewTopic,  # pyright: ignore[reportPrivateImportUsage]
)

from pipeline import processes
from pipeline.errors import BrokerError, ConfigError, KafkaError
from pipeline.settings import Settings

logger = logging.getLogger(__name__)

SLF4J_API_VERSION = "2.0.17"
LOG4J_VERSION = "2.25.3"
# Pinned so that `fetch` is reproducible; Maven 3.8's default binding is the 2013-era 2.8.
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
_COMPLETE_MARKER = ".complete"
_SLF4J2_PROVIDER_SERVICE = "META-INF/services/org.slf4j.spi.SLF4JServiceProvider"
_SLF4J1_BINDER = "org/slf4j/impl/StaticLoggerBinder.class"
_PR_SET_PDEATHSIG = 1

# librdkafka logs every refused connection at ERROR while a broker is still starting;
# readiness probes expect that, so their logs go nowhere.
_probe_logger = logging.getLogger("pipeline.kafka.probe")
_probe_logger.addHandler(logging.NullHandler())
_probe_logger.propagate = False

# Every JVM this process started, by pid. A broker started by `kafka up` outlives the
# Popen object's owner; holding it here lets `down` in the same process reap it (no
# zombie) and keeps Popen.__del__ from warning about a child that is meant to run on.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def client_conf(bootstrap: str, extra_conf: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the librdkafka settings shared by every client: bootstrap + TLS/SASL pass-through.

    Parameters
    ----------
    bootstrap
        ``host:port[,host:port]`` of the cluster.
    extra_conf
        Extra librdkafka settings (``settings.kafka_extra``), applied last.

    Returns
    -------
    dict[str, Any]
        A new configuration dictionary (values: str, numbers, a logger).
    """
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap}
    conf.update(extra_conf or {})
    return conf


def _admin(
    bootstrap: str, extra_conf: Mapping[str, str] | None, *, quiet: bool = False
) -> AdminClient:
    conf = client_conf(bootstrap, extra_conf)
    if quiet:
        conf["logger"] = _probe_logger
    return AdminClient(conf)


def broker_count(
    bootstrap: str, extra_conf: Mapping[str, str] | None = None, timeout_s: float = 1.0
) -> int:
    """Return how many brokers the cluster's metadata lists (0 if unreachable within ``timeout_s``).

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    extra_conf
        Extra librdkafka settings.
    timeout_s
        Bound of the metadata request.

    Returns
    -------
    int
        Number of brokers in the metadata; 0 when no answer came in time.
    """
    admin = _admin(bootstrap, extra_conf, quiet=True)
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return 0
    return len(meta.brokers)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic as :func:`ensure_topic` left it."""

    name: str
    partitions: int
    created: bool


def ensure_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    *,
    extra_conf: Mapping[str, str] | None = None,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> TopicInfo:
    """Create ``topic`` unless it exists; return its partition count.

    The record timestamp is the broker's append time (``LogAppendTime``) unless
    ``config`` says otherwise: docs/design.md uses it as a latency stage.

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    topic
        Topic name.
    partitions
        Partitions if the topic is created (an existing topic keeps its own).
    extra_conf
        Extra librdkafka settings.
    replication_factor
        Replication factor if created.
    config
        Topic configuration; default ``message.timestamp.type=LogAppendTime``.
    timeout_s
        Bound of the whole operation.

    Returns
    -------
    TopicInfo
        Name, partition count and whether this call created it.

    Raises
    ------
    KafkaError
        If the topic could not be created or described in time.
    """
    topic_config = (
        dict(config) if config is not None else {"message.timestamp.type": "LogAppendTime"}
    )
    admin = _admin(bootstrap, extra_conf)
    new = NewTopic(
        topic, num_partitions=partitions, replication_factor=replication_factor, config=topic_config
    )
    futures = admin.create_topics([new], operation_timeout=timeout_s, request_timeout=timeout_s)
    created = True
    try:
        futures[topic].result(timeout=timeout_s)
    except KafkaException as e:
        err = e.args[0] if e.args else None
        if isinstance(err, _LibKafkaError) and err.code() == _LibKafkaError.TOPIC_ALREADY_EXISTS:
            created = False
        else:
            raise KafkaError(f"cannot create topic {topic!r} on {bootstrap}: {e}") from e
    except TimeoutError as e:  # concurrent.futures.TimeoutError is TimeoutError on 3.11
        raise KafkaError(
            f"creating topic {topic!r} on {bootstrap} timed out after {timeout_s} s"
        ) from e
    # Creation is acknowledged by the controller before every partition has a leader in the
    # metadata; wait so that the first produce does not race it.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            meta = admin.list_topics(topic, timeout=max(0.1, min(2.0, deadline - time.monotonic())))
        except KafkaException as e:
            raise KafkaError(f"cannot describe topic {topic!r} on {bootstrap}: {e}") from e
        tmeta = meta.topics.get(topic)
        if (
            tmeta is not None
            and tmeta.error is None
            and tmeta.partitions
            and all(p.leader >= 0 and p.error is None for p in tmeta.partitions.values())
        ):
            return TopicInfo(topic, len(tmeta.partitions), created)
        if time.monotonic() >= deadline:
            raise KafkaError(
                f"topic {topic!r} on {bootstrap} lacks a leader for some partition "
                f"after {timeout_s} s"
            )
        time.sleep(0.05)


def delete_topic(
    bootstrap: str,
    topic: str,
    *,
    extra_conf: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Delete ``topic`` (tests clean up after themselves).

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    topic
        Topic name.
    extra_conf
        Extra librdkafka settings.
    timeout_s
        Bound of the operation.

    Raises
    ------
    KafkaError
        If the deletion failed for a reason other than the topic being absent.
    """
    admin = _admin(bootstrap, extra_conf)
    futures = admin.delete_topics([topic], operation_timeout=timeout_s, request_timeout=timeout_s)
    try:
        futures[topic].result(timeout=timeout_s)
    except KafkaException as e:
        err = e.args[0] if e.args else None
        if isinstance(err, _LibKafkaError) and err.code() == _LibKafkaError.UNKNOWN_TOPIC_OR_PART:
            return
        raise KafkaError(f"cannot delete topic {topic!r} on {bootstrap}: {e}") from e


# Kafka's "no topic id" (brokers before 2.8 have none): the all-zero UUID, base64-encoded.
NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"


def topic_id(
    bootstrap: str,
    topic: str,
    *,
    extra_conf: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> str | None:
    """Return Kafka's id of ``topic``, which changes when the topic is deleted and recreated.

    The warehouse ledger stores it with every batch, so that a topic recreated under the
    same name is told apart from the one loaded so far (:mod:`pipeline.warehouse.topic_identity`).

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    topic
        Topic name.
    extra_conf
        Extra librdkafka settings.
    timeout_s
        Bound of the request.

    Returns
    -------
    str | None
        The id as Kafka's tools print it (base64 of the UUID, 22 characters); None when the
        cluster has no topic ids (Kafka before 2.8).

    Raises
    ------
    KafkaError
        If the topic does not exist or the cluster does not answer in time.
    """
    admin = _admin(bootstrap, extra_conf)
    futures = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s)
    try:
        described = futures[topic].result(timeout=timeout_s)
    except KafkaException as e:
        raise KafkaError(f"cannot describe topic {topic!r} on {bootstrap}: {e}") from e
    except TimeoutError as e:  # concurrent.futures.TimeoutError is TimeoutError on 3.11
        raise KafkaError(
            f"describing topic {topic!r} on {bootstrap} timed out after {timeout_s} s"
        ) from e
    text = str(described.topic_id)
    return None if text == NO_TOPIC_ID else text


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    """Low and high watermark of one partition."""

    partition: int
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """What ``microstructure kafka status`` prints."""

    bootstrap: str
    brokers: int
    pid: int | None
    topics: dict[str, list[PartitionStatus]] = field(default_factory=lambda: {})


def cluster_status(
    bootstrap: str,
    *,
    extra_conf: Mapping[str, str] | None = None,
    pid: int | None = None,
    timeout_s: float = 10.0,
    include_internal: bool = False,
) -> ClusterStatus:
    """Describe the cluster: brokers, topics, partitions and watermarks.

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    extra_conf
        Extra librdkafka settings.
    pid
        Local broker pid to report (None for an external cluster).
    timeout_s
        Bound of each metadata or watermark request.
    include_internal
        Also list ``__consumer_offsets`` and other internal topics.

    Returns
    -------
    ClusterStatus
        The description.

    Raises
    ------
    KafkaError
        If the cluster does not answer in time.
    """
    from pipeline.kafka.consumer import watermarks  # the consumer module imports this one

    admin = _admin(bootstrap, extra_conf)
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as e:
        raise KafkaError(f"Kafka at {bootstrap} did not answer within {timeout_s} s: {e}") from e
    topics: dict[str, list[PartitionStatus]] = {}
    for name in sorted(meta.topics):
        if name.startswith("__") and not include_internal:
            continue
        marks = watermarks(bootstrap, name, timeout_s, extra_conf=extra_conf)
        topics[name] = [PartitionStatus(p, lo, hi) for p, (lo, hi) in sorted(marks.items())]
    return ClusterStatus(bootstrap=bootstrap, brokers=len(meta.brokers), pid=pid, topics=topics)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (tests pick ports this way)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _set_pdeathsig() -> None:
    """Ask Linux to SIGKILL this child when its parent dies; runs between fork and exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def pom_xml(version: str) -> str:
    """Return the throw-away POM whose runtime dependencies are a runnable broker.

    Parameters
    ----------
    version
        Apache Kafka version (``org.apache.kafka:kafka_2.13``).

    Returns
    -------
    str
        The POM text.
    """
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by pipeline/kafka/broker.py; only used to download the broker's jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.microstructure</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>{SLF4J_API_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>{DEPENDENCY_PLUGIN_VERSION}</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


def server_properties(*, node_id: int, port: int, controller_port: int, data_dir: Path) -> str:
    """Return ``server.properties`` of a combined broker+controller node on loopback.

    Parameters
    ----------
    node_id
        KRaft node id.
    port
        Client (PLAINTEXT) port.
    controller_port
        Controller port.
    data_dir
        ``log.dirs``.

    Returns
    -------
    str
        The properties text.
    """
    return f"""# Generated by pipeline/kafka/broker.py: one combined KRaft node on loopback.
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={node_id}@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions=1
auto.create.topics.enable=false
# One node: internal topics must not wait for replicas that never come (defaults are 3).
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the defaults (50): a laptop broker starts and serves its
# first consumer group or transaction faster; nothing here needs that fan-out.
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
"""


LOG4J2_PROPERTIES = """# Generated by pipeline/kafka/broker.py.
# Console only (no YAML dependency); the JVM's stdout goes to broker.log.
status = warn
name = microstructure-broker
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# Kafka is chatty at INFO; WARN keeps the log short enough to show its tail in an error.
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
# ...except the line that says the server started.
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
"""


def check_slf4j_providers(libs: Path) -> list[str]:
    """Return the jars in ``libs`` that provide an SLF4J binding; exactly one is healthy.

    SLF4J 2 finds providers through ``META-INF/services/org.slf4j.spi.SLF4JServiceProvider``;
    an SLF4J 1.x ``StaticLoggerBinder`` on the class path is a conflicting legacy binding.

    Parameters
    ----------
    libs
        Directory of jars.

    Returns
    -------
    list[str]
        File names of the jars that carry a provider or a legacy binding.
    """
    found: list[str] = []
    for jar in sorted(libs.glob("*.jar")):
        try:
            with zipfile.ZipFile(jar) as z:
                names = set(z.namelist())
        except zipfile.BadZipFile as e:
            raise BrokerError(f"{jar} is not a readable jar: {e}") from e
        if _SLF4J2_PROVIDER_SERVICE in names or _SLF4J1_BINDER in names:
            found.append(jar.name)
    return found


class LocalBroker:
    """One local KRaft node (broker + controller) running from Maven Central jars.

    Parameters
    ----------
    kafka_home
        Root of the jar cache: jars go to ``kafka_home/<version>/libs``.
    version
        Apache Kafka version.
    port
        Client port on 127.0.0.1.
    controller_port
        Controller port; default ``port + 1``.
    state_dir
        Config, data, pid and log files; default ``kafka_home/broker``.
    heap_mb
        JVM maximum heap.
    die_with_parent
        Kill the JVM when the starting process dies (tests); ``up`` from the CLI
        leaves it running until ``down``.
    java, mvn
        Executables.
    """

    def __init__(
        self,
        *,
        kafka_home: Path,
        version: str,
        port: int,
        controller_port: int | None = None,
        state_dir: Path | None = None,
        heap_mb: int = 512,
        die_with_parent: bool = False,
        java: str = "java",
        mvn: str = "mvn",
    ) -> None:
        if not version or "/" in version:
            raise ConfigError(f"Kafka version {version!r} is invalid")
        self.kafka_home = kafka_home
        self.version = version
        self.port = port
        self.controller_port = controller_port if controller_port is not None else port + 1
        self.state_dir = state_dir if state_dir is not None else kafka_home / "broker"
        self.heap_mb = heap_mb
        self.die_with_parent = die_with_parent
        self.java = java
        self.mvn = mvn

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalBroker:
        """Build the broker that ``microstructure kafka up`` manages.

        Parameters
        ----------
        settings
            Platform settings (home, version, port).

        Returns
        -------
        LocalBroker
            The broker (not started).
        """
        return cls(
            kafka_home=settings.home / "kafka",
            version=settings.kafka_version,
            port=settings.kafka_port,
        )

    # -- paths ---------------------------------------------------------------------------------
    @property
    def version_dir(self) -> Path:
        """Return ``kafka_home/<version>`` (the pom and the jars)."""
        return self.kafka_home / self.version

    @property
    def libs_dir(self) -> Path:
        """Return the directory of the broker's jars."""
        return self.version_dir / "libs"

    @property
    def bootstrap(self) -> str:
        """Return ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        """Return the pid file of the running JVM."""
        return self.state_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        """Return the JVM's stdout/stderr file."""
        return self.state_dir / "broker.log"

    @property
    def server_properties_file(self) -> Path:
        """Return the generated ``server.properties``."""
        return self.state_dir / "server.properties"

    @property
    def data_dir(self) -> Path:
        """Return ``log.dirs``."""
        return self.state_dir / "data"

    # -- jars ----------------------------------------------------------------------------------
    def fetched(self) -> bool:
        """Return True when the jars are complete in the cache."""
        return (self.libs_dir / _COMPLETE_MARKER).is_file()

    def fetch(self, timeout_s: float = 600.0) -> Path:
        """Download the broker's jars from Maven Central once; a no-op when cached.

        Parameters
        ----------
        timeout_s
            Bound of the Maven run.

        Returns
        -------
        Path
            The libs directory.

        Raises
        ------
        BrokerError
            If Maven is missing or fails, or the jar set does not hold exactly one
            SLF4J provider.
        """
        libs = self.libs_dir
        if self.fetched():
            return libs
        if shutil.which(self.mvn) is None:
            raise BrokerError(
                f"Maven ({self.mvn!r}) is not on PATH; "
                f"it is needed once to fetch Kafka {self.version}"
            )
        self.version_dir.mkdir(parents=True, exist_ok=True)
        pom = self.version_dir / "pom.xml"
        pom.write_text(pom_xml(self.version))
        # Download into a sibling dir and rename, so an interrupted fetch never looks complete.
        staging = self.version_dir / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            self.mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        logger.info("fetching Kafka %s jars from Maven Central into %s", self.version, libs)
        try:
            res = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise BrokerError(
                f"mvn did not finish fetching Kafka {self.version} within {timeout_s} s"
            ) from e
        if res.returncode != 0:
            out = "\n".join((res.stdout + res.stderr).splitlines()[-30:])
            raise BrokerError(
                f"mvn failed (exit {res.returncode}) fetching Kafka {self.version}:\n{out}"
            )
        jars = sorted(p.name for p in staging.glob("*.jar"))
        if not any(j.startswith(f"kafka_2.13-{self.version}") for j in jars):
            raise BrokerError(f"mvn succeeded but {staging} holds no kafka_2.13-{self.version} jar")
        providers = check_slf4j_providers(staging)
        if len(providers) != 1:
            raise BrokerError(
                f"Kafka {self.version} jars hold {len(providers)} SLF4J providers "
                f"{providers}; expected exactly one (log4j-slf4j2-impl-{LOG4J_VERSION})"
            )
        apis = [j for j in jars if j.startswith("slf4j-api-")]
        if apis != [f"slf4j-api-{SLF4J_API_VERSION}.jar"]:
            raise BrokerError(f"expected exactly slf4j-api-{SLF4J_API_VERSION}.jar, found {apis}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        (libs / _COMPLETE_MARKER).write_text("\n".join(jars) + "\n")
        logger.info("fetched %d jars (SLF4J provider: %s)", len(jars), providers[0])
        return libs

    # -- process -------------------------------------------------------------------------------
    def _classpath(self) -> str:
        # The JVM expands "dir/*" itself; no shell is involved.
        return str(self.libs_dir / "*")

    def _log4j_arg(self) -> str:
        return f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}"

    def running_pid(self) -> int | None:
        """Return the pid of this broker's running JVM, else None (removes a stale pid file)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not processes.alive(pid) or not self._is_our_jvm(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def _is_our_jvm(self, pid: int) -> bool:
        # A pid can be reused after a reboot or crash: only signal a JVM running our config.
        cmdline = processes.command_line(pid)
        if cmdline is None:
            return False  # gone since, or not ours to read: not a JVM we started
        return BROKER_MAIN in cmdline and str(self.server_properties_file) in cmdline

    def _write_config(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.server_properties_file.write_text(
            server_properties(
                node_id=1,
                port=self.port,
                controller_port=self.controller_port,
                data_dir=self.data_dir,
            )
        )
        (self.state_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)

    def _cluster_id(self) -> str:
        # Kept beside the data: re-formatting a used dir with a new id breaks meta.properties.
        path = self.state_dir / "cluster.id"
        if path.is_file():
            return path.read_text().strip()
        cluster_id = "-"
        # Like Kafka's Uuid.randomUuid: an id starting with "-" would parse as a CLI option.
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        path.write_text(cluster_id + "\n")
        return cluster_id

    def _format(self) -> None:
        cmd = [
            self.java,
            "-cp",
            self._classpath(),
            self._log4j_arg(),
            STORAGE_TOOL_MAIN,
            "format",
            f"--cluster-id={self._cluster_id()}",
            "-c",
            str(self.server_properties_file),
            "--ignore-formatted",
        ]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired as e:
            raise BrokerError("formatting the Kafka storage dir did not finish within 120 s") from e
        if res.returncode != 0:
            out = "\n".join((res.stdout + res.stderr).splitlines()[-30:])
            raise BrokerError(
                f"kafka storage format failed (exit {res.returncode}) in {self.data_dir}:\n{out}"
            )

    def up(self, timeout_s: float = 90.0) -> int:
        """Start the broker (fetching and formatting if needed) and wait until it serves metadata.

        Idempotent: a running broker is left alone.

        Parameters
        ----------
        timeout_s
            Bound of the readiness wait.

        Returns
        -------
        int
            The JVM's pid.

        Raises
        ------
        BrokerError
            If Java is missing, the port is taken by another process, the JVM exits, or
            the broker is not ready in time (the message carries the log tail).
        """
        pid = self.running_pid()
        if pid is not None:
            self.wait_ready(timeout_s, pid=pid)
            return pid
        if shutil.which(self.java) is None:
            raise BrokerError(
                f"Java ({self.java!r}) is not on PATH; Kafka {self.version} needs Java 17+"
            )
        for port in (self.port, self.controller_port):
            if _port_open(port):
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is in use by another process; "
                    "set MICROSTRUCTURE_KAFKA_PORT or stop that process"
                )
        self.fetch()
        self._write_config()
        self._format()
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_suffix(".log.1"))
        cmd = [
            self.java,
            f"-Xms{min(256, self.heap_mb)}m",
            f"-Xmx{self.heap_mb}m",
            # Small footprint on a shared laptop/CI box; the broker is loopback only.
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            "-cp",
            self._classpath(),
            self._log4j_arg(),
            BROKER_MAIN,
            str(self.server_properties_file),
        ]
        preexec: Callable[[], None] | None = _set_pdeathsig if self.die_with_parent else None
        with self.log_file.open("ab") as log:
            # start_new_session: a Ctrl-C in the terminal that ran `up` must not kill the broker.
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,
                preexec_fn=preexec,  # prctl must run in the child, before exec
            )
        pid = proc.pid
        _CHILDREN[pid] = proc
        self.pid_file.write_text(f"{pid}\n")
        try:
            self.wait_ready(timeout_s, pid=pid)
        except BrokerError:
            self.down()
            raise
        logger.info(
            "Kafka %s ready at %s (pid %d, log %s)",
            self.version,
            self.bootstrap,
            pid,
            self.log_file,
        )
        return pid

    def wait_ready(self, timeout_s: float, *, pid: int | None = None) -> None:
        """Wait until the broker answers a metadata request with itself.

        Parameters
        ----------
        timeout_s
            Bound of the wait.
        pid
            The JVM to watch: if it exits, fail at once instead of waiting out the bound.

        Raises
        ------
        BrokerError
            On timeout or JVM exit, with the tail of the broker log.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if pid is not None and not self._alive(pid):
                raise BrokerError(
                    f"Kafka JVM (pid {pid}) exited during start-up; "
                    f"tail of {self.log_file}:\n{_tail(self.log_file)}"
                )
            if broker_count(self.bootstrap, timeout_s=1.0) > 0:
                return
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"Kafka at {self.bootstrap} not ready after {timeout_s} s; "
                    f"tail of {self.log_file}:\n"
                    f"{_tail(self.log_file)}"
                )
            time.sleep(0.2)

    def _alive(self, pid: int) -> bool:
        proc = _CHILDREN.get(pid)
        if proc is not None:
            return proc.poll() is None
        return processes.alive(pid)

    def down(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker: SIGTERM (controlled shutdown), then SIGKILL after ``timeout_s``.

        Parameters
        ----------
        timeout_s
            Grace period before SIGKILL.

        Returns
        -------
        bool
            True if a running broker was stopped.

        Raises
        ------
        BrokerError
            If the JVM survives SIGKILL.
        """
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout_s):
            logger.warning(
                "Kafka (pid %d) ignored SIGTERM for %.0f s; sending SIGKILL", pid, timeout_s
            )
            os.kill(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 10.0):
                raise BrokerError(f"Kafka JVM (pid {pid}) survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return True

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        proc = _CHILDREN.get(pid)
        if proc is not None:
            try:
                proc.wait(timeout=timeout_s)  # reaps our child: no zombie left
            except subprocess.TimeoutExpired:
                return False
            del _CHILDREN[pid]
            return True
        deadline = time.monotonic() + timeout_s
        while processes.alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def status(
        self, *, extra_conf: Mapping[str, str] | None = None, timeout_s: float = 10.0
    ) -> ClusterStatus:
        """Describe the running broker.

        Parameters
        ----------
        extra_conf
            Extra librdkafka settings.
        timeout_s
            Bound of each request.

        Returns
        -------
        ClusterStatus
            Bootstrap, pid, topics with partitions and watermarks.

        Raises
        ------
        BrokerError
            If the broker is not running.
        """
        pid = self.running_pid()
        if pid is None:
            raise BrokerError(
                f"the local Kafka broker is not running (no live pid in {self.pid_file})"
            )
        return cluster_status(self.bootstrap, extra_conf=extra_conf, pid=pid, timeout_s=timeout_s)
