"""The commands workload through the eventsourcing library (bench.workloads.commands runs this in .venv-peer)."""

from __future__ import annotations

import os
from decimal import Decimal
from importlib.metadata import version

from bench.workloads.commands import drive
from bench.workloads.mix import Op, cents_text, mix


def _sqlite_synchronous_normal() -> None:
    """TechBank's SQLite runs WAL with synchronous=NORMAL; give the library's connections the same."""
    from eventsourcing.sqlite import SQLiteConnectionPool

    create = SQLiteConnectionPool._create_connection

    def create_connection(self):
        connection = create(self)
        connection._sqlite_conn.execute("PRAGMA synchronous=NORMAL")
        return connection

    SQLiteConnectionPool._create_connection = create_connection


def run(*, backend: str, accounts: int, commands: int, sqlite_path: str = "", mysql_url: str = "") -> dict:
    if backend == "sqlite":
        _sqlite_synchronous_normal()
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": sqlite_path}
    elif backend == "mariadb":
        os.environ["BENCH_PEER_MYSQL_URL"] = mysql_url
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.peers.django_settings"
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        env = {"PERSISTENCE_MODULE": "eventsourcing_django"}
    else:
        raise ValueError(f"eventsourcing has no {backend} persistence here")

    from bench.peers.bankaccounts import BankAccounts

    app = BankAccounts(env=env)
    app.recorder.max_notification_id()  # connect before the clock starts
    ids: list = [None] * accounts

    def execute(op: Op) -> None:
        amount = Decimal(cents_text(op.cents))
        if op.kind == "open":
            ids[op.account] = app.open_account(f"Bench Holder {op.account}", "bench@example.com", amount)
        elif op.kind == "deposit":
            app.deposit_funds(ids[op.account], amount)
        else:
            app.withdraw_funds(ids[op.account], amount)

    result = drive(mix(accounts, commands), execute)
    result["events_stored"] = app.recorder.max_notification_id()
    result["library"] = {name: version(name) for name in ("eventsourcing", "eventsourcing-django", "Django")}
    return result
