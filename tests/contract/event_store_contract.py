"""The event-store contract: every backend subclasses this class once, unchanged.

A subclass provides one fixture, `store`, giving an empty store, and
`run_in_thread`, for backends whose connections are per thread.
"""

import threading
import uuid
from datetime import UTC, datetime

import pytest

from eventstore.store import ConcurrencyConflict, EventStore, NewEvent


def new_event(event_type="FundsDeposited", **data) -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        event_type=event_type,
        data=data or {"amount": "10.00"},
        occurred_at=datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC),
        metadata={"issued_by": "teller", "correlation_id": str(uuid.uuid4())},
    )


def stream() -> str:
    return str(uuid.uuid4())


class EventStoreContract:
    def release_thread_resources(self):
        """Called at the end of each worker thread (Django closes its connection)."""

    def test_appended_events_load_back_in_version_order_unchanged(self, store):
        account = stream()
        events = [new_event("AccountOpened", holder="Zoë Ñandú", opening_balance="0.10"), new_event(), new_event()]
        store.append(account, 0, events)
        loaded = store.load_stream(account)
        assert [e.version for e in loaded] == [1, 2, 3]
        assert [e.event_id for e in loaded] == [e.event_id for e in events]
        assert loaded[0].data == {"holder": "Zoë Ñandú", "opening_balance": "0.10"}
        assert loaded[0].event_type == "AccountOpened"
        assert loaded[1].metadata == events[1].metadata
        assert loaded[2].occurred_at == events[2].occurred_at
        assert all(e.stream_id == account for e in loaded)

    def test_append_returns_the_stored_versions(self, store):
        account = stream()
        store.append(account, 0, [new_event()])
        stored = store.append(account, 1, [new_event(), new_event()])
        assert [e.version for e in stored] == [2, 3]

    def test_loading_after_a_version_returns_only_later_events(self, store):
        account = stream()
        store.append(account, 0, [new_event() for _ in range(5)])
        assert [e.version for e in store.load_stream(account, after_version=3)] == [4, 5]

    def test_an_unknown_stream_loads_empty(self, store):
        assert store.load_stream(stream()) == []

    def test_a_limited_load_reads_one_page_of_the_stream(self, store):
        account = stream()
        store.append(account, 0, [new_event(amount=f"{n}.00") for n in range(1, 8)])
        assert [e.version for e in store.load_stream(account, limit=3)] == [1, 2, 3]
        page = store.load_stream(account, after_version=3, limit=3)
        assert [(e.version, e.data["amount"]) for e in page] == [(4, "4.00"), (5, "5.00"), (6, "6.00")]
        assert page == store.load_stream(account)[3:6]
        assert [e.version for e in store.load_stream(account, after_version=6, limit=3)] == [7]
        assert store.load_stream(account, after_version=7, limit=3) == []

    def test_a_limited_load_keeps_to_its_stream(self, store):
        a, b = stream(), stream()
        store.append(a, 0, [new_event(), new_event()])
        store.append(b, 0, [new_event(), new_event(), new_event()])
        store.append(a, 2, [new_event()])
        assert [(e.stream_id, e.version) for e in store.load_stream(a, after_version=1, limit=5)] == [(a, 2), (a, 3)]

    def test_stream_version_is_the_latest_version_and_zero_for_an_unknown_stream(self, store):
        a, b = stream(), stream()
        store.append(a, 0, [new_event(), new_event()])
        store.append(b, 0, [new_event()])
        store.append(a, 2, [new_event()])
        assert (store.stream_version(a), store.stream_version(b), store.stream_version(stream())) == (3, 1, 0)

    def test_a_stale_expected_version_is_a_conflict_and_stores_nothing(self, store):
        account = stream()
        store.append(account, 0, [new_event(), new_event()])
        with pytest.raises(ConcurrencyConflict):
            store.append(account, 1, [new_event()])
        assert [e.version for e in store.load_stream(account)] == [1, 2]

    def test_an_expected_version_beyond_the_stream_is_a_conflict(self, store):
        account = stream()
        store.append(account, 0, [new_event()])
        with pytest.raises(ConcurrencyConflict):
            store.append(account, 5, [new_event()])
        assert len(store.load_stream(account)) == 1

    def test_a_second_opening_of_the_same_stream_is_a_conflict(self, store):
        account = stream()
        store.append(account, 0, [new_event()])
        with pytest.raises(ConcurrencyConflict):
            store.append(account, 0, [new_event()])

    def test_a_multi_event_append_is_all_or_nothing(self, store):
        account = stream()
        first = new_event()
        store.append(account, 0, [first])
        reused_id = NewEvent(first.event_id, "FundsDeposited", {"amount": "1.00"}, first.occurred_at, {})
        with pytest.raises(ConcurrencyConflict):
            store.append(account, 1, [new_event(), reused_id])
        assert [e.version for e in store.load_stream(account)] == [1]
        assert store.count_events() == 1

    def test_streams_are_versioned_independently(self, store):
        a, b = stream(), stream()
        store.append(a, 0, [new_event(), new_event()])
        store.append(b, 0, [new_event()])
        assert [e.version for e in store.load_stream(a)] == [1, 2]
        assert [e.version for e in store.load_stream(b)] == [1]

    def test_read_all_returns_every_event_in_one_global_order(self, store):
        a, b = stream(), stream()
        store.append(a, 0, [new_event()])
        store.append(b, 0, [new_event(), new_event()])
        store.append(a, 1, [new_event()])
        everything = list(store.read_all(batch_size=2))
        assert [(e.stream_id, e.version) for e in everything] == [(a, 1), (b, 1), (b, 2), (a, 2)]
        positions = [e.position for e in everything]
        assert positions == sorted(positions) and len(set(positions)) == 4

    def test_read_all_gives_each_event_exactly_as_its_stream_does(self, store):
        a, b = stream(), stream()
        store.append(a, 0, [new_event("AccountOpened", holder="Zoë Ñandú", opening_balance="0.10")])
        store.append(b, 0, [new_event(), NewEvent(uuid.uuid4(), "AccountClosed", {}, datetime.now(UTC))])
        store.append(a, 1, [new_event(amount="12.34")])
        assert list(store.read_all(batch_size=2)) == sorted(
            store.load_stream(a) + store.load_stream(b), key=lambda e: e.position
        )

    def test_read_all_resumes_after_a_position(self, store):
        a = stream()
        store.append(a, 0, [new_event() for _ in range(4)])
        everything = list(store.read_all())
        rest = list(store.read_all(after_position=everything[1].position))
        assert [e.version for e in rest] == [3, 4]

    def test_count_events_counts_all_streams(self, store):
        store.append(stream(), 0, [new_event(), new_event()])
        store.append(stream(), 0, [new_event()])
        assert store.count_events() == 3

    def test_concurrent_writers_at_the_same_version_let_exactly_one_win(self, store):
        account = stream()
        store.append(account, 0, [new_event()])
        writers = 8
        barrier = threading.Barrier(writers)
        outcomes = []

        def write():
            try:
                barrier.wait()
                store.append(account, 1, [new_event()])
                outcomes.append("stored")
            except ConcurrencyConflict:
                outcomes.append("conflict")
            finally:
                self.release_thread_resources()

        threads = [threading.Thread(target=write) for _ in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict"] * (writers - 1) + ["stored"]
        assert [e.version for e in store.load_stream(account)] == [1, 2]

    def test_appended_events_wait_in_the_outbox_in_global_order(self, store):
        a, b = stream(), stream()
        store.append(a, 0, [new_event(), new_event()])
        store.append(b, 0, [new_event()])
        waiting = store.unpublished()
        assert [(e.stream_id, e.version) for e in waiting] == [(a, 1), (a, 2), (b, 1)]
        assert [e.event_id for e in waiting] == [e.event_id for e in store.read_all()]

    def test_published_events_leave_the_outbox_and_stay_in_the_store(self, store):
        account = stream()
        store.append(account, 0, [new_event(), new_event(), new_event()])
        first_two = [e.event_id for e in store.unpublished(limit=2)]
        store.mark_published(first_two)
        assert [e.version for e in store.unpublished()] == [3]
        store.mark_published(first_two)  # again: harmless
        assert len(store.load_stream(account)) == 3

    def test_a_refused_append_leaves_nothing_in_the_outbox(self, store):
        account = stream()
        store.append(account, 0, [new_event()])
        with pytest.raises(ConcurrencyConflict):
            store.append(account, 0, [new_event(), new_event()])
        assert [e.version for e in store.unpublished()] == [1]

    def test_an_append_at_any_stored_version_is_refused_and_the_stored_events_stay_as_they_were(self, store):
        account = stream()
        store.append(account, 0, [new_event("AccountOpened", holder="Ada", opening_balance="10.00"), new_event()])
        store.append(account, 2, [new_event(amount="7.77")])
        before = store.load_stream(account)
        for stored_version in (0, 1, 2):
            forged = new_event(amount="1000000.00")
            with pytest.raises(ConcurrencyConflict):
                store.append(account, stored_version, [forged])
        assert store.load_stream(account) == before
        assert list(store.read_all()) == before

    def test_the_interface_offers_no_way_to_change_or_delete_a_stored_event(self, store):
        """Events are appended, read and published; nothing else. (The outbox's
        mark_published takes an event off the list to publish, not out of the store.)"""
        assert EventStore.__abstractmethods__ == {
            "append",
            "load_stream",
            "stream_version",
            "read_all",
            "count_events",
            "unpublished",
            "mark_published",
        }
        assert isinstance(store, EventStore)
        account = stream()
        store.append(account, 0, [new_event(), new_event()])
        before = store.load_stream(account)
        store.mark_published([e.event_id for e in store.unpublished()])
        assert store.load_stream(account) == before and store.count_events() == 2
