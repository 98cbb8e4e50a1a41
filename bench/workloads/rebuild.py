"""Workload 4: rebuild the read model from 1,000,000 stored events, on SQLite and MariaDB.

Per backend, in a new database: seed the event store (bulk inserts, not
measured), then time `rebuild_read_model` into the empty read model in its own
process (its peak memory is the case's), then the baseline: the raw driver
reading every event from the store table and writing the same ledger and
summary rows in batches, in one transaction, with the least Python in between.
Both must leave the same rows (a fingerprint of both read models is compared;
in quick mode verify_read_model also checks TechBank's rebuild row by row).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

from bench.framework import Measurement, Stopwatch, run_case

TARGET_SECONDS = 60
TARGET_MB = 500
READ_BATCH = 10_000
WRITE_BATCH = 10_000


def run(session) -> list[Measurement]:
    events = session.sizes.pick(1_000_000, 20_000)
    accounts = session.sizes.pick(10_000, 1_000)
    measurements = []
    for subject, url in (
        ("TechBank, SQLite", session.sqlite_url("rebuild")),
        ("TechBank, MariaDB", session.mariadb_url("rebuild")),
    ):
        env = {"DATABASE_URL": url}
        seeded = run_case("bench.seeding:seed_event_store", env=env, events=events, accounts=accounts)
        assert seeded.result["events"] == events, seeded.result
        techbank = run_case("bench.workloads.rebuild:techbank_rebuild", env=env, verify=session.quick)
        raw = run_case("bench.workloads.rebuild:raw_rebuild", env=env)
        if techbank.result["fingerprint"] != raw.result["fingerprint"]:
            raise AssertionError(f"{subject}: the baseline wrote other rows: {techbank.result} vs {raw.result}")
        seconds, peak = techbank.result["seconds"], techbank.peak_rss_mb
        # A target is for a million events: a quick run scales its time to one.
        per_million = seconds * 1_000_000 / events
        measurements.append(
            Measurement(
                workload="rebuild",
                subject=subject,
                metric=f"{events:,} events" if events != 1_000_000 else "1M events",
                value=seconds,
                unit="s",
                baseline="raw driver, batched",
                baseline_value=raw.result["seconds"],
                higher_is_better=False,
                target=f"< {TARGET_SECONDS} s, < {TARGET_MB} MB",
                met=per_million < TARGET_SECONDS and peak < TARGET_MB,
                details={
                    "events": events,
                    "accounts": techbank.result["accounts"],
                    "peak_rss_mb": round(peak, 1),
                    "baseline_peak_rss_mb": round(raw.peak_rss_mb, 1),
                    "events_per_second": round(events / seconds),
                    "seconds_per_million_events": round(per_million, 1),
                    "verified": techbank.result.get("verified"),
                },
            )
        )
    return measurements


def techbank_rebuild(*, verify: bool) -> dict:
    """rebuild_read_model into the (empty) read model, timed; with `verify`, verify_read_model after it."""
    from entrypoints.wiring import services
    from projections.rebuild import rebuild_read_model
    from projections.verification import read_model_differences

    store = services().event_store
    with Stopwatch() as watch:
        events, accounts = rebuild_read_model(event_store=store)
    result = {"seconds": watch.seconds, "events": events, "accounts": accounts, "fingerprint": _fingerprint()}
    if verify:
        result["verified"] = not any(read_model_differences(event_store=store))
    return result


def raw_rebuild() -> dict:
    """The baseline: the driver's own connection, tuples in and out, executemany in batches, one transaction."""
    from django.db import connection

    _empty_read_model()
    connection.ensure_connection()
    db = connection.connection  # the DB-API connection itself: sqlite3 or MySQLdb
    mark = "?" if connection.vendor == "sqlite" else "%s"
    read = (
        "SELECT position, stream_id, version, event_type, event_id, data, occurred_at FROM event_store "
        f"WHERE position > {mark} ORDER BY position LIMIT {READ_BATCH}"
    )
    projection = RawProjection()
    with Stopwatch() as watch:
        cursor = db.cursor()
        cursor.execute("BEGIN IMMEDIATE" if connection.vendor == "sqlite" else "START TRANSACTION")
        position = 0
        while True:
            cursor.execute(read, (position,))
            rows = cursor.fetchall()
            if not rows:
                break
            position = rows[-1][0]
            for _, stream_id, version, event_type, event_id, data, occurred_at in rows:
                projection.apply(stream_id, version, event_type, event_id, json.loads(data), occurred_at)
            if len(projection.ledger) >= WRITE_BATCH:
                cursor.executemany(INSERT_LEDGER.format(mark=mark), projection.ledger)
                projection.ledger.clear()
        cursor.executemany(INSERT_LEDGER.format(mark=mark), projection.ledger)
        summaries = projection.summary_rows()
        for start in range(0, len(summaries), WRITE_BATCH):
            cursor.executemany(INSERT_SUMMARY.format(mark=mark), summaries[start : start + WRITE_BATCH])
        db.commit()
    return {"seconds": watch.seconds, "fingerprint": _fingerprint()}


INSERT_LEDGER = (
    "INSERT INTO projections_ledgerentry (account_id, version, event_id, kind, amount, balance_after, occurred_at) "
    "VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark})"
)
INSERT_SUMMARY = (
    "INSERT INTO projections_accountsummary (id, holder, account_type, balance, status, opened_at, closed_at, version) "
    "VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark})"
)
KINDS = {
    "AccountOpened": "OPENING",
    "FundsDeposited": "DEPOSIT",
    "FundsWithdrawn": "WITHDRAWAL",
    "AccountClosed": "CLOSURE",
}


class RawProjection:
    """The baselines' projection: the bank's arithmetic on plain tuples, nothing checked, rows in driver values."""

    def __init__(self):
        # stream id -> [id, holder, type, balance, status, opened, closed, version]
        self.summaries: dict[str, list] = {}
        self.ledger: list[tuple] = []

    def apply(self, stream_id, version, event_type, event_id, data, occurred_at) -> None:
        kind = KINDS[event_type]
        if kind == "OPENING":
            amount = Decimal(data["opening_balance"])
            summary = self.summaries[stream_id] = [
                uuid.UUID(stream_id).hex,
                data["holder"],
                data["account_type"],
                amount,
                "OPEN",
                occurred_at,
                None,
                0,
            ]
        else:
            summary = self.summaries[stream_id]
            if kind == "DEPOSIT":
                amount = Decimal(data["amount"])
                summary[3] += amount
            elif kind == "WITHDRAWAL":
                amount = Decimal(data["amount"])
                summary[3] -= amount
            else:
                amount, summary[4], summary[6] = Decimal("0.00"), "CLOSED", occurred_at
        summary[7] = version
        self.ledger.append((summary[0], version, event_id, kind, str(amount), str(summary[3]), occurred_at))

    def summary_rows(self) -> list[tuple]:
        return [(*s[:3], str(s[3]), *s[4:]) for s in self.summaries.values()]


def _empty_read_model() -> None:
    """TRUNCATE where there is one: after a DELETE of a million rows, InnoDB purges them during the baseline.

    (That made the baseline 2.5 times slower on MariaDB.)
    """
    from django.core.management.color import no_style
    from django.db import connection

    from projections.models import AccountSummary, LedgerEntry

    tables = [LedgerEntry._meta.db_table, AccountSummary._meta.db_table]
    with connection.cursor() as cursor:
        for statement in connection.ops.sql_flush(no_style(), tables, reset_sequences=True):  # MySQL: TRUNCATE
            cursor.execute(statement)


def _fingerprint() -> list:
    """What both read models must agree on: counts, versions and money, in integers (no float sums)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), SUM(version), SUM(ROUND(balance_after * 100)), SUM(ROUND(amount * 100)) "
            "FROM projections_ledgerentry"
        )
        ledger = cursor.fetchone()
        cursor.execute(
            "SELECT COUNT(*), SUM(version), SUM(ROUND(balance * 100)), "
            "SUM(CASE WHEN status = 'CLOSED' THEN 1 ELSE 0 END) FROM projections_accountsummary"
        )
        summaries = cursor.fetchone()
    return [int(value or 0) for value in (*ledger, *summaries)]
