"""Workload 1: commands in process, on each event-store backend, against two baselines.

The mix (bench.workloads.mix): open 1,000 accounts, then 20,000 deposits and
withdrawals (quick: 50 and 300). Each subject runs it in its own process, on a
fresh database, and is timed from the first command to the last (setup and
migrations excluded):

- TechBank: the command bus that bootstrap builds (handlers,
  repository, event store), with the full stack's publisher: the append's
  outbox rows are left for the relay (its wake-up is a no-op here, there being
  no Redis), so what is timed is the command side. The embedded stack's inline
  projection is measured beside it on MariaDB (the HTTP workload's database),
  on 1,000 accounts and 3,000 commands (quick: 20 and 80).
- raw driver: one INSERT of an equivalent event row per command (the same
  columns, JSON and unique key), in its own transaction, through sqlite3 (the
  PRAGMAs of techbank_site/settings.py, BEGIN IMMEDIATE), MySQLdb (the same
  session options) or pymongo (a transaction per insert, with the read and
  write concerns of our MongoDB append). It reads nothing: it knows each
  stream's next version.
- eventsourcing: the library's banking example (bench/peers) on its SQLite
  persistence (synchronous=NORMAL, as ours) and, through eventsourcing-django,
  on MariaDB; in its own virtualenv (.venv-peer, bench/requirements-peer.txt),
  as it needs Django < 5.2. It has no MongoDB persistence.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime

from bench.framework import ROOT, Measurement, percentile, run_case
from bench.workloads.mix import Op, cents_text, mix

WORKLOAD = "commands"
PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"
RAW_TARGET = 0.5
PEER_TARGET = 1.0
BENCH_ENV = {"TECHBANK_SECRET_KEY": secrets.token_urlsafe(50), "TECHBANK_LOG_LEVEL": "WARNING"}  # new each run
LABELS = {"sqlite": "SQLite", "mariadb": "MariaDB", "mongo": "MongoDB protocol"}
DRIVERS = {"sqlite": "sqlite3", "mariadb": "MySQLdb", "mongo": "pymongo"}


# -- timing, shared by every case -------------------------------------------------


def drive(ops: list[Op], execute) -> dict:
    """Run `execute(op)` for each op, timing each; the figures a case returns."""
    latencies = []
    open_seconds = 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    for op in ops:
        began = time.perf_counter()
        execute(op)
        took = time.perf_counter() - began
        latencies.append(took)
        if op.kind == "open":
            open_seconds += took
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    return {
        "commands": len(ops),
        "seconds": round(seconds, 4),
        "commands_per_second": round(len(ops) / seconds, 1),
        "open_seconds": round(open_seconds, 4),
        # This process's CPU time per command: steadier than the wall clock on a shared machine.
        "cpu_us_per_command": round(cpu_seconds / len(ops) * 1e6, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
    }


def _holder(account: int) -> str:
    return f"Bench Holder {account}"


def _account_type(account: int) -> str:
    return "SAVINGS" if account % 2 else "CURRENT"


# -- TechBank ----------------------------------------------------------------------


def techbank(*, accounts: int, commands: int, inline_projection: bool = False, migrate: bool = True) -> dict:
    """The mix through the command bus (Django is set up by bench.case_entry); `migrate=False`: it is done."""
    from decimal import Decimal

    from django.conf import settings
    from django.core.management import call_command

    from accounts.adapters.relay_nudge_publisher import RelayNudgePublisher
    from accounts.domain.commands import CommandMetadata, DepositFunds, OpenAccount, WithdrawFunds
    from entrypoints.wiring import services

    if migrate and inline_projection:
        call_command("migrate", verbosity=0)
    elif migrate and settings.TECHBANK_EVENT_STORE == "sql":
        call_command("migrate", "eventstore", verbosity=0)
    bus = services().bus
    if not inline_projection:
        bus.publisher = RelayNudgePublisher(lambda: None)  # the outbox waits for the relay
    store = services().event_store
    store.count_events()  # connect before the clock starts
    ids: list = [None] * accounts
    metadata = CommandMetadata(issued_by="bench", correlation_id="bench-commands")

    def execute(op: Op) -> None:
        amount = Decimal(cents_text(op.cents))
        if op.kind == "open":
            ids[op.account] = bus.handle(
                OpenAccount(
                    holder=_holder(op.account),
                    account_type=_account_type(op.account),
                    opening_balance=amount,
                    metadata=metadata,
                )
            ).id
        elif op.kind == "deposit":
            bus.handle(DepositFunds(account_id=ids[op.account], amount=amount, metadata=metadata))
        else:
            bus.handle(WithdrawFunds(account_id=ids[op.account], amount=amount, metadata=metadata))

    result = drive(mix(accounts, commands), execute)
    result["events_stored"] = store.count_events()
    return result


def _techbank_env(session, backend: str) -> dict[str, str]:
    env = {**BENCH_ENV, "TECHBANK_EVENT_STORE": "sql", "TECHBANK_EVENT_BUS": "inline"}
    if backend == "sqlite":
        return {**env, "DATABASE_URL": session.sqlite_url("commands")}
    if backend == "mariadb":
        return {**env, "DATABASE_URL": session.mariadb_url("commands")}
    return {
        **env,
        "DATABASE_URL": session.sqlite_url("commands-read"),  # untouched: nothing projects here
        "TECHBANK_EVENT_STORE": "mongo",
        "TECHBANK_MONGO_URL": f"{session.mongo_url()}/techbank_bench_{uuid.uuid4().hex[:8]}",
    }


# -- the raw drivers ---------------------------------------------------------------


def _event_row(op: Op, version: int):
    """(event_type, data, metadata) of the event TechBank stores for this command."""
    if op.kind == "open":
        data = {
            "holder": _holder(op.account),
            "account_type": _account_type(op.account),
            "opening_balance": cents_text(op.cents),
        }
        event_type = "AccountOpened"
    else:
        data = {"amount": cents_text(op.cents)}
        event_type = "FundsDeposited" if op.kind == "deposit" else "FundsWithdrawn"
    metadata = {"issued_by": "bench", "correlation_id": "bench-commands", "idempotency_key": ""}
    return event_type, data, metadata


SQLITE_DDL = (
    'CREATE TABLE "event_store" ("position" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"event_id" char(32) NOT NULL UNIQUE, "stream_id" varchar(64) NOT NULL, '
    '"version" integer unsigned NOT NULL CHECK ("version" >= 0), "event_type" varchar(100) NOT NULL, '
    '"data" text NOT NULL CHECK ((JSON_VALID("data") OR "data" IS NULL)), '
    '"metadata" text NOT NULL CHECK ((JSON_VALID("metadata") OR "metadata" IS NULL)), '
    '"occurred_at" datetime NOT NULL, "recorded_at" datetime NOT NULL, '
    'CONSTRAINT "event_store_stream_version_unique" UNIQUE ("stream_id", "version"))'
)
MYSQL_DDL = (
    "CREATE TABLE `event_store` (`position` bigint AUTO_INCREMENT NOT NULL PRIMARY KEY, "
    "`event_id` uuid NOT NULL UNIQUE, `stream_id` varchar(64) NOT NULL, "
    "`version` integer UNSIGNED NOT NULL CHECK (`version` >= 0), `event_type` varchar(100) NOT NULL, "
    "`data` json NOT NULL, `metadata` json NOT NULL, `occurred_at` datetime(6) NOT NULL, "
    "`recorded_at` datetime(6) NOT NULL, "
    "CONSTRAINT `event_store_stream_version_unique` UNIQUE (`stream_id`, `version`))"
)
INSERT_COLUMNS = "(event_id, stream_id, version, event_type, data, metadata, occurred_at, recorded_at)"


def raw_sqlite(*, path: str, accounts: int, commands: int) -> dict:
    import sqlite3

    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(SQLITE_DDL)
    insert = f"INSERT INTO event_store {INSERT_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    streams: list[str | None] = [None] * accounts
    versions = [0] * accounts

    def execute(op: Op) -> None:
        if op.kind == "open":
            streams[op.account] = str(uuid.uuid4())
        versions[op.account] += 1
        event_type, data, metadata = _event_row(op, versions[op.account])
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            insert,
            (
                uuid.uuid4().hex,
                streams[op.account],
                versions[op.account],
                event_type,
                json.dumps(data),
                json.dumps(metadata),
                now,
                now,
            ),
        )
        connection.execute("COMMIT")

    result = drive(mix(accounts, commands), execute)
    result["events_stored"] = connection.execute("SELECT COUNT(*) FROM event_store").fetchone()[0]
    return result


def raw_mariadb(*, url: str, accounts: int, commands: int) -> dict:
    from urllib.parse import urlsplit

    import MySQLdb

    parts = urlsplit(url)
    connection = MySQLdb.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        passwd=parts.password or "",
        db=parts.path.lstrip("/"),
        charset="utf8mb4",
        connect_timeout=5,
        init_command="SET sql_mode='STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    )
    cursor = connection.cursor()
    cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    cursor.execute(MYSQL_DDL)
    connection.autocommit(False)
    insert = f"INSERT INTO event_store {INSERT_COLUMNS} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    streams: list[str | None] = [None] * accounts
    versions = [0] * accounts

    def execute(op: Op) -> None:
        if op.kind == "open":
            streams[op.account] = str(uuid.uuid4())
        versions[op.account] += 1
        event_type, data, metadata = _event_row(op, versions[op.account])
        now = datetime.now(UTC).replace(tzinfo=None)
        cursor.execute(
            insert,
            (
                str(uuid.uuid4()),
                streams[op.account],
                versions[op.account],
                event_type,
                json.dumps(data),
                json.dumps(metadata),
                now,
                now,
            ),
        )
        connection.commit()

    result = drive(mix(accounts, commands), execute)
    cursor.execute("SELECT COUNT(*) FROM event_store")
    result["events_stored"] = cursor.fetchone()[0]
    connection.close()
    return result


def raw_mongo(*, url: str, accounts: int, commands: int) -> dict:
    from pymongo import MongoClient
    from pymongo.read_concern import ReadConcern
    from pymongo.write_concern import WriteConcern

    client: MongoClient = MongoClient(url, uuidRepresentation="standard", tz_aware=True)
    events = client.get_default_database()["event_store"]
    events.create_index([("stream_id", 1), ("version", 1)], unique=True, name="stream_version_unique")
    events.create_index("event_id", unique=True)
    streams: list[str | None] = [None] * accounts
    versions = [0] * accounts
    position = 0

    def execute(op: Op) -> None:
        nonlocal position
        if op.kind == "open":
            streams[op.account] = str(uuid.uuid4())
        versions[op.account] += 1
        position += 1
        event_type, data, metadata = _event_row(op, versions[op.account])
        now = datetime.now(UTC)
        document = {
            "_id": position,
            "event_id": uuid.uuid4(),
            "stream_id": streams[op.account],
            "version": versions[op.account],
            "event_type": event_type,
            "data": data,
            "metadata": metadata,
            "occurred_at": now,
            "occurred_at_microsecond": now.microsecond,
            "recorded_at": now,
        }
        with client.start_session() as session:
            session.with_transaction(
                lambda s: events.insert_one(document, session=s),
                read_concern=ReadConcern("snapshot"),
                write_concern=WriteConcern("majority"),
            )

    result = drive(mix(accounts, commands), execute)
    result["events_stored"] = events.count_documents({})
    client.close()
    return result


# -- the workload -----------------------------------------------------------------


def _raw(session, backend: str, sizes: dict) -> dict:
    if backend == "sqlite":
        return run_case(
            "bench.workloads.commands:raw_sqlite", path=session.sqlite_url("raw").removeprefix("sqlite:///"), **sizes
        ).result
    if backend == "mariadb":
        return run_case("bench.workloads.commands:raw_mariadb", url=session.mariadb_url("raw"), **sizes).result
    return run_case(
        "bench.workloads.commands:raw_mongo",
        url=f"{session.mongo_url()}/techbank_bench_raw_{uuid.uuid4().hex[:8]}",
        **sizes,
    ).result


def _peer(session, backend: str, sizes: dict) -> dict | None:
    """The eventsourcing library on this backend, or None where it has no persistence for it."""
    if backend == "mongo":
        return None
    if not PEER_PYTHON.exists():
        print(
            f"commands: no {PEER_PYTHON} (make bench makes it): the eventsourcing baseline is left out",
            file=sys.stderr,
            flush=True,
        )
        return None
    env = {"DATABASE_URL": "", "DJANGO_SETTINGS_MODULE": ""}  # bench.case_entry must not set TechBank up there
    if backend == "sqlite":
        kwargs = {"sqlite_path": session.sqlite_url("peer").removeprefix("sqlite:///")}
    else:
        kwargs = {"mysql_url": session.mariadb_url("peer")}
    return run_case(
        "bench.peers.eventsourcing_case:run", env=env, python=str(PEER_PYTHON), backend=backend, **kwargs, **sizes
    ).result


def run(session) -> list[Measurement]:
    sizes = {"accounts": session.sizes.pick(1_000, 50), "commands": session.sizes.pick(20_000, 300)}
    measurements = []
    for backend in ("sqlite", "mariadb", "mongo"):
        ours = run_case("bench.workloads.commands:techbank", env=_techbank_env(session, backend), **sizes).result
        raw = _raw(session, backend, sizes)
        peer = _peer(session, backend, sizes)
        subject = f"TechBank ({LABELS[backend]})"
        details = {"sizes": sizes, "techbank": ours, "raw": raw, "eventsourcing": peer}
        versus_raw = ours["commands_per_second"] / raw["commands_per_second"]
        measurements.append(
            Measurement(
                WORKLOAD,
                subject,
                "commands/s",
                ours["commands_per_second"],
                "cmd/s",
                baseline=f"raw {DRIVERS[backend]}",
                baseline_value=raw["commands_per_second"],
                target=f">= {RAW_TARGET}x",
                met=versus_raw >= RAW_TARGET,
                details=details,
            )
        )
        if peer is not None:
            versus_peer = ours["commands_per_second"] / peer["commands_per_second"]
            measurements.append(
                Measurement(
                    WORKLOAD,
                    subject,
                    "commands/s",
                    ours["commands_per_second"],
                    "cmd/s",
                    baseline=f"eventsourcing {peer['library']['eventsourcing']}",
                    baseline_value=peer["commands_per_second"],
                    target=f">= {PEER_TARGET}x",
                    met=versus_peer >= PEER_TARGET,
                    details=details,
                )
            )
        if backend == "mariadb":
            # The embedded stack's publisher: each command also projects its events before it returns.
            # Several times slower: a smaller mix.
            inline_sizes = {"accounts": session.sizes.pick(1_000, 20), "commands": session.sizes.pick(3_000, 80)}
            inline = run_case(
                "bench.workloads.commands:techbank",
                env=_techbank_env(session, backend),
                inline_projection=True,
                **inline_sizes,
            ).result
            measurements.append(
                Measurement(
                    WORKLOAD,
                    "TechBank (MariaDB, inline projection)",
                    "commands/s",
                    inline["commands_per_second"],
                    "cmd/s",
                    baseline="TechBank (MariaDB)",
                    baseline_value=ours["commands_per_second"],
                    details={"sizes": inline_sizes, "techbank_inline": inline},
                )
            )
    return measurements
