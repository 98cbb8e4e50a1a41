"""The event-store contract against the SQL backend, on whichever database the
run is configured for: SQLite by default, MariaDB/MySQL or PostgreSQL through
DATABASE_URL (scripts/test-mariadb.sh)."""

import linecache
import sys
import threading
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from eventstore.backends.django_orm import DjangoEventStore
from eventstore.models import StoredEventRecord
from eventstore.store import ConcurrencyConflict
from tests.contract.event_store_contract import EventStoreContract, new_event, stream
from tests.waiting import wait_until


class _RolledBack(Exception):
    pass


def _waiting_in_begin(frame) -> bool:
    """Whether a thread whose innermost Python frame is `frame` waits in the store's BEGIN IMMEDIATE.

    The append runs its BEGIN on the driver's own cursor, which has no Python frame: the
    innermost one is the store's line that calls it (wherever it stands, in a mutated copy too).
    """
    return frame is not None and "execute(sql.begin)" in linecache.getline(frame.f_code.co_filename, frame.f_lineno)


def writers_waiting_for_a_lock(writers: list[threading.Thread]) -> int:
    """How many of `writers` the database holds waiting for a lock another transaction has."""
    if connection.vendor == "mysql":
        # The server's own list of statements in progress: an INSERT into the store while another
        # transaction holds the same key cannot finish (InnoDB does not list all of these as LOCK WAIT).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                " WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE %s",
                ["INSERT INTO `event_store` %"],
            )
            return cursor.fetchone()[0]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0]
    # SQLite shows no waiters: a writer in its BEGIN IMMEDIATE while another transaction writes is one.
    frames = sys._current_frames()
    return sum(1 for writer in writers if _waiting_in_begin(frames.get(writer.ident)))


@pytest.mark.django_db(transaction=True)
class TestDjangoEventStore(EventStoreContract):
    @pytest.fixture
    def store(self):
        assert connection.vendor in {"sqlite", "mysql", "postgresql"}, connection.vendor
        return DjangoEventStore()

    def release_thread_resources(self):
        connection.close()

    def test_text_outside_the_basic_multilingual_plane_round_trips(self, store):
        """4-byte UTF-8 (MySQL's utf8mb4), in a text column and in JSON."""
        account = stream()
        store.append(account, 0, [new_event("Opened 🏦", holder="Zoë Ñandú 🐧", note="𝄞 ✓")])
        [loaded] = store.load_stream(account)
        assert loaded.event_type == "Opened 🏦"
        assert loaded.data == {"holder": "Zoë Ñandú 🐧", "note": "𝄞 ✓"}

    def test_a_page_of_a_stream_is_one_query_limited_by_the_database(self, store):
        account = stream()
        store.append(account, 0, [new_event() for _ in range(6)])
        with CaptureQueriesContext(connection) as queries:
            page = store.load_stream(account, after_version=2, limit=3)
        assert [e.version for e in page] == [3, 4, 5]
        [query] = queries.captured_queries
        assert "LIMIT 3" in query["sql"]

    def test_writers_waiting_on_an_append_that_rolls_back_settle_as_one_win_and_conflicts(self, store):
        """On InnoDB, writers queued behind an uncommitted row at the same
        (stream_id, version) may deadlock (error 1213) when its transaction rolls
        back: the victim must come out as a conflict, never as a crash. (MariaDB
        10.11 here settles them without one; either way the writers must have waited.)"""
        account = stream()
        store.append(account, 0, [new_event()])
        holding, release = threading.Event(), threading.Event()
        writers = 3
        outcomes = []

        def hold_version_2_then_roll_back():
            try:
                with transaction.atomic():
                    StoredEventRecord.objects.create(
                        event_id=uuid.uuid4(),
                        stream_id=account,
                        version=2,
                        event_type="Doomed",
                        data={},
                        occurred_at=new_event().occurred_at,
                    )
                    holding.set()
                    release.wait(10)
                    raise _RolledBack
            except _RolledBack:
                pass
            finally:
                holding.set()
                self.release_thread_resources()

        def write():
            try:
                holding.wait(10)
                store.append(account, 1, [new_event()])
                outcomes.append("stored")
            except ConcurrencyConflict:
                outcomes.append("conflict")
            except Exception as error:  # noqa: BLE001 - the assertion below names it
                outcomes.append(repr(error))
            finally:
                self.release_thread_resources()

        holder = threading.Thread(target=hold_version_2_then_roll_back)
        holder.start()
        assert holding.wait(10)
        threads = [threading.Thread(target=write) for _ in range(writers)]
        for t in threads:
            t.start()
        # Released only once every writer waits on the held key: the path this test is about.
        wait_until(
            lambda: writers_waiting_for_a_lock(threads) == writers,
            seconds=30,
            failure=lambda: f"{writers_waiting_for_a_lock(threads)} of {writers} writers waiting for the lock",
        )
        release.set()
        for t in [holder, *threads]:
            t.join()
        assert sorted(outcomes) == ["conflict"] * (writers - 1) + ["stored"]
        assert [e.event_type for e in store.load_stream(account)] == ["FundsDeposited"] * 2
