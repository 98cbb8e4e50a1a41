"""Relay (outbox -> topic) and consumer (topic -> projector), with in-memory parts."""

import uuid
from datetime import UTC, datetime

import pytest
from django.db import OperationalError

from eventstore.backends.memory import InMemoryEventStore
from eventstore.relay import RelayLockLost, relay_outbox
from eventstore.store import NewEvent
from eventstore.transports.base import TransportUnavailable
from eventstore.transports.memory import InMemoryTransport
from projections import consumer
from projections.projection import ProjectionOutcome
from tests.fake_relay_lock import FakeRelayLock


def held_lock() -> FakeRelayLock:
    lock = FakeRelayLock()
    assert lock.acquire(blocking=False)
    return lock


def deposit() -> NewEvent:
    return NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, datetime.now(UTC), {})


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
    assert relay_outbox(event_store=store, transport=transport, lock=held_lock(), batch_size=2) == 5
    assert store.unpublished() == []
    deliveries = drain(transport.subscribe("check"), 5)
    assert [d.event.version for d in deliveries] == [1, 2, 3, 4, 5]
    assert relay_outbox(event_store=store, transport=transport, lock=held_lock()) == 0


class LosesTheLockAfterSends(InMemoryTransport):
    """Acknowledges each batch; after the `sends`-th the relay's lock lapses and another relay takes it."""

    def __init__(self, lock: FakeRelayLock, sends: int):
        super().__init__(partitions=1)
        self.lock, self.sends_left = lock, sends
        self.other = FakeRelayLock(lock.shared)

    def send(self, events):
        super().send(events)
        self.sends_left -= 1
        if self.sends_left == 0:
            self.lock.lapse()
            assert self.other.acquire(blocking=False)


def test_a_relay_that_lost_its_lock_sends_no_further_batch_and_leaves_the_rest_in_the_outbox():
    store, lock = InMemoryEventStore(), held_lock()
    transport = LosesTheLockAfterSends(lock, sends=2)
    store.append(str(uuid.uuid4()), 0, [deposit() for _ in range(10)])

    with pytest.raises(RelayLockLost):
        relay_outbox(event_store=store, transport=transport, lock=lock, batch_size=2)

    assert [d.event.version for d in drain(transport.subscribe("check"), 4)] == [1, 2, 3, 4]
    assert [e.version for e in store.unpublished()] == [5, 6, 7, 8, 9, 10]
    assert transport.other.held  # the other relay's lock was left alone


def test_a_relay_that_does_not_hold_the_lock_sends_nothing():
    store, transport = InMemoryEventStore(), InMemoryTransport()
    store.append(str(uuid.uuid4()), 0, [deposit()])
    never_taken = FakeRelayLock()

    with pytest.raises(RelayLockLost):
        relay_outbox(event_store=store, transport=transport, lock=never_taken)

    assert len(store.unpublished()) == 1
    assert drain(transport.subscribe("check"), 1) == []


def test_with_the_broker_down_events_wait_in_the_outbox_and_go_out_once_it_is_back():
    store, transport = InMemoryEventStore(), BrokenTransport()
    store.append(str(uuid.uuid4()), 0, [deposit(), deposit()])
    with pytest.raises(TransportUnavailable):
        relay_outbox(event_store=store, transport=transport, lock=held_lock())
    assert len(store.unpublished()) == 2
    transport.down = False
    assert relay_outbox(event_store=store, transport=transport, lock=held_lock()) == 2
    assert len(drain(transport.subscribe("check"), 2)) == 2


class RecordingProjector:
    """Stands in for projections.projection.project_deliveries (the read database is tested in integration/).

    What it records is what the consumer handed it; what it returns is made up, so the tests
    below assert on the first and on the group's committed offsets, never on the second.
    """

    def __init__(self, fail_times=0):
        self.batches = []
        self.fail_times = fail_times

    def __call__(self, *, deliveries, event_store, source):
        if self.fail_times:
            self.fail_times -= 1
            raise OperationalError("read database down")
        self.batches.append([d.event.version if d.event else d.problem for d in deliveries])
        undecodable = sum(d.event is None for d in deliveries)
        return ProjectionOutcome(
            applied=len(deliveries) - undecodable, dead_lettered=undecodable, undecodable=undecodable
        )


def test_the_consumer_applies_a_batch_then_commits(monkeypatch):
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    store.append(str(uuid.uuid4()), 0, [deposit(), deposit()])
    relay_outbox(event_store=store, transport=transport, lock=held_lock())
    projector = RecordingProjector()
    monkeypatch.setattr(consumer, "project_deliveries", projector)

    member = transport.subscribe("projections")
    consumer.consume_batch(subscription=member, event_store=store, timeout_ms=10)
    assert projector.batches == [[1, 2]]
    member.close()
    again = transport.subscribe("projections")
    assert again.poll(timeout_ms=10) == []  # committed: the group does not get them again


def test_a_batch_that_fails_to_apply_is_not_committed_and_comes_back(monkeypatch):
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    store.append(str(uuid.uuid4()), 0, [deposit(), deposit()])
    relay_outbox(event_store=store, transport=transport, lock=held_lock())
    projector = RecordingProjector(fail_times=1)
    monkeypatch.setattr(consumer, "project_deliveries", projector)

    member = transport.subscribe("projections")
    with pytest.raises(OperationalError):
        consumer.consume_batch(subscription=member, event_store=store, timeout_ms=10)
    member.close()
    successor = transport.subscribe("projections")
    consumer.consume_batch(subscription=successor, event_store=store, timeout_ms=10)
    assert projector.batches == [[1, 2]]  # the failed batch came again, whole, and was applied
    successor.close()
    assert transport.subscribe("projections").poll(timeout_ms=10) == []  # and then committed


def test_an_undecodable_message_goes_to_the_projection_with_its_problem_and_is_committed_with_the_good_one(monkeypatch):
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    transport.send_raw(b"k", b"not json")
    store.append(str(uuid.uuid4()), 0, [deposit()])
    relay_outbox(event_store=store, transport=transport, lock=held_lock())
    projector = RecordingProjector()
    monkeypatch.setattr(consumer, "project_deliveries", projector)
    member = transport.subscribe("p")
    consumer.consume_batch(subscription=member, event_store=store, timeout_ms=10)
    [[problem, version]] = projector.batches
    assert "not a TechBank event envelope" in problem and version == 1
    member.close()
    assert transport.subscribe("p").poll(timeout_ms=10) == []  # committed past the bad message too
