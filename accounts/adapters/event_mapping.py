"""Domain events <-> the event store's records. Money travels as a string.

Metadata is typed in the domain (EventMetadata) and stored as it always was:
a JSON object with issued_by, correlation_id and idempotency_key; the time is
the record's own `occurred_at`. Older records missing a key read as "".
"""

import dataclasses
import uuid
from decimal import Decimal
from functools import cache
from uuid import UUID

from accounts.domain.events import EVENT_TYPES, AccountEvent
from accounts.domain.metadata import EventMetadata
from eventstore.store import NewEvent, StoredEvent

_ENVELOPE_FIELDS = {"account_id", "version", "metadata"}


def stored_metadata(metadata: EventMetadata) -> dict[str, str]:
    """The JSON the store keeps: the request's three strings (the time has its own column)."""
    return {
        "issued_by": metadata.issued_by,
        "correlation_id": metadata.correlation_id,
        "idempotency_key": metadata.idempotency_key,
    }


def domain_metadata(stored: StoredEvent) -> EventMetadata:
    return EventMetadata(
        issued_by=stored.metadata.get("issued_by", ""),
        correlation_id=stored.metadata.get("correlation_id", ""),
        idempotency_key=stored.metadata.get("idempotency_key", ""),
        occurred_at=stored.occurred_at,
    )


def to_new_event(event: AccountEvent) -> NewEvent:
    data = {}
    for f in dataclasses.fields(event):
        if f.name in _ENVELOPE_FIELDS:
            continue
        value = getattr(event, f.name)
        data[f.name] = str(value) if isinstance(value, Decimal) else value
    return NewEvent(
        event_id=uuid.uuid4(),
        event_type=type(event).__name__,
        data=data,
        occurred_at=event.occurred_at,
        metadata=stored_metadata(event.metadata),
    )


@cache
def _field_is_money(event_class: type[AccountEvent]) -> dict[str, bool]:
    """Each field's name, and whether it holds money (a Decimal): asked once per class, not per event."""
    return {f.name: f.type in (Decimal, "Decimal") for f in dataclasses.fields(event_class)}


def to_domain_event(stored: StoredEvent) -> AccountEvent:
    event_class = EVENT_TYPES[stored.event_type]
    is_money = _field_is_money(event_class)  # type: ignore[arg-type]  # a class is hashable; mypy reads the instances' __hash__
    data = {
        name: Decimal(value) if is_money[name] else value for name, value in stored.data.items() if name in is_money
    }
    return event_class(
        account_id=UUID(stored.stream_id),
        version=stored.version,
        metadata=domain_metadata(stored),
        **data,
    )
