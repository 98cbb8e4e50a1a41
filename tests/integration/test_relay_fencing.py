"""Two relays, real Redis lock and real Kafka-protocol broker: the one whose lock is taken from it mid-drain
stops before its next batch, so the topic never holds an account's older event after a newer one.

The takeover is staged at the worst moment for an unfenced relay: its lock runs out (as when Redis was
out of its reach for longer than the lock's timeout) between two of its batches, a second relay takes the
lock and reads the outbox, and only sends once the first relay has finished whatever it still does. A
relay that kept sending after losing its lock would have sent that batch, and the ones after it, before
the second relay's copy of it lands: older versions after newer ones.
"""

import threading
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection

from entrypoints.wiring import services
from eventstore.backends.django_orm import DjangoEventStore
from eventstore.relay import RelayLockLost, holding, relay_outbox
from eventstore.store import NewEvent
from eventstore.transports.kafka import KafkaTransport
from tests.contract.event_transport_contract import group, receive
from tests.integration.test_relay_lock import HANG_SECONDS, redis_client, wait_until  # noqa: F401  (a fixture)
from tests.servers.kafka import kafka_broker  # noqa: F401  (the session's broker, a pytest fixture)

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNTS, EVENTS_EACH, BATCH = 3, 40, 10  # 12 batches of 10, each with events of every account
TAKEN_AFTER_BATCHES = 3


class FirstRelaysOutbox:
    """The event store as the first relay sees it; after its third batch is marked, its lock is taken over."""

    def __init__(self, store: DjangoEventStore, take_over):
        self.store, self.take_over, self.marked = store, take_over, 0

    def unpublished(self, limit=500):
        return self.store.unpublished(limit=limit)

    def mark_published(self, event_ids):
        self.store.mark_published(event_ids)
        self.marked += 1
        if self.marked == TAKEN_AFTER_BATCHES:
            self.take_over()


class SecondRelaysOutbox:
    """The event store as the second relay sees it: its first read waits until the first relay is done."""

    def __init__(self, store: DjangoEventStore, first_relay_done: threading.Event):
        self.store, self.first_relay_done = store, first_relay_done
        self.has_read = threading.Event()

    def unpublished(self, limit=500):
        batch = self.store.unpublished(limit=limit)
        if not self.has_read.is_set():
            self.has_read.set()
            self.first_relay_done.wait(HANG_SECONDS)
        return batch

    def mark_published(self, event_ids):
        self.store.mark_published(event_ids)


def store_interleaved_events(store: DjangoEventStore) -> list[str]:
    accounts = [str(uuid.uuid4()) for _ in range(ACCOUNTS)]
    now = datetime.now(UTC)
    for version in range(EVENTS_EACH):
        for account in accounts:
            store.append(account, version, [NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, now, {})])
    return accounts


def test_a_relay_whose_lock_is_taken_mid_drain_stops_and_the_topic_never_holds_an_older_event_after_a_newer_one(
    settings,
    redis_client,  # noqa: F811 (fixture)
    kafka_broker,  # noqa: F811
):
    store = DjangoEventStore()
    accounts = store_interleaved_events(store)
    topic = settings.TECHBANK_KAFKA_TOPIC
    # Two producers, as two relay processes have.
    first_transport, second_transport = KafkaTransport(kafka_broker, topic), KafkaTransport(kafka_broker, topic)
    first_transport.ensure_topic()
    first_lock, second_lock = services().relay_lock(first_transport), services().relay_lock(second_transport)
    first_done = threading.Event()
    second_outbox = SecondRelaysOutbox(store, first_done)
    second_relay: dict = {}

    def run_second_relay():
        try:
            with holding(second_lock):
                second_relay["sent"] = relay_outbox(
                    event_store=second_outbox, transport=second_transport, lock=second_lock, batch_size=BATCH
                )
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            second_relay["error"] = error
        finally:
            connection.close()

    second = threading.Thread(target=run_second_relay)

    def take_over():
        redis_client.pexpire(first_lock.name, 1)  # the first relay's lock runs out
        wait_until(lambda: not redis_client.exists(first_lock.name), "the lock never ran out")
        second.start()
        wait_until(second_outbox.has_read.is_set, "the second relay never read the outbox")

    first_relay: dict = {}
    try:
        with holding(first_lock):
            first_relay["sent"] = relay_outbox(
                event_store=FirstRelaysOutbox(store, take_over),
                transport=first_transport,
                lock=first_lock,
                batch_size=BATCH,
            )
    except RelayLockLost as lost:
        first_relay["stopped"] = lost
    finally:
        first_done.set()
        if second.ident is not None:
            second.join(HANG_SECONDS)
        first_transport.close()
        second_transport.close()
    assert not second.is_alive() and "error" not in second_relay, second_relay.get("error")

    member = KafkaTransport(kafka_broker, topic).subscribe(group("fencing-check"))
    try:
        on_topic = receive(member, ACCOUNTS * EVENTS_EACH, quiet_seconds=1.0)
    finally:
        member.close()
    for account in accounts:
        versions = [d.event.version for d in on_topic if d.event.stream_id == account]
        assert versions == list(range(1, EVENTS_EACH + 1)), f"account {account}: {versions}"
    assert "stopped" in first_relay, f"the first relay went on without its lock: {first_relay}"
    assert second_relay["sent"] == (ACCOUNTS * EVENTS_EACH) - TAKEN_AFTER_BATCHES * BATCH  # the rest, once
    assert store.unpublished() == []
