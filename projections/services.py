"""Services that write the read side: live projection, setting poison events aside, retry.

Rebuilding is in projections.rebuild, verifying in projections.verification;
both replay the store through projections.replay.
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import groupby, pairwise
from operator import attrgetter
from typing import TypeVar
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, DataError, Error, IntegrityError, OperationalError, connections, transaction
from django.db.models.constants import OnConflict
from django.utils import timezone

from eventstore.store import EventStore, StoredEvent
from eventstore.transports import envelope
from eventstore.transports.base import Delivery
from projections import dead_letters
from projections.models import AccountSummary, DeadLetter, DeadLetterSource, DeadLetterStatus, LedgerEntry
from projections.projectors import LedgerRow, apply_event

logger = logging.getLogger(__name__)
T = TypeVar("T")

# How many summaries one query locks: a batch from the topic may hold thousands of accounts.
LOCK_CHUNK_SIZE = 1_000
SUMMARY_FIELDS = ("holder", "account_type", "balance", "status", "opened_at", "closed_at", "version")
LEDGER_COLUMNS = ("account", "version", "event_id", "kind", "amount", "balance_after", "occurred_at")
# How often a projection that lost a race to another projector of the same
# account is tried again (MySQL/MariaDB: a duplicate first row, or a deadlock).
RACE_ATTEMPTS = 5
MYSQL_DEADLOCK = 1213


@dataclass(frozen=True)
class ReadModelTables:
    """The tables a projection writes: the live read model's, or a rebuild's copies beside them."""

    summary: str
    ledger: str


LIVE_TABLES = ReadModelTables(summary=AccountSummary._meta.db_table, ledger=LedgerEntry._meta.db_table)

# A write of the read rows that fails with one of these failed because of the
# event's values (a number too large for its column, say). Any other database
# error (the server down, a deadlock, a lost race, a missing table) is not the
# event's fault: it propagates, and the events are tried again later.
EVENT_CAUSED_WRITE_ERRORS = (DataError, ArithmeticError, ValueError, TypeError)


class EventNotApplicable(Exception):
    """Applying `event` failed because of the event itself (a poison event), not the infrastructure."""

    def __init__(self, event: StoredEvent, cause: Exception):
        self.event = event
        self.cause = cause
        super().__init__(
            f"event {event.event_id} ({event.event_type} v{event.version}): {type(cause).__name__}: {cause}"
        )


def project_events(*, events: Sequence[StoredEvent], event_store: EventStore) -> int:
    """Apply stored events to the read model, idempotently; returns how many applied.

    Events at or below an account's projected version are skipped (already
    applied). If an event arrives ahead of the next expected version, the
    missing ones are fetched from the event store first, so concurrent
    writers projecting out of order cannot leave a hole.

    An event that cannot be applied raises EventNotApplicable (its account's
    changes are rolled back; accounts before it in the batch stay applied);
    project_deliveries and project_events_isolating_poison set it aside instead.
    """
    applied = 0
    ordered = sorted(events, key=lambda e: (e.stream_id, e.version))
    for stream_id, stream_events in groupby(ordered, key=lambda e: e.stream_id):
        applied += project_stream(stream_id=stream_id, events=list(stream_events), event_store=event_store)
    return applied


def project_stream(
    *, stream_id: str, events: Sequence[StoredEvent], event_store: EventStore, tables: ReadModelTables = LIVE_TABLES
) -> int:
    """Apply one account's events (in version order) in one transaction; returns how many applied."""
    if not events:
        return 0
    return _retrying_lost_races(lambda: _project_stream_once(stream_id, events, event_store, tables))


def _project_stream_once(
    stream_id: str, events: Sequence[StoredEvent], event_store: EventStore, tables: ReadModelTables
) -> int:
    with transaction.atomic():
        summary = _summaries_for_update([UUID(stream_id)], tables).get(UUID(stream_id))
        pending = _unapplied(stream_id, events, summary.version if summary else 0, event_store)
        if not pending:
            return 0
        if summary is None:
            summary = AccountSummary(id=UUID(stream_id), version=0)
        entries = [apply_one_event(summary, event) for event in pending]
        try:
            account_summaries_upsert([summary], tables=tables)
            ledger_rows_insert(entries, tables=tables)
        except EVENT_CAUSED_WRITE_ERRORS as exc:
            # Which of several events holds the bad value cannot be told from here: the
            # first is named, and setting poison aside tries them one at a time, which tells.
            raise EventNotApplicable(pending[0], exc) from exc
        return len(entries)


def _retrying_lost_races(project: Callable[[], T]) -> T:
    """`project()`, again if another projector of the same account got there first.

    Two projectors (the live one and a rebuild catching up, or two consumers)
    may both find an account without a summary and both insert its first rows:
    the second fails on a unique key (or, on MySQL/MariaDB, is picked as a
    deadlock victim) and its transaction is rolled back. Tried again, it finds
    the other's rows and skips what they applied. Inside a caller's
    transaction it cannot be tried again (the caller's work is lost): it propagates.
    """
    for attempt in range(1, RACE_ATTEMPTS + 1):
        try:
            return project()
        except (IntegrityError, OperationalError) as error:
            lost_race = isinstance(error, IntegrityError) or _is_deadlock(error)
            if not lost_race or attempt == RACE_ATTEMPTS or connections[DEFAULT_DB_ALIAS].in_atomic_block:
                raise
            logger.debug("projection lost a race (attempt %d of %d): %s", attempt, RACE_ATTEMPTS, error)
    raise AssertionError("unreachable")


def _is_deadlock(error: OperationalError) -> bool:
    return connections[DEFAULT_DB_ALIAS].vendor == "mysql" and bool(error.args) and error.args[0] == MYSQL_DEADLOCK


def _unapplied(
    stream_id: str, events: Sequence[StoredEvent], projected: int, event_store: EventStore
) -> list[StoredEvent]:
    """The account's events after version `projected`, in order: those given, or the store's if they leave a gap.

    Empty if they are all applied already, or if the store has nothing after
    `projected` either (it lags the topic).
    """
    if events[-1].version <= projected:
        return []
    if events[0].version > projected + 1 or any(b.version != a.version + 1 for a, b in pairwise(events)):
        events = event_store.load_stream(stream_id, after_version=projected)
    return [event for event in events if event.version > projected]


def apply_one_event(summary: AccountSummary, event: StoredEvent) -> LedgerRow:
    """apply_event, with a failure that is the event's fault raised as EventNotApplicable."""
    try:
        return apply_event(summary, event)
    except Error:  # a database error is never the event's fault
        raise
    except Exception as exc:
        raise EventNotApplicable(event, exc) from exc


@dataclass
class ProjectionOutcome:
    applied: int = 0  # events applied to the read model
    dead_lettered: int = 0  # messages set aside in the dead-letter table (undecodable ones included)
    undecodable: int = 0


def project_deliveries(*, deliveries: Sequence[Delivery], event_store: EventStore) -> ProjectionOutcome:
    """Apply messages received from the topic; set aside the ones that cannot be applied.

    The batch is applied in one transaction; an account with an event that
    cannot be applied is then taken on its own, and its poison event and the
    ones behind it are set aside. Everything is stored (read rows and dead
    letters) when this returns, so the caller may commit the offsets.
    Infrastructure errors propagate: then nothing is to be committed, and the
    messages come again.
    """
    outcome = ProjectionOutcome()
    received: dict[UUID, Delivery] = {}
    for delivery in deliveries:
        if delivery.event is None:
            dead_letters.dead_letter_undecodable(delivery=delivery, source=DeadLetterSource.KAFKA)
            outcome.undecodable += 1
            outcome.dead_lettered += 1
        else:
            received.setdefault(delivery.event.event_id, delivery)
    applied, set_aside = _project_setting_poison_aside(
        [d.event for d in received.values() if d.event is not None], event_store, DeadLetterSource.KAFKA, received
    )
    outcome.applied += applied
    outcome.dead_lettered += set_aside
    return outcome


def project_events_isolating_poison(
    *,
    events: Sequence[StoredEvent],
    event_store: EventStore,
    source: str = DeadLetterSource.IN_PROCESS,
    tables: ReadModelTables = LIVE_TABLES,
) -> ProjectionOutcome:
    """project_events, except that an event that cannot be applied goes to the dead-letter table."""
    unique = list({e.event_id: e for e in reversed(events)}.values())
    applied, set_aside = _project_setting_poison_aside(unique, event_store, source, {}, tables)
    return ProjectionOutcome(applied=applied, dead_lettered=set_aside)


def _project_setting_poison_aside(
    events: Sequence[StoredEvent],
    event_store: EventStore,
    source: str,
    received: dict[UUID, Delivery],
    tables: ReadModelTables = LIVE_TABLES,
) -> tuple[int, int]:
    """All the accounts together if that works; an account with an event that cannot be applied on its own."""
    ordered = sorted(events, key=lambda e: (e.stream_id, e.version))
    streams = {stream_id: list(events) for stream_id, events in groupby(ordered, key=lambda e: e.stream_id)}
    try:
        applied, poisoned = _retrying_lost_races(lambda: _project_streams_together(streams, event_store, tables))
    except EVENT_CAUSED_WRITE_ERRORS:
        # The database refused a value: all rolled back, and one account at a time tells whose it was.
        applied, poisoned = 0, list(streams)
    set_aside = 0
    for stream_id in poisoned:
        stream_applied, stream_set_aside = _project_stream_setting_poison_aside(
            stream_id, streams[stream_id], event_store, source, received, tables
        )
        applied += stream_applied
        set_aside += stream_set_aside
    return applied, set_aside


def _project_streams_together(
    streams: dict[str, list[StoredEvent]], event_store: EventStore, tables: ReadModelTables = LIVE_TABLES
) -> tuple[int, list[str]]:
    """Apply many accounts' events in one transaction: (how many applied, the accounts left out).

    One query locks the summaries, the events are applied in memory, and the
    ledger rows and the summaries are written in one statement each: per event,
    this costs a fraction of a transaction per account. An account with an
    event that cannot be applied is left out (its rows are not written) for the
    caller to take on its own; a write the database refuses for a value raises,
    and everything is rolled back.
    """
    ids = {stream_id: UUID(stream_id) for stream_id in streams}
    with transaction.atomic():
        summaries = _summaries_for_update(list(ids.values()), tables)
        entries: list[LedgerRow] = []
        changed: list[AccountSummary] = []
        poisoned: list[str] = []
        for stream_id, events in streams.items():
            summary = summaries.get(ids[stream_id])
            pending = _unapplied(stream_id, events, summary.version if summary else 0, event_store)
            if not pending:
                continue
            if summary is None:
                summary = AccountSummary(id=ids[stream_id], version=0)
            try:
                stream_entries = [apply_one_event(summary, event) for event in pending]
            except EventNotApplicable:
                poisoned.append(stream_id)  # this summary is half applied: it is not written
                continue
            entries += stream_entries
            changed.append(summary)
        account_summaries_upsert(changed, tables=tables)
        ledger_rows_insert(entries, tables=tables)
    return len(entries), poisoned


def _summaries_for_update(ids: list[UUID], tables: ReadModelTables = LIVE_TABLES) -> dict[UUID, AccountSummary]:
    """The existing summaries among `ids` (in `tables`), locked until the transaction ends.

    Locked in id order, so that two batches sharing accounts wait for each other instead of deadlocking.
    Raw SQL, because the table may be a rebuild's copy, which has no model; the rows still come back as
    AccountSummary instances, converted as the ORM converts them.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    pk = AccountSummary._meta.pk
    columns = ", ".join(quote(AccountSummary._meta.get_field(name).column) for name in ("id", *SUMMARY_FIELDS))
    for_update = " FOR UPDATE" if connection.features.has_select_for_update else ""
    ids = sorted(ids)
    found: dict[UUID, AccountSummary] = {}
    for start in range(0, len(ids), LOCK_CHUNK_SIZE):
        chunk = ids[start : start + LOCK_CHUNK_SIZE]
        marks = ", ".join(["%s"] * len(chunk))
        locked = AccountSummary.objects.raw(
            f"SELECT {columns} FROM {quote(tables.summary)} WHERE {quote(pk.column)} IN ({marks}) "
            f"ORDER BY {quote(pk.column)}{for_update}",
            [pk.get_db_prep_value(account_id, connection) for account_id in chunk],
        )
        found.update((summary.id, summary) for summary in locked)
    return found


def _project_stream_setting_poison_aside(
    stream_id: str,
    events: list[StoredEvent],
    event_store: EventStore,
    source: str,
    received: dict[UUID, Delivery],
    tables: ReadModelTables = LIVE_TABLES,
) -> tuple[int, int]:
    """One account: all in one transaction if that works, else one event at a time up to the poison one.

    The events after a poison event cannot be applied either (versions stay
    contiguous), so they are set aside too, as blocked behind it: the topic's
    offsets move past them, and the row shows staff that the account is stuck
    and how far. Retrying the poison event catches the account up from the
    event store, blocked events included.
    """
    try:
        return project_stream(stream_id=stream_id, events=events, event_store=event_store, tables=tables), 0
    except EventNotApplicable:
        pass  # find which one: apply them one at a time
    applied = 0
    for index, event in enumerate(events):
        try:
            applied += project_stream(stream_id=stream_id, events=[event], event_store=event_store, tables=tables)
        except EventNotApplicable as failure:
            poison = failure.event
            dead_letters.dead_letter_event(
                event=poison, cause=failure.cause, source=source, delivery=received.get(poison.event_id)
            )
            # The poison may be an earlier event the store filled a gap with: then this one is blocked too.
            blocked = events[index + 1 :] if poison.event_id == event.event_id else events[index:]
            for later in blocked:
                dead_letters.dead_letter_blocked(
                    event=later, poison=poison, source=source, delivery=received.get(later.event_id)
                )
            return applied, len(blocked) + (poison.event_id == event.event_id)
    return applied, 0


@dataclass
class RetryReport:
    applied: int = 0  # rows retried successfully
    caught_up: int = 0  # other pending rows of the same accounts applied along with them
    failed: int = 0
    skipped: int = 0  # already applied before this retry reached them


def retry_dead_letters(*, dead_letters_to_retry: Iterable[DeadLetter], event_store: EventStore) -> RetryReport:
    """Apply dead-lettered events again, after the cause was fixed (a projector added, say).

    Each is decoded from its stored raw message and projected by the same code
    as live messages: a version already applied is skipped, so retrying is
    idempotent. On success the account is caught up from the event store (the
    events blocked behind it too). On failure the row keeps the new reason and
    counts the attempt. Infrastructure errors propagate.
    """
    report = RetryReport()
    ids = [d.pk for d in sorted(dead_letters_to_retry, key=lambda d: (str(d.account_id or ""), d.version or 0, d.pk))]
    for pk in ids:
        letter = DeadLetter.objects.filter(pk=pk).first()  # an earlier retry may have applied it
        if letter is None or letter.status == DeadLetterStatus.RETRIED_OK:
            report.skipped += 1
            continue
        caught_up = _retry_dead_letter(letter, event_store)
        if caught_up is None:
            report.failed += 1
        else:
            report.applied += 1
            report.caught_up += caught_up
    return report


def _retry_dead_letter(letter: DeadLetter, event_store: EventStore) -> int | None:
    """None if it failed again, else how many other pending rows the catch-up applied."""
    try:
        event = envelope.decode(dead_letters.dead_letter_raw(letter))
    except Exception as exc:  # noqa: BLE001 - whatever the decoder says about these bytes
        dead_letters.dead_letter_failed_again(
            dead_letter=letter, reason_type=dead_letters.UNDECODABLE, reason=str(exc) or repr(exc)
        )
        return None
    try:
        applied_now = project_stream(stream_id=event.stream_id, events=[event], event_store=event_store)
    except EventNotApplicable as failure:
        if failure.event.event_id == event.event_id:
            reason_type, reason = type(failure.cause).__name__, str(failure.cause) or repr(failure.cause)
        else:  # an earlier event of the account, from the store, still fails
            dead_letters.dead_letter_event(event=failure.event, cause=failure.cause, source=letter.source)
            reason_type, reason = dead_letters.BLOCKED, dead_letters.blocked_reason(failure.event)
        dead_letters.dead_letter_failed_again(dead_letter=letter, reason_type=reason_type, reason=reason)
        return None
    projected = AccountSummary.objects.filter(id=UUID(event.stream_id)).values_list("version", flat=True).first() or 0
    DeadLetter.objects.filter(pk=letter.pk).update(
        status=DeadLetterStatus.RETRIED_OK,
        retried_at=timezone.now(),
        resolution=(
            "applied on retry"
            if applied_now
            else f"already applied (the account's read model is at version {projected})"
        ),
    )
    # Catch the account up: whatever the store holds after it, poison again set aside.
    later = event_store.load_stream(event.stream_id, after_version=projected)
    _project_stream_setting_poison_aside(event.stream_id, later, event_store, letter.source, {})
    projected = AccountSummary.objects.filter(id=UUID(event.stream_id)).values_list("version", flat=True).first() or 0
    return dead_letters.dead_letters_mark_applied(
        account_id=UUID(event.stream_id),
        up_to_version=projected,
        resolution=f"applied when dead letter {letter.pk} ({event.event_type} v{event.version}) was retried",
    )


def ledger_rows_insert(rows: Sequence[LedgerRow], *, tables: ReadModelTables = LIVE_TABLES) -> None:
    """Insert ledger rows (LedgerRows, or anything with a LedgerEntry's attributes) in one statement."""
    ledger_writer(tables).write(rows)


def account_summaries_upsert(summaries: Sequence[AccountSummary], *, tables: ReadModelTables = LIVE_TABLES) -> None:
    """Insert the new summaries and update the others (by id) in one statement."""
    summary_writer(tables).write(summaries)


def ledger_writer(tables: ReadModelTables = LIVE_TABLES) -> "RowWriter":
    return RowWriter(LedgerEntry, LEDGER_COLUMNS, table=tables.ledger)


def summary_writer(tables: ReadModelTables = LIVE_TABLES) -> "RowWriter":
    return RowWriter(AccountSummary, ("id", *SUMMARY_FIELDS), update=SUMMARY_FIELDS, table=tables.summary)


class RowWriter:
    """Writes rows of a model with the driver's executemany.

    The read side writes a row per event: a model instance for each, and
    bulk_create preparing every value through its field, cost more than all
    the rest of the projection (three quarters of a live batch's time). Here
    the values are read off the objects' attributes a column at a time, and
    each column goes through one cheap conversion, the one its field would
    make (see _driver_values). With `update`, a row whose primary key is taken
    updates those columns instead (an upsert, in the database's own dialect).
    """

    def __init__(
        self,
        model,
        columns: Sequence[str],
        *,
        update: Sequence[str] = (),
        table: str | None = None,
        using: str = DEFAULT_DB_ALIAS,
    ):
        self.connection = connections[using]
        ops = self.connection.ops
        fields = [model._meta.get_field(name) for name in columns]
        names, values = ", ".join(ops.quote_name(field.column) for field in fields), ", ".join(["%s"] * len(fields))
        self.sql = f"INSERT INTO {ops.quote_name(table or model._meta.db_table)} ({names}) VALUES ({values})"
        if update:
            updated = [model._meta.get_field(name).column for name in update]
            self.sql += " " + ops.on_conflict_suffix_sql(fields, OnConflict.UPDATE, updated, [model._meta.pk.column])
        self.getters = [attrgetter(field.attname) for field in fields]
        self.conversions = [_driver_values(field, self.connection) for field in fields]

    def write(self, objects: Sequence) -> None:
        self.execute(self.rows(objects))

    def rows(self, objects: Sequence) -> list[tuple]:
        """The objects' values as the driver takes them (no database access: any thread may ask)."""
        columns = [
            map(getter, objects) if convert is None else map(convert, map(getter, objects))
            for getter, convert in zip(self.getters, self.conversions, strict=True)
        ]
        return list(zip(*columns, strict=True))

    def execute(self, rows: list[tuple]) -> None:
        if rows:
            with self.connection.cursor() as cursor:
                cursor.executemany(self.sql, rows)


def _driver_values(field, connection) -> Callable | None:
    """What field.get_db_prep_save(value, connection) does for this field's type, cheaply (None: nothing to do)."""
    kind = (field.target_field if field.is_relation else field).get_internal_type()
    if kind in ("CharField", "PositiveIntegerField", "IntegerField", "BigIntegerField"):
        return None
    if kind == "UUIDField":
        return None if connection.features.has_native_uuid_field else attrgetter("hex")
    if kind == "DateTimeField":
        return connection.ops.adapt_datetimefield_value
    if kind == "DecimalField":
        return partial(
            connection.ops.adapt_decimalfield_value, max_digits=field.max_digits, decimal_places=field.decimal_places
        )
    return partial(field.get_db_prep_save, connection=connection)
