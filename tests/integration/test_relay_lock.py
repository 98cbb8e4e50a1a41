"""The relay's lock (one relay at a time) on a real Redis: held while a relay runs, lapses soon after one dies."""
import os
import time
import uuid

import pytest

from eventstore import tasks
from techbank_site import bootstrap
from tests.servers.processes import unavailable

REDIS_URL = os.environ.get("TECHBANK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_client(settings):
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        unavailable(f"Redis not reachable at {REDIS_URL}: {error}")
    settings.CELERY_BROKER_URL = REDIS_URL
    settings.TECHBANK_KAFKA_TOPIC = f"relay-lock-test-{uuid.uuid4().hex[:8]}"
    yield client
    client.delete(f"techbank:relay-outbox:{settings.TECHBANK_KAFKA_TOPIC}")


def test_a_relay_that_dies_holding_the_lock_holds_up_the_next_one_for_seconds_not_minutes(redis_client):
    dead_relays_lock = bootstrap.relay_lock()
    assert dead_relays_lock.acquire(blocking=False)  # and then its process is killed: nobody releases it
    assert dead_relays_lock.timeout <= 10
    assert 0 < redis_client.pttl(dead_relays_lock.name) <= 10_000


def test_the_lock_is_kept_while_a_relay_runs_longer_than_its_timeout(redis_client, monkeypatch):
    short_lock = bootstrap.relay_lock()
    short_lock.timeout = 0.6  # so that the test need not run for the real timeout
    monkeypatch.setattr(bootstrap, "relay_lock", lambda: short_lock)
    monkeypatch.setattr(bootstrap, "event_store", lambda: None)
    monkeypatch.setattr(bootstrap, "event_transport", lambda: None)
    held_throughout = []

    def slow_relay(*, event_store, transport, batch_size):
        for _ in range(6):  # 1.5 s: more than twice the timeout
            time.sleep(0.25)
            held_throughout.append(redis_client.get(short_lock.name) is not None)
        return 7

    monkeypatch.setattr(tasks, "relay_outbox", slow_relay)
    assert tasks.relay_outbox_task() == 7
    assert all(held_throughout) and len(held_throughout) == 6
    assert redis_client.get(short_lock.name) is None  # released once done
