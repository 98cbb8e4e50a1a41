"""StreamEvents: a stream as a sequence a paginator can slice, reading only each slice."""

import uuid
from datetime import UTC, datetime

import pytest
from django.core.paginator import Paginator

from eventstore.backends.memory import InMemoryEventStore
from eventstore.paging import StreamEvents
from eventstore.store import NewEvent


class CountingStore(InMemoryEventStore):
    def __init__(self):
        super().__init__()
        self.events_read = 0

    def load_stream(self, stream_id, after_version=0, *, limit=None):
        events = super().load_stream(stream_id, after_version, limit=limit)
        self.events_read += len(events)
        return events


@pytest.fixture
def store():
    return CountingStore()


def stream_of(store, length: int) -> str:
    account = str(uuid.uuid4())
    events = [
        NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": f"{n}.00"}, datetime.now(UTC)) for n in range(1, length + 1)
    ]
    store.append(account, 0, events)
    store.events_read = 0
    return account


def test_its_length_is_the_streams_and_an_unknown_stream_is_empty(store):
    assert len(StreamEvents(store, stream_of(store, 7))) == 7
    assert not StreamEvents(store, str(uuid.uuid4()))
    assert store.events_read == 0


def test_a_slice_reads_only_its_events(store):
    events = StreamEvents(store, stream_of(store, 300))
    assert [e.version for e in events[40:60]] == list(range(41, 61))
    assert store.events_read == 20
    assert [e.version for e in events[290:400]] == list(range(291, 301))
    assert events[300:310] == [] and events[10:5] == []


def test_single_events_count_from_either_end(store):
    events = StreamEvents(store, stream_of(store, 5))
    assert (events[0].version, events[4].version, events[-1].version, events[-5].version) == (1, 5, 5, 1)
    for outside in (5, -6):
        with pytest.raises(IndexError):
            events[outside]


def test_a_django_paginator_reads_one_page_and_the_length(store):
    page = Paginator(StreamEvents(store, stream_of(store, 300)), 25).page(4)
    assert [e.version for e in page] == list(range(76, 101))
    assert (page.paginator.count, page.paginator.num_pages, page.has_next()) == (300, 12, True)
    assert store.events_read == 25


def test_a_stepped_slice_is_refused(store):
    with pytest.raises(ValueError, match="one step at a time"):
        StreamEvents(store, stream_of(store, 5))[::2]
