"""The SQL event store's append on the paths the contract does not reach on every database:
without RETURNING (MySQL: positions from the cursor's lastrowid, conflicts from the row
count), inside a caller's transaction (Django's atomic block and cursor), and an empty
append, which still refuses a gap."""

import pytest
from django.db import connection, transaction

from eventstore.backends import django_orm
from eventstore.backends.django_orm import DjangoEventStore
from eventstore.store import ConcurrencyConflict
from tests.contract.event_store_contract import new_event, stream


@pytest.fixture(autouse=True)
def fresh_statements(monkeypatch):
    """The append's statements built afresh, as a new process builds them (they are kept per connection)."""
    monkeypatch.setattr(django_orm, "_statements_by_connection", {})


@pytest.fixture
def store():
    return DjangoEventStore()


@pytest.fixture
def without_returning(monkeypatch, fresh_statements):
    """The statements built as for a database without INSERT ... RETURNING."""
    # On the instance: the class's value is a cached_property, which an earlier read may have cached.
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False, raising=False)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("without_returning")
class TestWithoutReturning:
    def test_the_append_reads_each_position_from_the_cursor(self, store):
        store.append(stream(), 0, [new_event()])
        account = stream()
        first = store.append(account, 0, [new_event(), new_event()])
        later = store.append(account, 2, [new_event()])
        stored = first + later
        assert [e.position for e in stored] == [e.position for e in list(store.read_all())[1:]]
        assert [e.version for e in stored] == [1, 2, 3]
        assert [e.event_id for e in store.unpublished()][1:] == [e.event_id for e in stored]

    def test_an_append_after_a_version_the_stream_lacks_is_a_conflict_that_stores_nothing(self, store):
        account = stream()
        store.append(account, 0, [new_event()])
        with pytest.raises(ConcurrencyConflict):
            store.append(account, 3, [new_event(), new_event()])
        assert [e.version for e in store.load_stream(account)] == [1]
        assert [e.version for e in store.unpublished()] == [1]


@pytest.mark.django_db(transaction=True)
class TestInsideACallersTransaction:
    def test_an_append_in_a_transaction_that_commits_is_stored_with_its_outbox_entries(self, store):
        account = stream()
        with transaction.atomic():
            stored = store.append(account, 0, [new_event(), new_event()])
        assert [e.version for e in stored] == [1, 2] and all(e.position for e in stored)
        assert [e.event_id for e in store.unpublished()] == [e.event_id for e in stored]

    def test_an_append_in_a_transaction_that_rolls_back_leaves_nothing(self, store):
        account = stream()

        def the_callers_work(then_fails: Exception) -> None:
            with transaction.atomic():
                store.append(account, 0, [new_event()])
                raise then_fails

        with pytest.raises(RuntimeError):
            the_callers_work(RuntimeError("the caller's work failed"))
        assert store.load_stream(account) == [] and store.unpublished() == []

    def test_a_conflict_inside_a_transaction_leaves_the_callers_transaction_usable(self, store):
        account = stream()
        store.append(account, 0, [new_event()])
        with transaction.atomic():
            with pytest.raises(ConcurrencyConflict):
                store.append(account, 0, [new_event()])
            store.append(account, 1, [new_event()])
        assert [e.version for e in store.load_stream(account)] == [1, 2]


@pytest.mark.django_db(transaction=True)
class TestAnEmptyAppend:
    def test_an_empty_append_at_the_streams_version_stores_nothing(self, store):
        account = stream()
        store.append(account, 0, [new_event()])
        assert store.append(account, 1, []) == []
        assert store.append(stream(), 0, []) == []
        assert store.count_events() == 1

    def test_an_empty_append_beyond_the_stream_is_a_conflict(self, store):
        account = stream()
        store.append(account, 0, [new_event()])
        with pytest.raises(ConcurrencyConflict):
            store.append(account, 2, [])


@pytest.mark.django_db(transaction=True)
class TestWhatAnAppendAnswers:
    def test_an_append_returns_its_events_exactly_as_they_load_back(self, store):
        account = stream()
        events = [new_event("AccountOpened", holder="Ada", opening_balance="1.00"), new_event()]
        stored = store.append(account, 0, events[:1]) + store.append(account, 1, events[1:])
        assert stored == store.load_stream(account)
        assert [(e.event_type, e.data, e.metadata, e.occurred_at) for e in stored] == [
            (e.event_type, e.data, e.metadata, e.occurred_at) for e in events
        ]

    @pytest.mark.parametrize(
        "expected_version, events",
        [(0, 1), (2, 1), (2, 0)],
        ids=["a second opening", "a version beyond the stream", "an empty append beyond the stream"],
    )
    @pytest.mark.parametrize("returning", [True, False], ids=["with RETURNING", "without RETURNING"])
    def test_a_conflict_names_the_stream_and_the_version_it_expected(
        self, store, monkeypatch, expected_version, events, returning
    ):
        if not returning:
            monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False, raising=False)
        account = stream()
        store.append(account, 0, [new_event()])
        with pytest.raises(ConcurrencyConflict) as conflict:
            store.append(account, expected_version, [new_event() for _ in range(events)])
        assert (conflict.value.stream_id, conflict.value.expected_version) == (account, expected_version)
