"""Services that write the read side: live projection, setting poison events aside, retry, rebuild."""
import logging
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from typing import Callable, Iterable, Iterator, Sequence
from uuid import UUID

from django.db import DataError, Error, transaction
from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone

from eventstore.store import EventStore, StoredEvent
from eventstore.transports import envelope
from eventstore.transports.base import Delivery
from projections import dead_letters
from projections.models import AccountSummary, DeadLetter, DeadLetterSource, DeadLetterStatus, LedgerEntry
from projections.projectors import apply_event

logger = logging.getLogger(__name__)

LEDGER_BATCH_SIZE = 5000
# How many events verification reads from the store at a time.
VERIFY_BATCH_SIZE = 5_000
SUMMARY_FIELDS = ("holder", "account_type", "balance", "status", "opened_at", "closed_at", "version")

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


def project_stream(*, stream_id: str, events: Sequence[StoredEvent], event_store: EventStore) -> int:
    """Apply one account's events (in version order) in one transaction; returns how many applied."""
    if not events:
        return 0
    with transaction.atomic():
        summary = AccountSummary.objects.select_for_update().filter(id=UUID(stream_id)).first()
        current = summary.version if summary else 0
        if events[-1].version <= current:
            return 0
        if events[0].version > current + 1 or any(
            b.version != a.version + 1 for a, b in zip(events, events[1:])
        ):
            events = event_store.load_stream(stream_id, after_version=current)
        if summary is None:
            summary = AccountSummary(id=UUID(stream_id), version=0)
        entries, applied = [], []
        for event in events:
            if event.version <= summary.version:
                continue
            entries.append(_apply(summary, event))
            applied.append(event)
        if not entries:  # the store had nothing after `current` (it lags the topic): nothing to write
            return 0
        try:
            summary.save()
            LedgerEntry.objects.bulk_create(entries)
        except EVENT_CAUSED_WRITE_ERRORS as exc:
            # Which of several events holds the bad value cannot be told from here: the
            # first is named, and setting poison aside tries them one at a time, which tells.
            raise EventNotApplicable(applied[0], exc) from exc
        return len(entries)


def _apply(summary: AccountSummary, event: StoredEvent) -> LedgerEntry:
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

    Everything is stored (read rows and dead letters) when this returns, so the
    caller may commit the offsets. Infrastructure errors propagate: then
    nothing is to be committed, and the messages come again.
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
        [d.event for d in received.values()], event_store, DeadLetterSource.KAFKA, received
    )
    outcome.applied += applied
    outcome.dead_lettered += set_aside
    return outcome


def project_events_isolating_poison(
    *, events: Sequence[StoredEvent], event_store: EventStore, source: str = DeadLetterSource.IN_PROCESS
) -> ProjectionOutcome:
    """project_events, except that an event that cannot be applied goes to the dead-letter table."""
    unique = list({e.event_id: e for e in reversed(events)}.values())
    applied, set_aside = _project_setting_poison_aside(unique, event_store, source, {})
    return ProjectionOutcome(applied=applied, dead_lettered=set_aside)


def _project_setting_poison_aside(
    events: Sequence[StoredEvent], event_store: EventStore, source: str, received: dict[UUID, Delivery]
) -> tuple[int, int]:
    applied = set_aside = 0
    ordered = sorted(events, key=lambda e: (e.stream_id, e.version))
    for stream_id, stream_events in groupby(ordered, key=lambda e: e.stream_id):
        stream_applied, stream_set_aside = _project_stream_setting_poison_aside(
            stream_id, list(stream_events), event_store, source, received
        )
        applied += stream_applied
        set_aside += stream_set_aside
    return applied, set_aside


def _project_stream_setting_poison_aside(
    stream_id: str, events: list[StoredEvent], event_store: EventStore, source: str, received: dict[UUID, Delivery]
) -> tuple[int, int]:
    """One account: all in one transaction if that works, else one event at a time up to the poison one.

    The events after a poison event cannot be applied either (versions stay
    contiguous), so they are set aside too, as blocked behind it: the topic's
    offsets move past them, and the row shows staff that the account is stuck
    and how far. Retrying the poison event catches the account up from the
    event store, blocked events included.
    """
    try:
        return project_stream(stream_id=stream_id, events=events, event_store=event_store), 0
    except EventNotApplicable:
        pass  # find which one: apply them one at a time
    applied = 0
    for index, event in enumerate(events):
        try:
            applied += project_stream(stream_id=stream_id, events=[event], event_store=event_store)
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
    ids = [
        d.pk
        for d in sorted(dead_letters_to_retry, key=lambda d: (str(d.account_id or ""), d.version or 0, d.pk))
    ]
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
    except Exception as exc:  # whatever the decoder says about these bytes
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


def rebuild_read_model(
    *,
    event_store: EventStore,
    on_progress: Callable[[int], None] = lambda n: None,
) -> tuple[int, int]:
    """Drop the read model and replay every stored event; returns (events, accounts).

    Memory grows with the number of accounts, not events: ledger rows are
    written in batches as the replay goes. An event that cannot be applied
    stops its account at the version before it, as the live projection does,
    and is recorded in the dead-letter table; the other accounts go on.
    """
    summaries: dict[str, AccountSummary] = {}
    ledger: list[LedgerEntry] = []
    poison: list[EventNotApplicable] = []
    replayed = 0
    with transaction.atomic():
        LedgerEntry.objects.all().delete()
        AccountSummary.objects.all().delete()
        for event in event_store.read_all():
            summary = summaries.get(event.stream_id)
            if summary is None:
                summary = summaries[event.stream_id] = AccountSummary(id=UUID(event.stream_id), version=0)
            if event.version == summary.version + 1:  # after a poison event the version no longer advances
                try:
                    ledger.append(_apply(summary, event))
                except EventNotApplicable as failure:
                    poison.append(failure)
            replayed += 1
            if len(ledger) >= LEDGER_BATCH_SIZE:
                LedgerEntry.objects.bulk_create(ledger)
                ledger.clear()
            on_progress(1)
        LedgerEntry.objects.bulk_create(ledger)
        projected = [s for s in summaries.values() if s.version > 0]  # not those whose opening was poison
        AccountSummary.objects.bulk_create(projected, batch_size=1000)
        for failure in poison:
            dead_letters.dead_letter_event(event=failure.event, cause=failure.cause, source=DeadLetterSource.REBUILD)
    if poison:
        logger.warning(
            "rebuild: %d account(s) stopped at an event that cannot be applied (see Dead letters)", len(poison)
        )
    return replayed, len(projected)


def read_model_differences(
    *, event_store: EventStore, on_progress: Callable[[int], None] = lambda n: None
) -> Iterator[str]:
    """Ids of the accounts whose read model differs from a fresh replay of the event store, sorted.

    Each account's summary is compared field by field, and its ledger by how
    many entries it has and the version and balance after its last one. The
    replay runs in memory through the live projection's projectors; memory grows
    with the number of accounts, not events (the store is read in large
    batches, the read model in one query per table). `on_progress` is told how
    many more events were replayed, a batch at a time.
    """
    expected: dict[str, AccountSummary] = {}
    last_entries: dict[str, tuple[int, Decimal]] = {}  # version, balance_after
    unreported = 0
    for event in event_store.read_all(batch_size=VERIFY_BATCH_SIZE):
        summary = expected.get(event.stream_id)
        if summary is None:
            summary = expected[event.stream_id] = AccountSummary(id=UUID(event.stream_id), version=0)
        if event.version == summary.version + 1:  # after a poison event the version no longer advances
            try:
                entry = _apply(summary, event)
                last_entries[event.stream_id] = (entry.version, entry.balance_after)
            except EventNotApplicable:
                pass  # the account stops before it, as in the live projection and the rebuild
        unreported += 1
        if unreported == VERIFY_BATCH_SIZE:
            on_progress(unreported)
            unreported = 0
    on_progress(unreported)

    summaries = {str(row[0]): row[1:] for row in AccountSummary.objects.values_list("id", *SUMMARY_FIELDS)}
    ledgers = {str(row[0]): row[1:] for row in _ledger_ends()}
    for stream_id in sorted(expected.keys() | summaries.keys() | ledgers.keys()):
        want = expected.get(stream_id)
        if want is None or want.version == 0:  # no events, or its opening cannot be applied: no read model
            want_summary = want_ledger = None
        else:
            want_summary = tuple(getattr(want, field) for field in SUMMARY_FIELDS)
            want_ledger = (want.version, *last_entries[stream_id])  # one entry per applied event
        if summaries.get(stream_id) != want_summary or ledgers.get(stream_id) != want_ledger:
            yield stream_id


def _ledger_ends() -> Iterator[tuple]:
    """(account id, number of entries, version and balance_after of the last entry) for every account in the ledger."""
    entries = dict(LedgerEntry.objects.order_by().values_list("account_id").annotate(Count("pk")))
    latest = LedgerEntry.objects.filter(account_id=OuterRef("account_id")).order_by("-version").values("version")[:1]
    # In (account, version) order the database walks that unique index, and each
    # account's lookup of its latest version finds the pages just read (on SQLite, 7x faster).
    last_entries = LedgerEntry.objects.filter(version=Subquery(latest)).order_by("account_id", "version")
    for account_id, version, balance_after in last_entries.values_list("account_id", "version", "balance_after"):
        yield account_id, entries[account_id], version, balance_after
