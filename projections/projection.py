"""The live projection: events -> read model, idempotently, with poison events set aside.

Every event that travels (the relay sends it, a transport carries it, the
consumer receives it: projections.consumer) comes in through one door,
`project_deliveries`. The rebuild's catch-up and a dead letter's retry read
events from the store itself, and go through the same machinery
(`project_from_store`, `project_stream`). The SQL is the read-model writer's
(projections.adapters.read_model_writer).
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise
from typing import TypeVar
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, DataError, Error, IntegrityError, OperationalError, connections, transaction

from eventstore.store import EventStore, StoredEvent
from eventstore.transports.base import Delivery
from projections import dead_letters
from projections.adapters.read_model_writer import (
    LIVE_TABLES,
    ReadModelTables,
    account_summaries_for_update,
    account_summaries_upsert,
    is_deadlock,
    ledger_rows_insert,
)
from projections.models import AccountSummary, DeadLetterSource
from projections.projectors import LedgerRow, apply_event

logger = logging.getLogger(__name__)
T = TypeVar("T")

# How often a projection that lost a race to another projector of the same
# account is tried again (MySQL/MariaDB: a duplicate first row, or a deadlock).
RACE_ATTEMPTS = 5

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


@dataclass
class ProjectionOutcome:
    applied: int = 0  # events applied to the read model
    dead_lettered: int = 0  # messages set aside in the dead-letter table (undecodable ones included)
    undecodable: int = 0


def project_deliveries(
    *, deliveries: Sequence[Delivery], event_store: EventStore, source: str = DeadLetterSource.KAFKA
) -> ProjectionOutcome:
    """Apply messages received from a transport; set aside the ones that cannot be applied.

    The batch is applied in one transaction; an account with an event that
    cannot be applied is then taken on its own, and its poison event and the
    ones behind it are set aside (as from `source`). Events at or below an
    account's projected version are skipped (already applied); an event ahead
    of the next expected version has the missing ones fetched from the store
    first. Everything is stored (read rows and dead letters) when this
    returns, so the caller may commit the offsets. Infrastructure errors
    propagate: then nothing is to be committed, and the messages come again.
    """
    outcome = ProjectionOutcome()
    received: dict[UUID, Delivery] = {}
    for delivery in deliveries:
        if delivery.event is None:
            dead_letters.dead_letter_undecodable(delivery=delivery, source=source)
            outcome.undecodable += 1
            outcome.dead_lettered += 1
        else:
            received.setdefault(delivery.event.event_id, delivery)
    applied, set_aside = _project_setting_poison_aside(
        [d.event for d in received.values() if d.event is not None], event_store, source, received
    )
    outcome.applied += applied
    outcome.dead_lettered += set_aside
    return outcome


def project_from_store(
    *, events: Sequence[StoredEvent], event_store: EventStore, source: str, tables: ReadModelTables = LIVE_TABLES
) -> ProjectionOutcome:
    """Apply events read from the store itself (a rebuild catching up), poison set aside as project_deliveries does."""
    unique = list({e.event_id: e for e in reversed(events)}.values())
    applied, set_aside = _project_setting_poison_aside(unique, event_store, source, {}, tables)
    return ProjectionOutcome(applied=applied, dead_lettered=set_aside)


def project_stream(
    *, stream_id: str, events: Sequence[StoredEvent], event_store: EventStore, tables: ReadModelTables = LIVE_TABLES
) -> int:
    """Apply one account's events (in version order) in one transaction; returns how many applied.

    An event that cannot be applied raises EventNotApplicable (nothing of the account is written).
    """
    if not events:
        return 0
    return _retrying_lost_races(lambda: _project_stream_once(stream_id, events, event_store, tables))


def _project_stream_once(
    stream_id: str, events: Sequence[StoredEvent], event_store: EventStore, tables: ReadModelTables
) -> int:
    with transaction.atomic():
        summary = account_summaries_for_update([UUID(stream_id)], tables).get(UUID(stream_id))
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
            lost_race = isinstance(error, IntegrityError) or is_deadlock(error)
            if not lost_race or attempt == RACE_ATTEMPTS or connections[DEFAULT_DB_ALIAS].in_atomic_block:
                raise
            logger.debug("projection lost a race (attempt %d of %d): %s", attempt, RACE_ATTEMPTS, error)
    raise AssertionError("unreachable")


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
        stream_applied, stream_set_aside = project_stream_setting_poison_aside(
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
        summaries = account_summaries_for_update(list(ids.values()), tables)
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


def project_stream_setting_poison_aside(
    stream_id: str,
    events: list[StoredEvent],
    event_store: EventStore,
    source: str,
    received: dict[UUID, Delivery],
    tables: ReadModelTables = LIVE_TABLES,
) -> tuple[int, int]:
    """One account: all in one transaction if that works, else one event at a time up to the poison one.

    Returns (how many applied, how many set aside). The events after a poison
    event cannot be applied either (versions stay contiguous), so they are set
    aside too, as blocked behind it: the topic's offsets move past them, and
    the row shows staff that the account is stuck and how far. Retrying the
    poison event catches the account up from the event store, blocked events included.
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
