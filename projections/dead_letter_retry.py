"""Retrying dead letters: applying them again once their cause is fixed (a projector added, say).

Beside the dead-letter table (projections.dead_letters), which only records;
the applying is the live projection's own (projections.projection).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from django.utils import timezone

from eventstore.store import EventStore
from eventstore.transports import envelope
from projections import dead_letters
from projections.models import AccountSummary, DeadLetter, DeadLetterStatus
from projections.projection import EventNotApplicable, project_stream, project_stream_setting_poison_aside


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
    project_stream_setting_poison_aside(event.stream_id, later, event_store, letter.source, {})
    projected = AccountSummary.objects.filter(id=UUID(event.stream_id)).values_list("version", flat=True).first() or 0
    return dead_letters.dead_letters_mark_applied(
        account_id=UUID(event.stream_id),
        up_to_version=projected,
        resolution=f"applied when dead letter {letter.pk} ({event.event_type} v{event.version}) was retried",
    )
