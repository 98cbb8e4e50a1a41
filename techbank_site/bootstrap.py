"""The composition root: the one place that picks backends from settings."""
from functools import cache

from django.conf import settings

from accounts.adapters.publishers import InProcessPublisher
from accounts.adapters.repository import BankAccountRepository
from accounts.service_layer.command_bus import CommandBus
from eventstore.store import EventStore


@cache
def event_store() -> EventStore:
    backend = settings.TECHBANK_EVENT_STORE
    if backend == "sql":
        from eventstore.backends.django_orm import DjangoEventStore

        return DjangoEventStore()
    raise ValueError(f"TECHBANK_EVENT_STORE={backend!r} is not one of: sql")


@cache
def command_bus() -> CommandBus:
    from projections.services import project_events

    backend = settings.TECHBANK_EVENT_BUS
    if backend == "inline":
        publisher = InProcessPublisher(
            event_store(), lambda events: project_events(events=events, event_store=event_store())
        )
    else:
        raise ValueError(f"TECHBANK_EVENT_BUS={backend!r} is not one of: inline")
    return CommandBus(
        accounts=BankAccountRepository(event_store()),
        publisher=publisher,
        max_attempts=settings.TECHBANK_COMMAND_MAX_ATTEMPTS,
    )


def reset() -> None:
    """Forget built objects (tests that change settings call this)."""
    event_store.cache_clear()
    command_bus.cache_clear()
