"""Long streams: the time to load one account with 100,000 events, on SQLite, MariaDB and MongoDB.

Per backend, in a new database, in a case of its own: seed one account's
history straight into the event store (bulk inserts of valid events, not
measured), less the last `snapshot_every`; store one more event through a
unit of work (whose first save after a load that found no snapshot of a long
stream writes one), then the last `snapshot_every - 1` the same way, as
commands would (too few to be due another snapshot). So each measured load
starts from a snapshot and replays the most events it ever has to: the worst
case between snapshots.

Measured: the median of `loads` loads through the composition root's
repository, against the baseline of the same account loaded by full replay
(a repository without snapshots, as before them). Both must give the same state.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from datetime import UTC

from bench.framework import Measurement, percentile, run_case

TARGET_MS = 10
SNAPSHOT_EVERY = 100
LABELS = {"sqlite": "SQLite", "mariadb": "MariaDB", "mongo": "MongoDB protocol (SecantusDB)"}


def run(session) -> list[Measurement]:
    events = session.sizes.pick(100_000, 2_000)
    loads = session.sizes.pick(50, 5)
    baseline_loads = session.sizes.pick(3, 2)
    measurements = []
    for backend in ("sqlite", "mariadb", "mongo"):
        case = run_case(
            "bench.workloads.long_streams:load_long_stream",
            env=_env(session, backend),
            backend=backend,
            events=events,
            loads=loads,
            baseline_loads=baseline_loads,
        ).result
        measurements.append(
            Measurement(
                workload="long-streams",
                subject=f"TechBank, {LABELS[backend]}",
                metric=f"load {events // 1000}k-event account",
                value=case["median_ms"],
                unit="ms",
                baseline="full replay",
                baseline_value=case["baseline_median_ms"],
                higher_is_better=False,
                target=f"< {TARGET_MS} ms",
                met=case["median_ms"] < TARGET_MS,
                details=case,
            )
        )
    return measurements


def _env(session, backend: str) -> dict[str, str]:
    env = {
        "TECHBANK_EVENT_BUS": "inline",
        "TECHBANK_SNAPSHOT_EVERY": str(SNAPSHOT_EVERY),
        "TECHBANK_LOG_LEVEL": "WARNING",
    }
    if backend == "sqlite":
        return {**env, "TECHBANK_EVENT_STORE": "sql", "DATABASE_URL": session.sqlite_url("long-streams")}
    if backend == "mariadb":
        return {**env, "TECHBANK_EVENT_STORE": "sql", "DATABASE_URL": session.mariadb_url("long_streams")}
    return {
        **env,
        "DATABASE_URL": session.sqlite_url("long-streams-unused"),  # nothing here touches it
        "TECHBANK_EVENT_STORE": "mongo",
        "TECHBANK_MONGO_URL": f"{session.mongo_url()}/techbank_bench_{uuid.uuid4().hex[:8]}?retryWrites=false",
    }


# -- the case, in its own process ------------------------------------------------------


def load_long_stream(*, backend: str, events: int, loads: int, baseline_loads: int) -> dict:
    from django.conf import settings

    from accounts.adapters.repository import BankAccountRepository
    from accounts.adapters.unit_of_work import EventStoreUnitOfWork
    from accounts.domain.commands import CommandMetadata
    from entrypoints.wiring import services

    every = settings.TECHBANK_SNAPSHOT_EVERY
    tail = every - 1  # the most events a load replays after its snapshot
    started = time.perf_counter()
    account_id = _seed(backend, events=events - tail - 1)
    seed_seconds = time.perf_counter() - started

    repository = services().account_repository
    snapshots = services().snapshot_store
    uow = EventStoreUnitOfWork(repository)
    # The first save after a load that found no snapshot of the long stream writes one; then the tail.
    for _ in range(tail + 1):
        with uow:
            account = uow.accounts.get(account_id)
            account.deposit("1.00", metadata=CommandMetadata(issued_by="bench", correlation_id="bench-tail"))
            uow.commit()
    snapshot = snapshots.get(str(account_id))
    assert snapshot is not None and snapshot.version == events - tail, snapshot and snapshot.version

    full_replay = BankAccountRepository(services().event_store)  # no snapshots: as before them
    expected = full_replay.load(account_id)
    assert expected.account.version == events, expected.account.version
    snapshot_times, snapshot_cpu = _time_loads(repository, account_id, loads, expected)
    baseline_times, baseline_cpu = _time_loads(full_replay, account_id, baseline_loads, expected)
    return {
        "events": events,
        "events_replayed_after_snapshot": events - snapshot.version,
        "snapshot_every": every,
        "snapshot_bytes": len(json.dumps(snapshot.state)),
        "loads": loads,
        "median_ms": round(statistics.median(snapshot_times), 3),
        "min_ms": round(min(snapshot_times), 3),
        "p90_ms": round(percentile(snapshot_times, 0.9), 3),
        # This process's CPU alone (not the database server's): steadier than wall time on a shared machine.
        "cpu_median_ms": round(statistics.median(snapshot_cpu), 3),
        "baseline_loads": baseline_loads,
        "baseline_median_ms": round(statistics.median(baseline_times), 1),
        "baseline_min_ms": round(min(baseline_times), 1),
        "baseline_cpu_median_ms": round(statistics.median(baseline_cpu), 1),
        "seed_seconds": round(seed_seconds, 1),
    }


def _time_loads(repository, account_id, loads: int, expected) -> tuple[list[float], list[float]]:
    """Each load's wall and CPU milliseconds."""
    times, cpu = [], []
    for _ in range(loads):
        started, cpu_started = time.perf_counter(), time.process_time()
        loaded = repository.load(account_id)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        assert (loaded.account.version, loaded.account.balance, loaded.handled) == (
            expected.account.version,
            expected.account.balance,
            expected.handled,
        ), "a load gave another state than the full replay"
    return times, cpu


def _seed(backend: str, *, events: int) -> uuid.UUID:
    """One account's `events` valid events, straight into the (empty) event store; returns its id."""
    from bench.seeding import bench_events

    if backend == "mongo":
        _seed_mongo(events)
    else:
        _seed_sql(events)
    return uuid.UUID(next(bench_events(events=1, accounts=1)).stream_id)


def _seed_sql(events: int, batch_size: int = 5_000) -> None:
    """As appends would have stored them, through the model (only the event store's tables are migrated)."""
    from django.core.management import call_command
    from django.db import transaction

    from bench.seeding import bench_events
    from eventstore.models import StoredEventRecord

    call_command("migrate", "eventstore", verbosity=0)
    assert not StoredEventRecord.objects.exists(), "seed a new database"
    batch = []
    for e in bench_events(events=events, accounts=1):
        batch.append(
            StoredEventRecord(
                event_id=e.event_id,
                stream_id=e.stream_id,
                version=e.version,
                event_type=e.event_type,
                data=e.data,
                metadata=e.metadata,
                occurred_at=e.occurred_at,
            )
        )
        if len(batch) == batch_size:
            with transaction.atomic():
                StoredEventRecord.objects.bulk_create(batch)
            batch.clear()
    with transaction.atomic():
        StoredEventRecord.objects.bulk_create(batch)


def _seed_mongo(events: int, batch_size: int = 10_000) -> None:
    """As appends would have stored them (documents validated by the store's classes), not in the outbox."""
    from datetime import datetime

    from bench.seeding import bench_events
    from entrypoints.wiring import services
    from eventstore.backends.mongo import POSITION_COUNTER, MongoEventStore
    from eventstore.store import NewEvent

    store = services().event_store
    assert isinstance(store, MongoEventStore), "seeding straight into the collections needs the MongoDB store"
    assert store.count_events() == 0, "seed a new database"
    recorded_at = datetime.now(UTC)
    batch = []
    for e in bench_events(events=events, accounts=1):
        event = NewEvent(e.event_id, e.event_type, e.data, e.occurred_at, e.metadata)
        batch.append(store._new_document(e.stream_id, e.version - 1, e.position, event, recorded_at).to_mongo())
        if len(batch) == batch_size:
            store._event_collection.insert_many(batch)
            batch.clear()
    if batch:
        store._event_collection.insert_many(batch)
    # Later appends take positions after the seeded ones.
    store._counter_collection.update_one({"_id": POSITION_COUNTER}, {"$set": {"value": events}})
