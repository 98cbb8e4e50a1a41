"""Valid synthetic events for the workloads, and filling a scratch SQL event store with them fast.

The events are bench.seed_events.synthetic_events (accounts open, then deposit
and withdraw without ever going below zero, interleaved), with deterministic
event ids, so that a workload can seed the store in one case and publish or
replay the very same events in another.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

from bench.seed_events import synthetic_events
from eventstore.store import StoredEvent

METADATA = {"issued_by": "bench", "correlation_id": "bench-seed"}
INSERT_BATCH = 10_000


def bench_events(*, events: int, accounts: int, seed: int = 4) -> Iterator[StoredEvent]:
    """The events in global order, as the store holds them (positions 1, 2, ... in an empty store)."""
    ids = random.Random(seed + 1)
    for position, (stream_id, version, event_type, data, occurred_at) in enumerate(
        synthetic_events(events=events, accounts=accounts, seed=seed), start=1
    ):
        event_id = uuid.UUID(int=ids.getrandbits(128), version=4)
        yield StoredEvent(event_id, stream_id, version, event_type, data, occurred_at, METADATA, position)


def seed_event_store(*, events: int, accounts: int, seed: int = 4) -> dict:
    """Migrate the case's database and insert the events into its (empty) event store table.

    Inserted with the driver's executemany in large batches, each value prepared by
    its model field (so the rows are what the ORM would have written), not through
    the command bus: a million commands would take hours. Not in the outbox (as if published).
    """
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from eventstore.models import StoredEventRecord

    call_command("migrate", verbosity=0)
    if StoredEventRecord.objects.exists():
        raise RuntimeError("the event store is not empty: seed a new database")
    columns = ("event_id", "stream_id", "version", "event_type", "data", "metadata", "occurred_at", "recorded_at")
    prepare = [StoredEventRecord._meta.get_field(name).get_db_prep_save for name in columns]
    table = connection.ops.quote_name(StoredEventRecord._meta.db_table)
    insert = (
        f"INSERT INTO {table} ({', '.join(map(connection.ops.quote_name, columns))}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    recorded_at = timezone.now()
    metadata = prepare[5](METADATA, connection)  # the same for every event
    prep_id, prep_data, prep_time = prepare[0], prepare[4], prepare[6]
    batch: list[tuple] = []
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":  # a scratch database: no need to survive a power cut
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA cache_size=-131072")  # 128 MB: the unique keys' indexes fit
        recorded = prep_time(recorded_at, connection)
        for e in bench_events(events=events, accounts=accounts, seed=seed):
            batch.append(
                (
                    prep_id(e.event_id, connection),
                    e.stream_id,
                    e.version,
                    e.event_type,
                    prep_data(e.data, connection),
                    metadata,
                    prep_time(e.occurred_at, connection),
                    recorded,
                )
            )
            if len(batch) == INSERT_BATCH:
                with transaction.atomic():
                    cursor.executemany(insert, batch)
                batch.clear()
        if batch:
            with transaction.atomic():
                cursor.executemany(insert, batch)
    return {"events": StoredEventRecord.objects.count()}
