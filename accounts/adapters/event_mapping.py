"""Domain events <-> the event store's records. Money travels as a string."""

import dataclasses
import uuid
from decimal import Decimal
from functools import cache
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
        occurred_at=stored.occurred_at,
        metadata=stored.metadata,
        **data,
    )
