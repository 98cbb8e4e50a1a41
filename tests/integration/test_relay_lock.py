"""The relay's lock (one relay at a time) on a real Redis: held while a relay runs, lapses soon after one dies,
and every way of running the relay takes it."""

import os
import time
import uuid
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from entrypoints import tasks
from entrypoints.wiring import services
from eventstore.relay import holding
from eventstore.store import NewEvent
from eventstore.transports.kafka import KafkaTransport
from tests.contract.relay_lock_contract import RelayLockContract
from tests.servers.kafka import TopicSize, kafka_broker  # noqa: F401  (the session's broker, a pytest fixture)
from tests.servers.processes import unavailable
from tests.wiring import rewire

REDIS_URL = os.environ.get("TECHBANK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
HANG_SECONDS = 30  # bounds a wait that should end in milliseconds: only a hang reaches it


def wait_until(condition, message: str):
    deadline = time.monotonic() + HANG_SECONDS
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.005)


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
    client.close()


class TestRedisRelayLock(RelayLockContract):
    @pytest.fixture
    def make_lock(self, redis_client):
        return lambda: services().relay_lock(UNUSED_TRANSPORT)

    @pytest.fixture
    def lapse(self, redis_client):
        def run_out(lock):
            redis_client.pexpire(lock.name, 1)  # what Redis does once the timeout passed unrenewed
            wait_until(lambda: not redis_client.exists(lock.name), "the lock's key never expired")

        return run_out


# Nothing is sent through it: the lock only asks how long a send to Kafka can take.
UNUSED_TRANSPORT = KafkaTransport("127.0.0.1:9", "relay-lock-test")


def test_a_relay_that_dies_holding_the_lock_holds_up_the_next_one_for_under_a_minute(redis_client):
    dead_relays_lock = services().relay_lock(UNUSED_TRANSPORT)
    assert dead_relays_lock.acquire(blocking=False)  # and then its process is killed: nobody releases it
    assert dead_relays_lock.timeout < 60
    assert 0 < redis_client.pttl(dead_relays_lock.name) < 60_000


def test_the_lock_outlasts_the_longest_send_so_a_confirmed_batch_is_out_before_another_relay_can_take_over(
    redis_client, settings
):
    longest_send = UNUSED_TRANSPORT.longest_send_seconds()
    assert longest_send > 30  # connecting, metadata, delivery and its grace: kafka.py's timeouts
    assert services().relay_lock(UNUSED_TRANSPORT).timeout > longest_send
    settings.TECHBANK_RELAY_LOCK_SECONDS = longest_send  # as the 10 s lock was: shorter than a send
    with pytest.raises(ImproperlyConfigured, match="TECHBANK_RELAY_LOCK_SECONDS"):
        services().relay_lock(UNUSED_TRANSPORT)


def test_the_lock_is_kept_while_a_relay_runs_longer_than_its_timeout(redis_client):
    lock = services().relay_lock(UNUSED_TRANSPORT)
    lock.timeout = 1.5  # so that the test need not run for the real timeout
    renewals, last_ttl = 0, None
    with holding(lock) as lost:
        # Watch the key's time to live: each time it goes up again, the relay renewed it. Four
        # renewals, a third of a timeout apart, outlast the timeout: only renewing keeps it that long.
        while renewals < 4:
            ttl = redis_client.pttl(lock.name)
            assert ttl > 0, f"the lock ran out while its relay was running (after {renewals} renewals)"
            renewals += last_ttl is not None and ttl > last_ttl
            last_ttl = ttl
            time.sleep(0.01)  # a poll interval, not a wait for something to happen
        assert not lost.is_set()
    assert redis_client.get(lock.name) is None  # released once done


@pytest.fixture
def kafka_relay(settings, redis_client, kafka_broker):  # noqa: F811
    """The SQL event store's outbox with two events in it, a Kafka bus on a fresh topic, and the relay lock on Redis."""
    settings.TECHBANK_EVENT_STORE = "sql"
    settings.TECHBANK_EVENT_BUS = "kafka"
    settings.TECHBANK_KAFKA_BOOTSTRAP = kafka_broker
    rewire()
    store = services().event_store
    now = datetime.now(UTC)
    store.append(
        str(uuid.uuid4()), 0, [NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, now, {}) for _ in range(2)]
    )
    yield store
    services().transport.close()
    rewire()


def on_the_topic() -> int:
    """How many messages the topic holds, asked of the broker (its end offsets): no waiting for absence."""
    topic_size = TopicSize(settings.TECHBANK_KAFKA_BOOTSTRAP, settings.TECHBANK_KAFKA_TOPIC)
    try:
        return topic_size()
    finally:
        topic_size.close()


@pytest.mark.django_db(transaction=True)
def test_the_one_off_relay_command_refuses_in_one_line_while_another_relay_holds_the_lock(kafka_relay):
    with holding(services().relay_lock(UNUSED_TRANSPORT)):  # as a running `relay_outbox --follow` holds it
        with pytest.raises(CommandError, match="another relay holds the relay lock") as refused:
            call_command("relay_outbox")
        assert "\n" not in str(refused.value)
        assert len(kafka_relay.unpublished()) == 2
    call_command("relay_outbox")  # once the lock is free it runs
    assert kafka_relay.unpublished() == []
    assert on_the_topic() == 2


@pytest.mark.django_db(transaction=True)
def test_the_relay_task_does_nothing_while_another_relay_holds_the_lock_and_relays_once_it_is_free(
    kafka_relay, redis_client
):
    follower = services().relay_lock(UNUSED_TRANSPORT)
    with holding(follower):  # as a running `relay_outbox --follow` holds it
        tasks.relay_outbox_task()
        assert len(kafka_relay.unpublished()) == 2
        assert on_the_topic() == 0
    tasks.relay_outbox_task()
    assert kafka_relay.unpublished() == []
    assert on_the_topic() == 2
    assert redis_client.get(follower.name) is None  # the task let go of the lock
