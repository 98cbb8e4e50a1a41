"""The Celery consumer task keeps its group member between runs; a batch it could not apply must come again."""

import uuid
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.db import OperationalError

from entrypoints import tasks
from eventstore.backends.memory import InMemoryEventStore
from eventstore.store import NewEvent
from eventstore.transports.memory import InMemoryTransport
from projections import consumer
from projections.projection import ProjectionOutcome
from tests.wiring import rewire


class ReadDatabaseDownOnce:
    """Stands in for projections.projection.project_deliveries: fails the first batch as a database outage would.

    It records the batches the task handed it once the database was back; what it returns is made up.
    """

    def __init__(self):
        self.down = True
        self.projected = []

    def __call__(self, *, deliveries, event_store, source):
        if self.down:
            self.down = False
            raise OperationalError("read database down")
        self.projected.append([d.event.version for d in deliveries])
        return ProjectionOutcome(applied=len(deliveries))


@pytest.fixture
def in_memory_stack(monkeypatch):
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    tasks.projection_subscription.close()
    rewire(event_store=store, transport=transport)
    yield store, transport
    tasks.projection_subscription.close()
    rewire()


def test_a_batch_the_read_database_refused_is_applied_by_the_next_run_not_skipped(in_memory_stack, monkeypatch):
    store, transport = in_memory_stack
    store.append(
        str(uuid.uuid4()),
        0,
        [NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, datetime.now(UTC), {}) for _ in range(2)],
    )
    transport.send(store.unpublished())
    projector = ReadDatabaseDownOnce()
    monkeypatch.setattr(consumer, "project_deliveries", projector)

    with pytest.raises(OperationalError):
        tasks.consume_events_task(seconds=0)  # one batch
    tasks.consume_events_task(seconds=0)

    assert projector.projected == [[1, 2]]
    tasks.projection_subscription.close()  # the worker process leaves the group
    assert transport.subscribe(settings.TECHBANK_KAFKA_GROUP).poll(timeout_ms=10) == []  # the batch was committed
