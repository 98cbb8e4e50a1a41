"""The event-store contract against the SQL backend, on whichever database the
run is configured for: SQLite by default, MariaDB/MySQL or PostgreSQL through
DATABASE_URL (scripts/test-mariadb.sh)."""
import threading
import time
import uuid

import pytest
from django.db import connection, transaction

from eventstore.backends.django_orm import DjangoEventStore
from eventstore.models import StoredEventRecord
from eventstore.store import ConcurrencyConflict
from tests.contract.event_store_contract import EventStoreContract, new_event, stream


class _RolledBack(Exception):
    pass


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

    def test_writers_waiting_on_an_append_that_rolls_back_settle_as_one_win_and_conflicts(self, store):
        """On InnoDB, writers queued behind an uncommitted row at the same
        (stream_id, version) deadlock (error 1213) when its transaction rolls
        back: the victim must come out as a conflict, never as a crash."""
        account = stream()
        store.append(account, 0, [new_event()])
        holding, release = threading.Event(), threading.Event()
        writers = 3
        outcomes = []

        def hold_version_2_then_roll_back():
            try:
                with transaction.atomic():
                    StoredEventRecord.objects.create(
                        event_id=uuid.uuid4(), stream_id=account, version=2, event_type="Doomed",
                        data={}, occurred_at=new_event().occurred_at,
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
        time.sleep(0.5)  # let the writers queue on the held key
        release.set()
        for t in [holder, *threads]:
            t.join()
        assert sorted(outcomes) == ["conflict"] * (writers - 1) + ["stored"]
        assert [e.event_type for e in store.load_stream(account)] == ["FundsDeposited"] * 2
