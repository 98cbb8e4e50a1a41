"""A private Redis that requires a password, for the tests of authentication.

The machine's own Redis (TECHBANK_TEST_REDIS_URL) has none; docker-compose.yml's
has one (--requirepass), and the app passes it in CELERY_BROKER_URL. The
redis-server binary is started on a free port, keeps nothing on disk, and its
process group is killed at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers.processes import ServerUnavailable, start_on_free_port, stop, unavailable


@contextmanager
def running_redis_server(password: str) -> Iterator[str]:
    """Yield `redis://127.0.0.1:PORT` (no password in it) of a fresh redis-server that requires `password`."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable("redis-server not found on PATH (Debian: apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="techbank-redis-") as tmp:
        process, port = start_on_free_port(
            "redis-server",
            lambda port: [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--requirepass",
                password,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            ready=lambda port: True,
            data_dir=Path(tmp),
        )
        try:
            yield f"redis://127.0.0.1:{port}"
        finally:
            stop(process)


def redis_requiring(password: str) -> Iterator[str]:
    """The body of a fixture: `yield from redis_requiring(PASSWORD)` gives the private server's URL.

    Without redis-server the test skips, and fails on CI.
    """
    server = running_redis_server(password)
    try:
        url = server.__enter__()
    except ServerUnavailable as error:
        unavailable(f"no private Redis: {error}")
    try:
        yield url
    finally:
        server.__exit__(None, None, None)
