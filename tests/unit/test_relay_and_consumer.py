"""Relay (outbox -> topic) and consumer (topic -> projector), with in-memory parts."""
import uuid
from datetime import datetime, timezone

import pytest
from django.db import OperationalError

from eventstore.backends.memory import InMemoryEventStore
from eventstore.relay import relay_outbox
from eventstore.store import NewEvent
from eventstore.transports.base import TransportUnavailable
from eventstore.transports.memory import InMemoryTransport
from projections import consumer
from projections.services import ProjectionOutcome


def deposit() -> NewEvent:
    return NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, datetime.now(timezone.utc), {})


class BrokenTransport(InMemoryTransport):
    def __init__(self):
        super().__init__()
        self.down = True

    def send(self, events):
        if self.down:
            raise TransportUnavailable("broker down")
        super().send(events)


def drain(subscription, expected: int):
    deliveries = []
    for _ in range(50):
        deliveries += subscription.poll(timeout_ms=10)
        if len(deliveries) >= expected:
            break
    return deliveries


def test_the_relay_publishes_the_outbox_in_order_and_empties_it():
    store, transport = InMemoryEventStore(), InMemoryTransport()
    account = str(uuid.uuid4())
    store.append(account, 0, [deposit() for _ in range(5)])
    assert relay_outbox(event_store=store, transport=transport, batch_size=2) == 5
    assert store.unpublished() == []
    deliveries = drain(transport.subscribe("check"), 5)
    assert [d.event.version for d in deliveries] == [1, 2, 3, 4, 5]
    assert relay_outbox(event_store=store, transport=transport) == 0


def test_with_the_broker_down_events_wait_in_the_outbox_and_go_out_once_it_is_back():
    store, transport = InMemoryEventStore(), BrokenTransport()
    store.append(str(uuid.uuid4()), 0, [deposit(), deposit()])
    with pytest.raises(TransportUnavailable):
        relay_outbox(event_store=store, transport=transport)
    assert len(store.unpublished()) == 2
    transport.down = False
    assert relay_outbox(event_store=store, transport=transport) == 2
    assert len(drain(transport.subscribe("check"), 2)) == 2


class RecordingProjector:
    """Stands in for projections.services.project_deliveries (the read database is tested in integration/)."""

    def __init__(self, fail_times=0):
        self.batches = []
        self.fail_times = fail_times

    def __call__(self, *, deliveries, event_store):
        if self.fail_times:
            self.fail_times -= 1
            raise OperationalError("read database down")
        self.batches.append([d.event.version if d.event else d.problem for d in deliveries])
        undecodable = sum(d.event is None for d in deliveries)
        return ProjectionOutcome(applied=len(deliveries) - undecodable, dead_lettered=undecodable, undecodable=undecodable)


def test_the_consumer_applies_a_batch_then_commits(monkeypatch):
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    store.append(str(uuid.uuid4()), 0, [deposit(), deposit()])
    relay_outbox(event_store=store, transport=transport)
    projector = RecordingProjector()
    monkeypatch.setattr(consumer, "project_deliveries", projector)

    member = transport.subscribe("projections")
    outcome = consumer.consume_batch(subscription=member, event_store=store, timeout_ms=10)
    assert (outcome.received, outcome.applied) == (2, 2)
    member.close()
    again = transport.subscribe("projections")
    assert consumer.consume_batch(subscription=again, event_store=store, timeout_ms=10).received == 0


def test_a_batch_that_fails_to_apply_is_not_committed_and_comes_back(monkeypatch):
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    store.append(str(uuid.uuid4()), 0, [deposit(), deposit()])
    relay_outbox(event_store=store, transport=transport)
    projector = RecordingProjector(fail_times=1)
    monkeypatch.setattr(consumer, "project_deliveries", projector)

    member = transport.subscribe("projections")
    with pytest.raises(OperationalError):
        consumer.consume_batch(subscription=member, event_store=store, timeout_ms=10)
    member.close()
    successor = transport.subscribe("projections")
    outcome = consumer.consume_batch(subscription=successor, event_store=store, timeout_ms=10)
    assert outcome.applied == 2 and projector.batches == [[1, 2]]


def test_an_undecodable_message_goes_to_the_projection_with_its_problem_is_counted_and_committed(monkeypatch):
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    transport.send_raw(b"k", b"not json")
    store.append(str(uuid.uuid4()), 0, [deposit()])
    relay_outbox(event_store=store, transport=transport)
    projector = RecordingProjector()
    monkeypatch.setattr(consumer, "project_deliveries", projector)
    member = transport.subscribe("p")
    outcome = consumer.consume_batch(subscription=member, event_store=store, timeout_ms=10)
    assert (outcome.received, outcome.undecodable, outcome.dead_lettered, outcome.applied) == (2, 1, 1, 1)
    assert "not a TechBank event envelope" in projector.batches[0][0] and projector.batches[0][1] == 1
    member.close()
    assert consumer.consume_batch(subscription=transport.subscribe("p"), event_store=store, timeout_ms=10).received == 0
