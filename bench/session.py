"""The servers a run needs, started once, on demand, and stopped at the end.

MariaDB is the machine's own server (a scratch database per use, dropped at
the end); the MongoDB- and Kafka-protocol stand-ins are the ones the tests
start (tests/servers), on free ports.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

MYSQL_SERVER_URL = os.environ.get("TECHBANK_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306")


@dataclass
class Sizes:
    """The workload sizes of a run: the full run's, or quick mode's."""

    quick: bool

    def pick(self, full, quick):
        return quick if self.quick else full


@dataclass
class BenchSession:
    quick: bool
    stack: ExitStack = field(default_factory=ExitStack)
    _mongo: str | None = None
    _kafka: str | None = None
    _databases: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.sizes = Sizes(self.quick)
        self.scratch = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix="techbank-bench-")))

    def __enter__(self) -> BenchSession:
        return self

    def __exit__(self, *exc) -> None:
        for name in self._databases:
            _mysql_execute(f"DROP DATABASE IF EXISTS `{name}`")
        self.stack.close()

    def sqlite_url(self, name: str) -> str:
        """A new, empty SQLite database file for one case."""
        path = self.scratch / f"{name}-{uuid.uuid4().hex[:8]}.sqlite3"
        return f"sqlite:///{path}"

    def mariadb_url(self, name: str) -> str:
        """A new, empty MariaDB database (utf8mb4_bin, as the tests use), dropped at the end of the run."""
        database = f"techbank_bench_{name}_{uuid.uuid4().hex[:8]}"
        _mysql_execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        self._databases.append(database)
        return f"{MYSQL_SERVER_URL}/{database}"

    def mongo_url(self) -> str:
        """The base URL of the run's MongoDB-protocol server (SecantusDB)."""
        if self._mongo is None:
            from tests.servers.mongo import running_mongo_server

            self._mongo = self.stack.enter_context(running_mongo_server())
        return self._mongo

    def kafka_bootstrap(self) -> str:
        """The bootstrap address of the run's Kafka-protocol broker (noida-db)."""
        if self._kafka is None:
            from tests.servers.kafka import running_kafka_broker

            self._kafka = self.stack.enter_context(running_kafka_broker("noida"))
        return self._kafka


def _mysql_execute(statement: str) -> None:
    import dj_database_url
    import MySQLdb

    db = dj_database_url.parse(MYSQL_SERVER_URL + "/mysql")
    connection = MySQLdb.connect(
        host=db.get("HOST") or "127.0.0.1",
        port=int(db.get("PORT") or 3306),
        user=db.get("USER") or "root",
        passwd=db.get("PASSWORD") or "",
    )
    try:
        connection.cursor().execute(statement)
    finally:
        connection.close()
