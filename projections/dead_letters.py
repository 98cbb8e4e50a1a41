"""The dead-letter table: what the projection could not apply, set aside so the line moves on.

Recording is an upsert on `dedup_key` (the event id, or a hash of the raw bytes
of a message that does not decode), so a poison message delivered again (the
bus is at-least-once) stays one row and counts one more attempt. Which events
are poison is projection work (projections.projection); retrying them is projections.dead_letter_retry.
"""

import base64
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from eventstore.store import StoredEvent
from eventstore.transports import envelope
from eventstore.transports.base import Delivery
from projections.models import DeadLetter, DeadLetterSource, DeadLetterStatus

logger = logging.getLogger(__name__)

UNDECODABLE = "Undecodable"
BLOCKED = "BlockedBehindPoison"


def dead_letter_undecodable(*, delivery: Delivery, source: str = DeadLetterSource.KAFKA) -> None:
    """A message that is not a TechBank event envelope."""
    key = (delivery.key or "").encode()
    digest = hashlib.sha256(key + b"\0" + delivery.raw).hexdigest()
    _record(
        dedup_key=f"raw:{digest}",
        source=source,
        raw=delivery.raw,
        delivery=delivery,
        reason_type=UNDECODABLE,
        reason=delivery.problem or "undecodable",
        **_readable_fields(delivery),
    )


def dead_letter_event(*, event: StoredEvent, cause: Exception, source: str, delivery: Delivery | None = None) -> None:
    """An event that decoded but cannot be applied (unknown type, corrupt data)."""
    _record_event(event, source, delivery, reason_type=type(cause).__name__, reason=str(cause) or repr(cause))


def dead_letter_blocked(
    *, event: StoredEvent, poison: StoredEvent, source: str, delivery: Delivery | None = None
) -> None:
    """An event of the same account after a poison one: applying it would leave a gap in the versions."""
    _record_event(event, source, delivery, reason_type=BLOCKED, reason=blocked_reason(poison))


def blocked_reason(poison: StoredEvent) -> str:
    return f"blocked behind poison event {poison.event_id} ({poison.event_type} v{poison.version})"


def dead_letter_failed_again(*, dead_letter: DeadLetter, reason_type: str, reason: str) -> None:
    """A retry failed: keep the new reason, count the attempt."""
    now = timezone.now()
    DeadLetter.objects.filter(pk=dead_letter.pk).update(
        reason_type=reason_type, reason=reason, attempts=F("attempts") + 1, last_failed_at=now, retried_at=now
    )
    logger.warning("retrying dead letter %s failed: %s: %s", dead_letter.pk, reason_type, reason)


def dead_letters_mark_applied(*, account_id: uuid.UUID, up_to_version: int, resolution: str) -> int:
    """Pending rows of events the account's read model now includes; returns how many."""
    return (
        DeadLetter.objects.filter(account_id=account_id, version__lte=up_to_version, status=DeadLetterStatus.PENDING)
        .exclude(reason_type=UNDECODABLE)  # their account and version are only what the bytes claimed
        .update(status=DeadLetterStatus.RETRIED_OK, retried_at=timezone.now(), resolution=resolution)
    )


def dead_letters_resolve(*, dead_letters: Iterable[DeadLetter], resolved_by: str) -> int:
    """Staff decided there is nothing to apply (garbage on the topic, say); returns how many."""
    return DeadLetter.objects.filter(pk__in=[d.pk for d in dead_letters], status=DeadLetterStatus.PENDING).update(
        status=DeadLetterStatus.RESOLVED,
        resolution=f"marked resolved by {resolved_by} on {timezone.now():%Y-%m-%d %H:%M} UTC",
    )


def dead_letter_raw(dead_letter: DeadLetter) -> bytes:
    if dead_letter.raw_is_base64:
        return base64.b64decode(dead_letter.raw_message)
    return dead_letter.raw_message.encode("utf-8")


def _record_event(event: StoredEvent, source: str, delivery: Delivery | None, *, reason_type: str, reason: str):
    if delivery is not None:
        raw = delivery.raw
    else:  # in process, or fetched from the store: the envelope it would have travelled in
        try:
            raw = envelope.encode(event)[1]
        except (TypeError, ValueError):
            raw = repr(event).encode()
    _record(
        dedup_key=f"event:{event.event_id}",
        source=source,
        raw=raw,
        delivery=delivery,
        reason_type=reason_type,
        reason=reason,
        event_id=event.event_id,
        event_type=event.event_type[:100],
        account_id=_uuid_or_none(event.stream_id),
        version=event.version,
    )


def _record(
    *, dedup_key: str, source: str, raw: bytes, delivery: Delivery | None, reason_type: str, reason: str, **event_fields
):
    now = timezone.now()
    again = {
        "reason_type": reason_type,
        "reason": reason,
        "attempts": F("attempts") + 1,
        "last_failed_at": now,
        # It fails again, so it is pending again, unless staff said there is nothing to apply.
        "status": Case(
            When(status=DeadLetterStatus.RESOLVED, then=Value(DeadLetterStatus.RESOLVED)),
            default=Value(DeadLetterStatus.PENDING),
        ),
    }
    with transaction.atomic():
        if not DeadLetter.objects.filter(dedup_key=dedup_key).update(**again):
            raw_message, raw_is_base64 = _as_text(raw)
            try:
                with transaction.atomic():
                    DeadLetter.objects.create(
                        dedup_key=dedup_key,
                        source=source,
                        raw_message=raw_message,
                        raw_is_base64=raw_is_base64,
                        message_key=((delivery.key or "") if delivery else "")[:255],
                        partition=delivery.partition if delivery else None,
                        offset=delivery.offset if delivery else None,
                        reason_type=reason_type,
                        reason=reason,
                        first_seen_at=now,
                        last_failed_at=now,
                        **event_fields,
                    )
            except IntegrityError:  # a concurrent consumer recorded it a moment ago
                DeadLetter.objects.filter(dedup_key=dedup_key).update(**again)
    logger.error(
        "dead-lettered %s (%s %s v%s of account %s): %s: %s",
        dedup_key,
        source,
        event_fields.get("event_type") or "?",
        event_fields.get("version") or "?",
        event_fields.get("account_id") or "?",
        reason_type,
        reason,
    )


def _as_text(raw: bytes) -> tuple[str, bool]:
    """UTF-8 text if it is (without NUL, which not every database stores in text), else base64."""
    try:
        text = raw.decode("utf-8")
        if "\x00" not in text:
            return text, False
    except UnicodeDecodeError:
        pass
    return base64.b64encode(raw).decode("ascii"), True


def _readable_fields(delivery: Delivery) -> dict:
    """What an undecodable message says about itself, for staff to search by; nothing is trusted."""
    try:
        claimed = json.loads(delivery.raw)
    except (ValueError, RecursionError):
        claimed = None
    if not isinstance(claimed, dict):
        claimed = {}
    version = claimed.get("version")
    event_type = claimed.get("type")
    return {
        "event_id": _uuid_or_none(claimed.get("event_id")),
        "event_type": event_type[:100] if isinstance(event_type, str) else "",
        "account_id": _uuid_or_none(claimed.get("account_id")) or _uuid_or_none(delivery.key),
        "version": (
            version if isinstance(version, int) and not isinstance(version, bool) and 0 < version < 2**31 else None
        ),
    }


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None
