"""A throwaway MongoDB-protocol server for tests: SecantusDB in its own process.

SecantusDB (GPL-2.0) is a test-only tool: it runs as a separate process and the
product never imports it. It speaks the wire protocol with transactions and
unique indexes, and advertises itself as a single-node replica set.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import pytest

SERVER_COMMAND = "secantusd-py"
STARTUP_TIMEOUT_SECONDS = 30
SHUTDOWN_TIMEOUT_SECONDS = 15


class MongoServerUnavailable(Exception):
    """The test server could not be found or started."""


def _find_server_binary() -> str:
    # pytest is often run as .venv/bin/pytest without the venv on PATH.
    beside_python = Path(sys.executable).parent / SERVER_COMMAND
    if beside_python.exists():
        return str(beside_python)
    on_path = shutil.which(SERVER_COMMAND)
    if on_path:
        return on_path
    raise MongoServerUnavailable(
        f"{SERVER_COMMAND} not found beside {sys.executable} or on PATH: pip install secantusdb==0.7.0b3"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Runs in the child before exec: if pytest itself is killed outright, the
    # kernel sends the server SIGTERM instead of leaving it running (Linux only).
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


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(SHUTDOWN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _start(binary: str, data_dir: Path) -> tuple[subprocess.Popen, int, Path]:
    """Start the server on a free port; retried in case another process took the port first."""
    config = data_dir / "secantusd.toml"
    config.write_text("")  # an explicit, empty config: never pick up ~/.secantus or /etc/secantus
    failures = []
    for attempt in range(3):
        port = _free_port()
        log_path = data_dir / f"server-{attempt}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                 "--storage-path", str(data_dir / "data"), "--log-level", "WARNING"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            if _accepts_connections(port):
                return process, port, log_path
            time.sleep(0.05)
        _stop(process)
        failures.append(f"port {port}: exit code {process.returncode}; log: {log_path.read_text()[-2000:]!r}")
    raise MongoServerUnavailable(f"{SERVER_COMMAND} did not start: " + " | ".join(failures))


@contextmanager
def running_mongo_server() -> Iterator[str]:
    """Yield `mongodb://127.0.0.1:PORT` for a fresh server in a temp dir; stop and delete it after."""
    binary = _find_server_binary()
    with tempfile.TemporaryDirectory(prefix="techbank-mongo-") as tmp:
        process, port, _ = _start(binary, Path(tmp))
        try:
            yield f"mongodb://127.0.0.1:{port}"
        finally:
            _stop(process)


def _required_in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[str]:
    """The base URL of a MongoDB-protocol server shared by the session's tests.

    Skipped when no server can be started, except in CI (CI=true), where that fails.
    """
    with ExitStack() as stack:
        try:
            url = stack.enter_context(running_mongo_server())
        except MongoServerUnavailable as error:
            if _required_in_ci():
                pytest.fail(f"CI=true needs the MongoDB test server: {error}", pytrace=False)
            pytest.skip(f"no MongoDB test server: {error}")
        yield url
