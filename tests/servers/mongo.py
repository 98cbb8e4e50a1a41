"""A throwaway MongoDB-protocol server for tests: SecantusDB in its own process.

SecantusDB (GPL-2.0) is a test-only tool: it runs as a separate process and the
product never imports it. It speaks the wire protocol with transactions and
unique indexes, and advertises itself as a single-node replica set.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers.processes import ServerUnavailable, start_on_free_port, stop, unavailable

SERVER_COMMAND = "secantusd-py"


def _find_server_binary() -> str:
    # pytest is often run as .venv/bin/pytest without the venv on PATH.
    beside_python = Path(sys.executable).parent / SERVER_COMMAND
    if beside_python.exists():
        return str(beside_python)
    on_path = shutil.which(SERVER_COMMAND)
    if on_path:
        return on_path
    raise ServerUnavailable(
        f"{SERVER_COMMAND} not found beside {sys.executable} or on PATH: pip install secantusdb==0.7.0b3"
    )


@contextmanager
def running_mongo_server() -> Iterator[str]:
    """Yield `mongodb://127.0.0.1:PORT` for a fresh server in a temp dir; stop and delete it after."""
    binary = _find_server_binary()
    with tempfile.TemporaryDirectory(prefix="techbank-mongo-") as tmp:
        data_dir = Path(tmp)
        command = _server_command(binary, data_dir)
        process, port = start_on_free_port(
            "secantusd", command, ready=lambda port: True, data_dir=data_dir, shutdown_seconds=15
        )
        try:
            yield f"mongodb://127.0.0.1:{port}"
        finally:
            stop(process, 15)


def _server_command(binary: str, data_dir: Path) -> Callable[..., list[str]]:
    """command(port, *extra): secantusd on `port`, keeping its data in `data_dir`, with an explicit,
    empty config (never ~/.secantus or /etc/secantus)."""
    config = data_dir / "secantusd.toml"
    config.write_text("")

    def command(port: int, *extra: str) -> list[str]:
        return [
            binary,
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(data_dir / "data"),
            "--log-level",
            "WARNING",
            *extra,
        ]

    return command


@contextmanager
def running_mongo_server_with_user(user: str, password: str, database: str) -> Iterator[str]:
    """Yield `mongodb://127.0.0.1:PORT` of a fresh server that requires authentication (--auth),
    on which `user` (password `password`) may read and write `database`.

    As SecantusDB (and mongod) want it: the user is made on the server started without
    --auth, which is then started again with it on the same data.
    """
    from pymongo import MongoClient

    binary = _find_server_binary()
    with tempfile.TemporaryDirectory(prefix="techbank-mongo-auth-") as tmp:
        data_dir = Path(tmp)
        command = _server_command(binary, data_dir)
        process, port = start_on_free_port(
            "secantusd-setup", command, ready=lambda port: True, data_dir=data_dir, shutdown_seconds=15
        )
        try:
            client: MongoClient = MongoClient(
                f"mongodb://127.0.0.1:{port}/?retryWrites=false", serverSelectionTimeoutMS=10_000
            )
            client[database].command("createUser", user, pwd=password, roles=[{"role": "readWrite", "db": database}])
            client.close()
        finally:
            stop(process, 15)
        process, port = start_on_free_port(
            "secantusd-auth",
            lambda port: command(port, "--auth"),
            ready=lambda port: True,
            data_dir=data_dir,
            shutdown_seconds=15,
        )
        try:
            yield f"mongodb://127.0.0.1:{port}"
        finally:
            stop(process, 15)


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[str]:
    """The base URL of a MongoDB-protocol server shared by the session's tests."""
    try:
        server = running_mongo_server()
        url = server.__enter__()
    except ServerUnavailable as error:
        unavailable(f"no MongoDB test server: {error}")
    try:
        yield url
    finally:
        server.__exit__(None, None, None)
