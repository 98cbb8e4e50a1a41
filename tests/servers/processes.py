"""Starting and stopping the test servers' processes, and saying when one is missing.

Every server runs in its own process group, on a free port, and is killed with
its whole group at the end; if pytest itself is killed, the kernel sends it
SIGTERM (Linux), so no process is ever left behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


class ServerUnavailable(Exception):
    """A test server could not be found or started."""


def ci_forbids_skips(environ=os.environ) -> bool:
    """True on CI: CI set to anything but empty, false or 0 (runners set true, 1, TRUE, ...).

    The same rule as scripts/is-ci.sh, which the Makefile and scripts/test-mariadb.sh use.
    """
    return environ.get("CI", "").lower() not in {"", "false", "0"}


def unavailable(reason: str):
    """Skip locally; on CI a missing service must fail, never pass as a skip."""
    if ci_forbids_skips():
        pytest.fail(f"{reason} (CI={os.environ['CI']}: a missing service is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _die_with_parent() -> None:
    # Runs in the child before exec: if pytest is killed outright, the kernel
    # sends the child SIGTERM instead of leaving it running.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(command: list[str], log_path: Path, **popen_options) -> subprocess.Popen:
    """Start `command` in its own process group, output to `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            **popen_options,
        )


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def start_on_free_port(
    name: str,
    command_for_port: Callable[[int], list[str]],
    ready: Callable[[int], bool],
    data_dir: Path,
    *,
    startup_seconds: float = 30,
    shutdown_seconds: float = 10,
) -> tuple[subprocess.Popen, int]:
    """Start a server and wait until `ready(port)`; retried if another process took the port first."""
    failures = []
    for attempt in range(3):
        port = free_port()
        log_path = data_dir / f"{name}-{attempt}.log"
        process = spawn(command_for_port(port), log_path)
        try:
            deadline = time.monotonic() + startup_seconds
            while process.poll() is None and time.monotonic() < deadline:
                if accepts_connections(port) and ready(port):
                    return process, port
                time.sleep(0.05)
        except BaseException:
            stop(process, shutdown_seconds)
            raise
        stop(process, shutdown_seconds)
        failures.append(f"port {port}: exit code {process.returncode}; log: {log_path.read_text()[-2000:]!r}")
    raise ServerUnavailable(f"{name} did not start: " + " | ".join(failures))
