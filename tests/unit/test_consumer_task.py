"""The Celery consumer task keeps its group member between runs; a batch it could not apply must come again."""
import uuid
from datetime import datetime, timezone

import pytest
from django.db import OperationalError

from eventstore.backends.memory import InMemoryEventStore
from eventstore.relay import relay_outbox
from eventstore.store import NewEvent
from eventstore.transports.memory import InMemoryTransport
from projections import consumer, tasks
from projections.services import ProjectionOutcome
from techbank_site import bootstrap


class ReadDatabaseDownOnce:
    """Stands in for projections.services.project_deliveries: fails the first batch as a database outage would."""

    def __init__(self):
        self.down = True
        self.applied = []

    def __call__(self, *, deliveries, event_store):
        if self.down:
            self.down = False
            raise OperationalError("read database down")
        self.applied.append([d.event.version for d in deliveries])
        return ProjectionOutcome(applied=len(deliveries))


@pytest.fixture
def in_memory_stack(monkeypatch):
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    bootstrap.close_projection_subscription()
    monkeypatch.setattr(bootstrap, "event_store", lambda: store)
    monkeypatch.setattr(bootstrap, "event_transport", lambda: transport)
    yield store, transport
    bootstrap.close_projection_subscription()


def test_a_batch_the_read_database_refused_is_applied_by_the_next_run_not_skipped(in_memory_stack, monkeypatch):
    store, transport = in_memory_stack
    store.append(str(uuid.uuid4()), 0, [
        NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, datetime.now(timezone.utc), {}) for _ in range(2)
    ])
    relay_outbox(event_store=store, transport=transport)
    projector = ReadDatabaseDownOnce()
    monkeypatch.setattr(consumer, "project_deliveries", projector)

    with pytest.raises(OperationalError):
        tasks.consume_events_task(seconds=0.01)
    assert tasks.consume_events_task(seconds=0.01) == 2
    assert projector.applied == [[1, 2]]
