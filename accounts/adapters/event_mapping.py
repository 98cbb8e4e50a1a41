"""Domain events <-> the event store's records. Money travels as a string."""
import dataclasses
import uuid
from decimal import Decimal
from uuid import UUID

from accounts.domain.events import EVENT_TYPES, AccountEvent
from eventstore.store import NewEvent, StoredEvent

_ENVELOPE_FIELDS = {"account_id", "version", "occurred_at", "metadata"}


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
        metadata=event.metadata,
    )


def to_domain_event(stored: StoredEvent) -> AccountEvent:
    event_class = EVENT_TYPES[stored.event_type]
    fields = {f.name: f for f in dataclasses.fields(event_class)}
    data = {
        name: Decimal(value) if fields[name].type in (Decimal, "Decimal") else value
        for name, value in stored.data.items()
        if name in fields
    }
    return event_class(
        account_id=UUID(stored.stream_id),
        version=stored.version,
        occurred_at=stored.occurred_at,
        metadata=stored.metadata,
        **data,
    )
