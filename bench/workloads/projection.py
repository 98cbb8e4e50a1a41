"""Workload 3: 100,000 events already on the topic, consumed into an empty MariaDB read model.

Prepared first, not measured: the events in the SQL event store (the
projection fills gaps from it) and their envelopes on a fresh topic of the
run's Kafka-protocol broker. Then the real consumer (consume_batch, as the
consumer command and the Celery task call it) reads them as a new group member
and is timed from its first poll to the last commit; joining the group is not
counted. The baseline: the raw driver (MySQLdb) writing the same final rows
(every ledger row, every summary) into the same tables of another new database,
in batches of the consumer's batch size, one transaction per batch.
"""

from __future__ import annotations

import time
import uuid

from bench.framework import Measurement, Stopwatch, run_case
from bench.seeding import bench_events, seed_event_store
from bench.workloads.rebuild import INSERT_LEDGER, INSERT_SUMMARY, RawProjection, _fingerprint

TARGET_RATE = 10_000
TARGET_RATIO = 0.5
PRODUCE_BATCH = 5_000


def run(session) -> list[Measurement]:
    events = session.sizes.pick(100_000, 5_000)
    accounts = session.sizes.pick(10_000, 500)
    topic = f"bench.projection.{uuid.uuid4().hex[:8]}"
    env = {
        "DATABASE_URL": session.mariadb_url("projection"),
        "TECHBANK_EVENT_BUS": "kafka",
        "TECHBANK_KAFKA_BOOTSTRAP": session.kafka_bootstrap(),
        "TECHBANK_KAFKA_TOPIC": topic,
        "TECHBANK_KAFKA_GROUP": f"bench-{topic}",
        "TECHBANK_LOG_LEVEL": "WARNING",  # kafka-python logs every (re)join and reset at INFO
    }
    run_case("bench.workloads.projection:prepare", env=env, events=events, accounts=accounts)
    techbank = run_case("bench.workloads.projection:consume", env=env, events=events)
    raw = run_case(
        "bench.workloads.projection:raw_writes",
        env={"DATABASE_URL": session.mariadb_url("projection_raw")},
        events=events,
        accounts=accounts,
    )
    if techbank.result["fingerprint"] != raw.result["fingerprint"]:
        raise AssertionError(f"the baseline wrote other rows: {techbank.result} vs {raw.result}")
    rate, raw_rate = events / techbank.result["seconds"], events / raw.result["seconds"]
    return [
        Measurement(
            workload="projection",
            subject="TechBank, MariaDB",
            metric="events/s",
            value=rate,
            unit="events/s",
            baseline="raw MySQLdb batched",
            baseline_value=raw_rate,
            target=f">= {TARGET_RATE:,} events/s and >= {TARGET_RATIO}x raw",
            met=rate >= TARGET_RATE and rate >= TARGET_RATIO * raw_rate,
            details={
                "events": events,
                "accounts": accounts,
                "seconds": round(techbank.result["seconds"], 2),
                "batches": techbank.result["batches"],
                "join_seconds": round(techbank.result["join_seconds"], 2),
                "raw_seconds": round(raw.result["seconds"], 2),
                "raw_batch": raw.result["batch"],
                "peak_rss_mb": round(techbank.peak_rss_mb, 1),
            },
        )
    ]


def prepare(*, events: int, accounts: int) -> dict:
    """The events in the store and, as envelopes, on the case's topic."""
    from entrypoints.wiring import services

    seed_event_store(events=events, accounts=accounts)
    transport = services().transport
    batch = []
    for event in bench_events(events=events, accounts=accounts):
        batch.append(event)
        if len(batch) == PRODUCE_BATCH:
            transport.send(batch)
            batch.clear()
    transport.send(batch)
    transport.close()
    return {"events": events}


def consume(*, events: int) -> dict:
    """consume_batch until every event is in, timed from the first poll after joining the group."""
    from entrypoints.tasks import projection_subscription
    from entrypoints.wiring import services
    from projections.consumer import consume_batch

    store = services().event_store
    subscription = projection_subscription.get()
    with Stopwatch() as joining:  # join the group (a poll does), then go back to the start of the topic
        while not subscription.poll(max_records=1, timeout_ms=500):
            pass
        subscription.rewind()
    received = applied = batches = 0
    deadline = time.monotonic() + 600
    with Stopwatch() as watch:
        while received < events and time.monotonic() < deadline:
            outcome = consume_batch(subscription=subscription, event_store=store, timeout_ms=500)
            received += outcome.received
            applied += outcome.applied
            batches += bool(outcome.received)
    projection_subscription.close()
    if applied != events:
        raise AssertionError(f"received {received}, applied {applied} of {events} events")
    return {
        "seconds": watch.seconds,
        "join_seconds": joining.seconds,
        "batches": batches,
        "fingerprint": _fingerprint(),
    }


def raw_writes(*, events: int, accounts: int) -> dict:
    """The baseline: MySQLdb writing the final rows, computed beforehand, in the consumer's batch size."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    batch = settings.TECHBANK_PROJECTION_BATCH
    call_command("migrate", verbosity=0)
    projection = RawProjection()
    for e in bench_events(events=events, accounts=accounts):  # the rows, in driver values (not timed)
        occurred_at = e.occurred_at.replace(tzinfo=None)  # UTC, as Django stores it
        projection.apply(e.stream_id, e.version, e.event_type, e.event_id.hex, e.data, occurred_at)
    ledger, summaries = projection.ledger, projection.summary_rows()
    connection.ensure_connection()
    db = connection.connection  # MySQLdb's own connection
    insert_ledger, insert_summary = INSERT_LEDGER.format(mark="%s"), INSERT_SUMMARY.format(mark="%s")
    with Stopwatch() as watch:
        cursor = db.cursor()
        for start in range(0, len(ledger), batch):
            cursor.execute("START TRANSACTION")
            cursor.executemany(insert_ledger, ledger[start : start + batch])
            db.commit()
        for start in range(0, len(summaries), batch):
            cursor.execute("START TRANSACTION")
            cursor.executemany(insert_summary, summaries[start : start + batch])
            db.commit()
    return {"seconds": watch.seconds, "batch": batch, "fingerprint": _fingerprint()}
