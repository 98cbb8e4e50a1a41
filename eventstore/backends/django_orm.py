"""The SQL event store, through the Django ORM (SQLite, MySQL/MariaDB, PostgreSQL)."""

import json
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from django.db import IntegrityError, OperationalError, connections, transaction
from django.utils import timezone

from eventstore.models import OutboxEntry, SnapshotRecord, StoredEventRecord
from eventstore.snapshots import Snapshot, SnapshotStore
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


# Reads fetch these columns as tuples: building a model instance per row cost
# more than everything else in a replay of the whole store.
_COLUMNS = ("event_id", "stream_id", "version", "event_type", "data", "occurred_at", "metadata", "position")


def _stored_events(records) -> list[StoredEvent]:
    return [
        StoredEvent(event_id=i, stream_id=s, version=v, event_type=t, data=d, occurred_at=o, metadata=m, position=p)
        for i, s, v, t, d, o, m, p in records.values_list(*_COLUMNS)
    ]


class _Statements(NamedTuple):
    insert: str  # one event
    insert_after: str  # one event, only if the stream has version %s (its parameters after the row's)
    outbox: str  # one outbox row
    exists: str  # whether the stream has version %s


class _AppendSql:
    """An append's statements for one database (built once per connection alias, once connected)."""

    def __init__(self, connection):
        meta = StoredEventRecord._meta
        quote = connection.ops.quote_name
        events = quote(meta.db_table)
        columns = ", ".join(quote(meta.get_field(name).column) for name in _INSERTED)
        stream, version = (quote(meta.get_field(name).column) for name in ("stream_id", "version"))
        # RETURNING where the database has it (SQLite 3.35, MariaDB 10.5, PostgreSQL), else the cursor's lastrowid.
        self.returning = bool(connection.features.can_return_columns_from_insert)
        returning = f" RETURNING {quote(meta.pk.column)}" if self.returning else ""
        # MySQL wants a FROM for a WHERE; the others would take DUAL for a table name.
        from_dual = " FROM DUAL" if connection.vendor == "mysql" else ""
        outbox = f"INSERT INTO {quote(OutboxEntry._meta.db_table)} ({quote(OutboxEntry._meta.pk.column)}) VALUES "

        def statements(mark: str) -> _Statements:
            values = ", ".join([mark] * len(_INSERTED))
            exists = f"SELECT 1 FROM {events} WHERE {stream} = {mark} AND {version} = {mark}"
            return _Statements(
                insert=f"INSERT INTO {events} ({columns}) VALUES ({values}){returning}",
                insert_after=(
                    f"INSERT INTO {events} ({columns}) SELECT {values}{from_dual} WHERE EXISTS ({exists}){returning}"
                ),
                outbox=f"{outbox}({mark})",
                exists=exists,
            )

        # Django's cursors take %s everywhere; the drivers' own take their paramstyle.
        self.django = statements("%s")
        self.driver = statements("?" if connection.Database.paramstyle == "qmark" else "%s")
        # How a transaction of its own begins on the driver's cursor, on the databases
        # the suite runs on (others go through Django's atomic blocks); on SQLite, as
        # Django begins one (BEGIN IMMEDIATE: settings.SQLITE_OPTIONS).
        mode = getattr(connection, "transaction_mode", None)
        self.begin = {"sqlite": f"BEGIN {mode}" if mode else "BEGIN", "mysql": "START TRANSACTION"}.get(
            connection.vendor
        )
        self.native_uuid = connection.features.has_native_uuid_field

    def row(self, ops, stream_id: str, version: int, event: NewEvent, recorded_at) -> list:
        """The values to insert, converted as the model's fields convert them (minus the layers around that)."""
        return [
            event.event_id if self.native_uuid else event.event_id.hex,  # UUIDField
            stream_id,
            version,
            event.event_type,
            ops.adapt_json_value(event.data, None),  # JSONField
            ops.adapt_json_value(event.metadata, None),
            ops.adapt_datetimefield_value(event.occurred_at),  # DateTimeField: aware, stored as UTC
            recorded_at,
        ]


_INSERTED = ("event_id", "stream_id", "version", "event_type", "data", "metadata", "occurred_at", "recorded_at")
# Statements built once per connection (alias and vendor) and kind (_AppendSql, _OutboxSql).
BuiltOnce = TypeVar("BuiltOnce")
_statements_by_connection: dict[tuple[str, str, object], object] = {}


def _built_for_connection(connection, kind: Callable[[Any], BuiltOnce]) -> BuiltOnce:
    key = (connection.alias, connection.vendor, kind)
    if key not in _statements_by_connection:
        _statements_by_connection[key] = kind(connection)
    return _statements_by_connection[key]  # type: ignore[return-value]  # built by `kind` just above


def _append_sql(connection) -> _AppendSql:
    return _built_for_connection(connection, _AppendSql)


class _OutboxSql:
    """The relay's statements (it runs after every command on the embedded stack), built once per connection.

    The outbox is read from its own table, in its key's order, joined to the
    events by key: the cost follows the outbox, not the store (read from the
    events' side, every unpublished() scanned the whole store).
    """

    def __init__(self, connection):
        quote = connection.ops.quote_name
        events, outbox = quote(StoredEventRecord._meta.db_table), quote(OutboxEntry._meta.db_table)
        event_key, outbox_key = quote(StoredEventRecord._meta.pk.column), quote(OutboxEntry._meta.pk.column)
        columns = ", ".join(f"e.{quote(StoredEventRecord._meta.get_field(name).column)}" for name in _COLUMNS)
        self.unpublished = (
            f"SELECT {columns} FROM {outbox} o INNER JOIN {events} e ON e.{event_key} = o.{outbox_key} "
            f"ORDER BY o.{outbox_key} LIMIT %s"
        )
        event_id = quote(StoredEventRecord._meta.get_field("event_id").column)
        self._delete = (
            f"DELETE FROM {outbox} WHERE {outbox_key} IN (SELECT {event_key} FROM {events} WHERE {event_id} IN "
        )
        self.native_uuid = connection.features.has_native_uuid_field

    def mark_published(self, event_ids: Sequence[uuid.UUID]) -> tuple[str, list]:
        """The DELETE and its parameters (the ids as the UUIDField stores them)."""
        marks = ", ".join(["%s"] * len(event_ids))
        return f"{self._delete}({marks}))", [i if self.native_uuid else i.hex for i in event_ids]


def _outbox_sql(connection) -> _OutboxSql:
    return _built_for_connection(connection, _OutboxSql)


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
        connection = connections[self.using]
        attempts = 1 if connection.in_atomic_block else DEADLOCK_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                return self._append_once(connection, stream_id, expected_version, events)
            except IntegrityError:
                raise ConcurrencyConflict(stream_id, expected_version) from None
            except OperationalError as error:
                if not self._is_deadlock(error):
                    raise
                # Another writer held this stream's next version: it usually
                # wins, and a retry then meets its row as a conflict.
                logger.debug("append to %s deadlocked (attempt %d of %d)", stream_id, attempt, attempts)
        raise ConcurrencyConflict(stream_id, expected_version)

    def _append_once(self, connection, stream_id, expected_version, events: Sequence[NewEvent]) -> list[StoredEvent]:
        # Plain SQL: building these statements through the ORM took several times
        # as long as running them. Each event is one INSERT; the first also refuses
        # an expected version beyond the stream's end (a gap) by inserting only if
        # version `expected_version` exists. The unique (stream_id, version) key
        # settles races; the outbox rows go in the same transaction.
        connection.close_if_health_check_failed()
        connection.ensure_connection()
        sql = _append_sql(connection)
        if connection.in_atomic_block or sql.begin is None or not connection.autocommit:
            # Part of a caller's transaction (a savepoint in it), or a database
            # this does not know how to begin on: Django's transaction and cursor.
            with transaction.atomic(using=self.using), connection.cursor() as cursor:
                return self._insert(cursor, connection.ops, sql, sql.django, stream_id, expected_version, events)
        # Its own transaction (every command's): begun and ended here, on the
        # driver's cursor, under Django's error translation. This spares
        # Django's layers around each statement and, on MySQL, the two
        # round trips that switch autocommit off and on again around an atomic block.
        with connection.wrap_database_errors:
            cursor = connection.connection.cursor()
            cursor.execute(sql.begin)
            try:
                stored = self._insert(cursor, connection.ops, sql, sql.driver, stream_id, expected_version, events)
                cursor.execute("COMMIT")
            except BaseException:
                try:
                    cursor.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    # A connection that cannot roll back is not used again (the server rolls back).
                    connection.close()
                raise
            cursor.close()
        return stored

    def _insert(
        self, cursor, ops, sql: _AppendSql, statements: _Statements, stream_id, expected_version, events
    ) -> list[StoredEvent]:
        recorded_at = ops.adapt_datetimefield_value(timezone.now())
        stored: list[StoredEvent] = []
        for version, event in enumerate(events, start=expected_version + 1):
            row = sql.row(ops, stream_id, version, event, recorded_at)
            if version == 1 or stored:
                cursor.execute(statements.insert, row)
                inserted = True
            else:
                cursor.execute(statements.insert_after, [*row, stream_id, expected_version])
                inserted = sql.returning or cursor.rowcount == 1
            if sql.returning:
                returned = cursor.fetchone()
                position = None if returned is None else returned[0]
            else:
                position = cursor.lastrowid if inserted else None
            if position is None:
                raise ConcurrencyConflict(stream_id, expected_version)
            stored.append(
                StoredEvent(
                    event_id=event.event_id,
                    stream_id=stream_id,
                    version=version,
                    event_type=event.event_type,
                    data=event.data,
                    occurred_at=event.occurred_at,
                    metadata=event.metadata,
                    position=position,
                )
            )
            cursor.execute(statements.outbox, [position])
        if not stored and expected_version:  # nothing to store, but a gap is still a conflict
            cursor.execute(statements.exists, [stream_id, expected_version])
            if cursor.fetchone() is None:
                raise ConcurrencyConflict(stream_id, expected_version)
        return stored

    def load_stream(self, stream_id, after_version=0, *, limit=None):
        # Ordered and limited on the unique (stream_id, version) index: a page reads only its rows.
        records = self._records().filter(stream_id=stream_id, version__gt=after_version).order_by("version")
        return _stored_events(records if limit is None else records[:limit])

    def stream_version(self, stream_id):
        # The index's last entry for the stream: versions are contiguous, so this is also its length.
        latest = self._records().filter(stream_id=stream_id).order_by("-version").values_list("version", flat=True)
        return latest.first() or 0

    def read_all(self, after_position=0, batch_size=1000) -> Iterator[StoredEvent]:
        # A replay reads the whole store: the rows come from the cursor as they are and
        # are converted here a column at a time (every JSON document of a batch in one
        # parse), for about 60% of the CPU time of the ORM's converters, value by value.
        connection = connections[self.using]
        records = self._records().order_by("position").values_list(*_COLUMNS)
        while True:
            sql, params = records.filter(position__gt=after_position)[:batch_size].query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            if not rows:
                return
            yield from _events_from_rows(rows, connection.timezone)
            after_position = rows[-1][-1]

    def count_events(self):
        return self._records().count()

    def unpublished(self, limit=500):
        # The rows are converted as read_all converts them, for a fraction of the ORM's converters' time.
        connection = connections[self.using]
        with connection.cursor() as cursor:
            cursor.execute(_outbox_sql(connection).unpublished, [limit])
            rows = cursor.fetchall()
        return _events_from_rows(rows, connection.timezone) if rows else []

    def mark_published(self, event_ids):
        event_ids = list(event_ids)
        if not event_ids:
            return
        connection = connections[self.using]
        sql, params = _outbox_sql(connection).mark_published(event_ids)
        with connection.cursor() as cursor:  # one statement: atomic by itself
            cursor.execute(sql, params)


class DjangoSnapshotStore(SnapshotStore):
    """One row per stream in `event_store_snapshots`, in the event store's database."""

    def __init__(self, using: str = "default"):
        self.using = using

    def _records(self):
        return SnapshotRecord.objects.using(self.using)

    def get(self, stream_id):
        row = self._records().filter(stream_id=stream_id).values_list("version", "schema", "state").first()
        return None if row is None else Snapshot(stream_id, *row)

    def save(self, snapshot):
        fields = {
            "version": snapshot.version,
            "schema": snapshot.schema,
            "state": snapshot.state,
            "taken_at": timezone.now(),
        }
        # One UPDATE decides "not older than the stored one", so racing savers keep the later.
        not_later = self._records().filter(stream_id=snapshot.stream_id, version__lte=snapshot.version)
        # Each statement in its own transaction (a savepoint inside a caller's), so a
        # failure never spoils a caller's transaction, and on InnoDB the shared lock a
        # duplicate insert takes is gone before the UPDATE that follows it: savers racing
        # to insert a stream's first snapshot, then to update it, would deadlock.
        with transaction.atomic(using=self.using):
            if not_later.update(**fields):
                return
        try:
            with transaction.atomic(using=self.using):
                self._records().create(stream_id=snapshot.stream_id, **fields)
        except IntegrityError:
            # There is one now (a later one, or a racer's): keep ours only if it is not older.
            with transaction.atomic(using=self.using):
                not_later.update(**fields)

    def delete(self, stream_id):
        with transaction.atomic(using=self.using):
            self._records().filter(stream_id=stream_id).delete()


def _events_from_rows(rows: list[tuple], tz) -> list[StoredEvent]:
    """StoredEvents from raw _COLUMNS rows, converted as the model's fields would convert them."""
    event_ids, stream_ids, versions, types, datas, times, metadatas, positions = zip(*rows, strict=True)
    return list(
        map(
            StoredEvent,
            [i if isinstance(i, uuid.UUID) else uuid.UUID(i) for i in event_ids],
            stream_ids,
            versions,
            types,
            _json_documents(datas),
            _aware_times(times, tz),
            _json_documents(metadatas),
            positions,
        )
    )


def _json_documents(values: Sequence) -> list:
    """The stored JSON documents, decoded all in one parse when the driver gives text.

    The database holds only valid documents (JSONField checks them), so joined
    into one array they decode to one element each.
    """
    if all(isinstance(value, str) for value in values):
        return json.loads(f"[{','.join(values)}]")
    return [json.loads(value) if isinstance(value, (str, bytes)) else value for value in values]


def _aware_times(values: Sequence, tz) -> list[datetime]:
    """Stored times as the DateTimeField gives them: text or naive times are in the database's time zone."""
    values = [datetime.fromisoformat(value) if isinstance(value, str) else value for value in values]
    return [value if value.tzinfo is not None else value.replace(tzinfo=tz) for value in values]
