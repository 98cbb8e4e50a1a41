import threading
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from pymongo import monitoring
from pymongo.errors import OperationFailure

from eventstore.backends import mongo
from eventstore.backends.mongo import MongoEventStore
from eventstore.store import ConcurrencyConflict, NewEvent
from tests.contract.event_store_contract import EventStoreContract, new_event, stream
from tests.servers.mongo import mongo_server  # noqa: F401  (the session's server, a pytest fixture)


class DocumentsSent(monitoring.CommandListener):
    """Counts the event documents the server sends in answer to finds, while `counting`."""

    def __init__(self):
        self.counting = False
        self.documents = 0

    def started(self, event):
        pass

    def succeeded(self, event):
        if self.counting and event.command_name in ("find", "getMore"):
            cursor = event.reply.get("cursor", {})
            self.documents += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event):
        pass


# Listeners apply to clients made after they are registered: each test's store makes its own.
documents_sent = DocumentsSent()
monitoring.register(documents_sent)


@pytest.fixture
def store(mongo_server):  # noqa: F811
    """An empty store on a database of its own."""
    name = f"techbank_test_{uuid.uuid4().hex[:12]}"
    store = MongoEventStore(url=f"{mongo_server}/{name}?retryWrites=false", alias=name)
    yield store
    store.drop_everything()
    store.close()


class TestMongoEventStore(EventStoreContract):
    """The shared contract, on the module's `store` fixture."""


def test_a_page_of_a_long_stream_is_all_the_server_sends(store):
    account = stream()
    store.append(account, 0, [new_event() for _ in range(300)])
    documents_sent.documents, documents_sent.counting = 0, True
    try:
        page = store.load_stream(account, after_version=100, limit=20)
    finally:
        documents_sent.counting = False
    assert [e.version for e in page] == list(range(101, 121))
    assert documents_sent.documents == 20


def test_an_occurred_at_in_another_time_zone_loads_back_as_the_same_instant_in_utc(store):
    account = stream()
    paris = timezone(timedelta(hours=2))
    occurred_at = datetime(2026, 6, 1, 11, 0, 0, 654321, tzinfo=paris)
    event = NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, occurred_at)
    store.append(account, 0, [event])
    [loaded] = store.load_stream(account)
    assert loaded.occurred_at == event.occurred_at
    assert loaded.occurred_at.utcoffset() == timedelta(0)
    assert loaded.occurred_at.microsecond == 654321


def test_a_reader_resuming_after_its_last_position_misses_no_concurrent_append(store):
    writers, appends_each = 4, 15
    writing = threading.Event()
    writing.set()
    seen = []

    def write():
        account = stream()
        for version in range(appends_each):
            store.append(account, version, [new_event()])

    def read():
        checkpoint = 0
        while True:
            still_writing = writing.is_set()
            for event in store.read_all(after_position=checkpoint):
                seen.append(event.event_id)
                checkpoint = event.position
            if not still_writing:
                return

    reader = threading.Thread(target=read)
    threads = [threading.Thread(target=write) for _ in range(writers)]
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writing.clear()
    reader.join(timeout=60)
    assert seen == [e.event_id for e in store.read_all()]
    assert len(seen) == writers * appends_each


def test_an_append_that_keeps_meeting_write_conflicts_gives_up_as_a_conflict_and_stores_nothing(store, monkeypatch):
    account = stream()
    store.append(account, 0, [new_event()])
    # The store's own clock, which only the lost attempts move: one second each. Its limit, not
    # pymongo's own (120 s of real time), must be what ends the retries.
    clock = SimpleNamespace(now=0.0)
    attempts_at = []

    def lose_to_another_writer(*args):
        attempts_at.append(clock.now)
        clock.now += 1.0
        # What the server answers a transaction that lost the position counter to another append.
        raise OperationFailure(
            "WriteConflict",
            code=112,
            details={"codeName": "WriteConflict", "errorLabels": ["TransientTransactionError"]},
        )

    monkeypatch.setattr(mongo, "WRITE_CONFLICT_SECONDS", 3.0)
    monkeypatch.setattr(mongo, "time", SimpleNamespace(monotonic=lambda: clock.now))
    monkeypatch.setattr(store, "_new_document", lose_to_another_writer)

    with pytest.raises(ConcurrencyConflict):
        store.append(account, 1, [new_event()])

    assert attempts_at == [0.0, 1.0, 2.0, 3.0]  # retried while within its limit, then no more
    monkeypatch.undo()
    assert [e.version for e in store.load_stream(account)] == [1]
    assert len(store.unpublished()) == 1
    assert [e.version for e in store.append(account, 1, [new_event()])] == [2]
