import threading
import time

import pytest

from techbank_site import bootstrap


@pytest.fixture
def slow_to_build_store(settings, monkeypatch):
    """The SQL store, made slow to construct (as a MongoDB connection is), counting how often it is built."""
    from eventstore.backends import django_orm

    built = []

    class SlowStore(django_orm.DjangoEventStore):
        def __init__(self):
            time.sleep(0.05)
            built.append(self)

    settings.TECHBANK_EVENT_STORE = "sql"
    monkeypatch.setattr(django_orm, "DjangoEventStore", SlowStore)
    bootstrap.reset()
    yield built
    bootstrap.reset()


def test_threads_asking_for_the_event_store_at_once_all_get_the_one_store_built(slow_to_build_store):
    threads_at_once = 8
    start = threading.Barrier(threads_at_once)
    got = []

    def ask():
        start.wait()
        got.append(bootstrap.event_store())

    threads = [threading.Thread(target=ask) for _ in range(threads_at_once)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(slow_to_build_store) == 1
    assert len(got) == threads_at_once and all(store is slow_to_build_store[0] for store in got)
