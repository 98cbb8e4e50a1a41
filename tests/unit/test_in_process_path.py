"""The embedded stack's event path: outbox -> relay -> in-process topic -> consumer, in the command's thread.

The projector is a stand-in here (the read database is tested in
tests/integration/test_in_process_bus.py and test_poison_events.py); what is
checked is the path: what reaches the consumer, what stays in the outbox, and
who waits for whom.
"""

import logging
import threading
import uuid
from datetime import UTC, datetime

import pytest
from django.db import OperationalError

from eventstore.backends.memory import InMemoryEventStore
from eventstore.in_process_relay_lock import InProcessRelayLock
from eventstore.store import NewEvent
from eventstore.transports.in_process import InProcessTransport
from projections import consumer
from projections.in_process_path import InProcessEventPath
from projections.projection import ProjectionOutcome


class Projector:
    """Stands in for projections.projection.project_deliveries: records what it was handed, or fails."""

    def __init__(self):
        self.failing = False
        self.versions: list[int] = []
        self.sources: set[str] = set()

    def __call__(self, *, deliveries, event_store, source):
        if self.failing:
            raise OperationalError("read database down")
        self.versions += [d.event.version for d in deliveries]
        self.sources.add(source)
        return ProjectionOutcome(applied=len(deliveries))


@pytest.fixture
def projector(monkeypatch) -> Projector:
    projector = Projector()
    monkeypatch.setattr(consumer, "project_deliveries", projector)
    return projector


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def path(store) -> InProcessEventPath:
    return InProcessEventPath(event_store=store, transport=InProcessTransport(), relay_lock=InProcessRelayLock())


def deposit() -> NewEvent:
    return NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, datetime.now(UTC), {})


def test_the_outbox_is_relayed_and_consumed_before_the_call_returns(path, store, projector):
    account = str(uuid.uuid4())
    store.append(account, 0, [deposit(), deposit()])

    path.relay_and_consume()

    assert projector.versions == [1, 2]
    assert projector.sources == {"in-process"}  # what it sets aside says it came from here
    assert store.unpublished() == []
    assert path.transport.uncommitted() == 0


def test_a_projection_failure_is_logged_and_the_events_stay_in_the_outbox_until_the_next_call(
    path, store, projector, caplog
):
    account = str(uuid.uuid4())
    store.append(account, 0, [deposit()])
    projector.failing = True

    with caplog.at_level(logging.ERROR, logger="projections.in_process_path"):
        path.relay_and_consume()  # does not raise: the command has happened

    assert "waits for the next command" in caplog.text
    assert [e.version for e in store.unpublished()] == [1]
    projector.failing = False
    store.append(account, 1, [deposit()])
    path.relay_and_consume()
    assert sorted(set(projector.versions)) == [1, 2]  # the first one possibly twice: idempotent downstream
    assert store.unpublished() == []
    assert path.transport.uncommitted() == 0


def test_what_a_failed_call_left_in_the_topic_does_not_grow_while_the_read_side_stays_down(path, store, projector):
    account = str(uuid.uuid4())
    projector.failing = True
    for version in range(5):
        store.append(account, version, [deposit()])
        path.relay_and_consume()
    assert path.transport.uncommitted() == 1  # the first send's, never sent again on top of it
    assert len(store.unpublished()) == 5


def test_a_call_waits_for_the_relay_another_thread_runs_then_projects_what_is_left(path, store, projector):
    other_thread = path.relay_lock.handle()
    assert other_thread.acquire(blocking=False)  # another request's thread is relaying
    store.append(str(uuid.uuid4()), 0, [deposit()])
    returned = threading.Event()
    request = threading.Thread(target=lambda: (path.relay_and_consume(), returned.set()))
    request.start()

    assert not returned.wait(0.3)  # it does not return before its own event is projected
    assert projector.versions == []
    other_thread.release()
    request.join(timeout=10)
    assert returned.is_set() and projector.versions == [1]
    assert store.unpublished() == []


def test_concurrent_calls_project_every_event_once_and_each_returns_after_its_own(path, store, projector):
    accounts = [str(uuid.uuid4()) for _ in range(8)]
    seen_on_return: dict[str, bool] = {}

    def command(account: str) -> None:
        (stored,) = store.append(account, 0, [deposit()])
        path.relay_and_consume()
        seen_on_return[account] = all(e.event_id != stored.event_id for e in store.unpublished())

    threads = [threading.Thread(target=command, args=[account]) for account in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert seen_on_return == dict.fromkeys(accounts, True)
    assert len(projector.versions) == len(accounts)
    assert store.unpublished() == []
