"""Services that write the read side: live projection and rebuild."""
import logging
from itertools import groupby
from typing import Callable, Iterable, Sequence
from uuid import UUID

from django.db import transaction

from eventstore.store import EventStore, StoredEvent
from projections.models import AccountSummary, LedgerEntry
from projections.projectors import apply_event

logger = logging.getLogger(__name__)

LEDGER_BATCH_SIZE = 5000


def project_events(*, events: Sequence[StoredEvent], event_store: EventStore) -> int:
    """Apply stored events to the read model, idempotently; returns how many applied.

    Events at or below an account's projected version are skipped (already
    applied). If an event arrives ahead of the next expected version, the
    missing ones are fetched from the event store first, so concurrent
    writers projecting out of order cannot leave a hole.
    """
    applied = 0
    ordered = sorted(events, key=lambda e: (e.stream_id, e.version))
    for stream_id, stream_events in groupby(ordered, key=lambda e: e.stream_id):
        applied += _project_stream(stream_id, list(stream_events), event_store)
    return applied


def _project_stream(stream_id: str, events: list[StoredEvent], event_store: EventStore) -> int:
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
        entries = []
        for event in events:
            if event.version <= summary.version:
                continue
            entries.append(apply_event(summary, event))
        summary.save()
        LedgerEntry.objects.bulk_create(entries)
        return len(entries)


def rebuild_read_model(
    *,
    event_store: EventStore,
    on_progress: Callable[[int], None] = lambda n: None,
) -> tuple[int, int]:
    """Drop the read model and replay every stored event; returns (events, accounts).

    Memory grows with the number of accounts, not events: ledger rows are
    written in batches as the replay goes.
    """
    summaries: dict[str, AccountSummary] = {}
    ledger: list[LedgerEntry] = []
    replayed = 0
    with transaction.atomic():
        LedgerEntry.objects.all().delete()
        AccountSummary.objects.all().delete()
        for event in event_store.read_all():
            summary = summaries.get(event.stream_id)
            if summary is None:
                summary = summaries[event.stream_id] = AccountSummary(id=UUID(event.stream_id), version=0)
            if event.version == summary.version + 1:
                ledger.append(apply_event(summary, event))
            replayed += 1
            if len(ledger) >= LEDGER_BATCH_SIZE:
                LedgerEntry.objects.bulk_create(ledger)
                ledger.clear()
            on_progress(1)
        LedgerEntry.objects.bulk_create(ledger)
        AccountSummary.objects.bulk_create(summaries.values(), batch_size=1000)
    return replayed, len(summaries)


def read_model_differences(*, event_store: EventStore) -> Iterable[str]:
    """Accounts whose projected summary differs from a fresh replay (used by tests and tools)."""
    expected: dict[str, AccountSummary] = {}
    for event in event_store.read_all():
        summary = expected.setdefault(event.stream_id, AccountSummary(id=UUID(event.stream_id), version=0))
        if event.version == summary.version + 1:
            apply_event(summary, event)
    fields = ("holder", "account_type", "balance", "status", "opened_at", "closed_at", "version")
    actual = {str(s.id): s for s in AccountSummary.objects.all()}
    for stream_id in sorted(set(expected) | set(actual)):
        want, got = expected.get(stream_id), actual.get(stream_id)
        if want is None or got is None or any(getattr(want, f) != getattr(got, f) for f in fields):
            yield stream_id
