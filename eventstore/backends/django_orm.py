"""The SQL event store, through the Django ORM (SQLite, MySQL/MariaDB, PostgreSQL)."""
import logging
from typing import Iterator, Sequence

from django.db import IntegrityError, OperationalError, connections, transaction

from eventstore.models import OutboxEntry, StoredEventRecord
from eventstore.store import ConcurrencyConflict, EventStore, NewEvent, StoredEvent

logger = logging.getLogger(__name__)

# MySQL/MariaDB ER_LOCK_DEADLOCK. InnoDB can pick an append as a deadlock victim
# when writers wait on the same (stream_id, version) key and the transaction
# holding it rolls back: each waiter then holds a shared lock on the key and
# wants an exclusive one. The victim's whole transaction is rolled back.
MYSQL_DEADLOCK = 1213
# How often an append that was a deadlock victim is retried (only when the
# append is its own transaction) before it is reported as a conflict.
DEADLOCK_ATTEMPTS = 3


def _to_stored(record: StoredEventRecord) -> StoredEvent:
    return StoredEvent(
        event_id=record.event_id,
        stream_id=record.stream_id,
        version=record.version,
        event_type=record.event_type,
        data=record.data,
        occurred_at=record.occurred_at,
        metadata=record.metadata,
        position=record.position,
    )


# Reads fetch these columns as tuples: building a model instance per row cost
# more than everything else in a replay of the whole store.
_COLUMNS = ("event_id", "stream_id", "version", "event_type", "data", "occurred_at", "metadata", "position")


def _stored_events(records) -> list[StoredEvent]:
    return [
        StoredEvent(event_id=i, stream_id=s, version=v, event_type=t, data=d, occurred_at=o, metadata=m, position=p)
        for i, s, v, t, d, o, m, p in records.values_list(*_COLUMNS)
    ]


class DjangoEventStore(EventStore):
    def __init__(self, using: str = "default"):
        self.using = using

    def _records(self):
        return StoredEventRecord.objects.using(self.using)

    def _is_deadlock(self, error: OperationalError) -> bool:
        return connections[self.using].vendor == "mysql" and bool(error.args) and error.args[0] == MYSQL_DEADLOCK

    def append(self, stream_id, expected_version, events: Sequence[NewEvent]):
        # Inside a caller's transaction a deadlock has already rolled all of it
        # back: retrying here would commit half of the caller's work.
        attempts = 1 if connections[self.using].in_atomic_block else DEADLOCK_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                return self._append_once(stream_id, expected_version, events)
            except IntegrityError:
                raise ConcurrencyConflict(stream_id, expected_version) from None
            except OperationalError as error:
                if not self._is_deadlock(error):
                    raise
                # Another writer held this stream's next version: it usually
                # wins, and a retry then meets its row as a conflict.
                logger.debug("append to %s deadlocked (attempt %d of %d)", stream_id, attempt, attempts)
        raise ConcurrencyConflict(stream_id, expected_version)

    def _append_once(self, stream_id, expected_version, events: Sequence[NewEvent]) -> list[StoredEvent]:
        records = [
            StoredEventRecord(
                event_id=e.event_id,
                stream_id=stream_id,
                version=expected_version + i,
                event_type=e.event_type,
                data=e.data,
                metadata=e.metadata,
                occurred_at=e.occurred_at,
            )
            for i, e in enumerate(events, start=1)
        ]
        with transaction.atomic(using=self.using):
            # The unique (stream_id, version) key settles races; this only
            # refuses an expected version beyond the stream's end (a gap).
            if expected_version and not self._records().filter(
                stream_id=stream_id, version=expected_version
            ).exists():
                raise ConcurrencyConflict(stream_id, expected_version)
            self._records().bulk_create(records)
            if any(r.position is None for r in records):
                # Backends without RETURNING (MySQL; MariaDB has it from 10.5): read the keys back.
                positions = dict(
                    self._records().filter(event_id__in=[r.event_id for r in records]).values_list("event_id", "position")
                )
                for r in records:
                    r.position = positions[r.event_id]
            OutboxEntry.objects.using(self.using).bulk_create([OutboxEntry(stored_event_id=r.position) for r in records])
        return [_to_stored(r) for r in records]

    def load_stream(self, stream_id, after_version=0):
        return _stored_events(self._records().filter(stream_id=stream_id, version__gt=after_version).order_by("version"))

    def read_all(self, after_position=0, batch_size=1000) -> Iterator[StoredEvent]:
        while True:
            batch = _stored_events(self._records().filter(position__gt=after_position).order_by("position")[:batch_size])
            if not batch:
                return
            yield from batch
            after_position = batch[-1].position

    def count_events(self):
        return self._records().count()

    def unpublished(self, limit=500):
        return _stored_events(self._records().filter(outboxentry__isnull=False).order_by("position")[:limit])

    def mark_published(self, event_ids):
        OutboxEntry.objects.using(self.using).filter(stored_event__event_id__in=list(event_ids)).delete()
