"""The Kafka event bus, through kafka-python (3.0.x).

One topic, keyed by account id; the producer waits for every replica
(acks="all") and keeps one request in flight per connection, so a retry cannot
overtake the message after it. Consumers commit by hand, after their effects
are stored, and read only committed transactions' messages.

Timeouts are short by default so that a broker that is down costs seconds, not
minutes; any kafka-python setting can be given as a keyword argument and goes
to every client (producer, consumer, admin) that knows it. The settings the
guarantees above rest on (acks, auto commit, isolation level, ...) cannot be
overridden.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, TopicAlreadyExistsError

from eventstore.store import StoredEvent
from eventstore.transports import envelope
from eventstore.transports.base import Delivery, EventSubscription, EventTransport, TransportUnavailable

log = logging.getLogger(__name__)

# kafka-python waits 30 s to 2 min by default before it reports a broker that is down.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "bootstrap_timeout_ms": 5_000,  # kafka-python 3 connects in the constructor; this bounds it
    "max_block_ms": 5_000,  # waiting for metadata or buffer space in send()
    "request_timeout_ms": 5_000,
    "delivery_timeout_ms": 15_000,  # retries included; send() waits this long at most
    "retries": 5,
}
CONSUMER_DEFAULTS: dict[str, Any] = {
    "bootstrap_timeout_ms": 5_000,
    # 6 s is the smallest session timeout a stock broker accepts (group.min.session.timeout.ms):
    # a member that vanished without leaving loses its partitions after that long.
    "session_timeout_ms": 6_000,
    "heartbeat_interval_ms": 1_000,
    "request_timeout_ms": 10_000,  # also bounds close(); joining the group waits longer by itself
}
ADMIN_DEFAULTS: dict[str, Any] = {
    "bootstrap_timeout_ms": 5_000,
    "request_timeout_ms": 10_000,
}
# How much longer than the producer's own delivery timeout send() waits before giving up.
SEND_GRACE_SECONDS = 2.0


class KafkaTransport(EventTransport):
    def __init__(self, bootstrap_servers: str, topic: str, partitions: int = 3, **client_options):
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.partitions = partitions
        self._client_options = client_options
        self._producer: KafkaProducer | None = None
        self._sending = threading.Lock()

    def ensure_topic(self) -> None:
        """Create the topic with `partitions` partitions unless it exists (then leave it as it is)."""
        try:
            admin = KafkaAdminClient(**self._config(KafkaAdminClient, ADMIN_DEFAULTS))
        except KafkaError as error:
            raise TransportUnavailable(f"cannot reach Kafka at {self.bootstrap_servers}: {error}") from error
        try:
            # replication_factor -1: the broker's default.replication.factor (Kafka >= 2.4).
            admin.create_topics(
                {self.topic: {"num_partitions": self.partitions, "replication_factor": -1}},
                wait_for_metadata=True,
            )
        except TopicAlreadyExistsError:
            pass
        except KafkaError as error:
            raise TransportUnavailable(f"cannot create topic {self.topic!r}: {error}") from error
        finally:
            admin.close()

    def send(self, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        with self._sending:
            producer = self._connected_producer()
            timeout = producer.config["delivery_timeout_ms"] / 1000 + SEND_GRACE_SECONDS
            try:
                futures = [
                    producer.send(self.topic, key=key, value=value) for key, value in map(envelope.encode, events)
                ]
                producer.flush(timeout=timeout)
                for future in futures:
                    future.get(timeout=timeout)
            except KafkaError as error:
                # A producer that failed may hold a broken connection or a fenced producer
                # id: start afresh next time. Whatever was not acknowledged is sent again by
                # the caller (the outbox), so nothing is lost, at worst duplicated.
                self._discard_producer()
                raise TransportUnavailable(
                    f"Kafka at {self.bootstrap_servers} did not acknowledge {len(events)} event(s) "
                    f"on {self.topic!r}: {error}"
                ) from error

    def longest_send_seconds(self) -> float:
        """Connecting (creating the topic, then the producer), waiting for metadata, then delivery with its grace."""
        producer = self._config(KafkaProducer, PRODUCER_DEFAULTS)
        admin = self._config(KafkaAdminClient, ADMIN_DEFAULTS)
        milliseconds = (
            admin["bootstrap_timeout_ms"]
            + admin.get("request_timeout_ms", KafkaAdminClient.DEFAULT_CONFIG["request_timeout_ms"])
            + producer["bootstrap_timeout_ms"]
            + producer["max_block_ms"]
            + producer["delivery_timeout_ms"]
        )
        return milliseconds / 1000 + SEND_GRACE_SECONDS

    def subscribe(self, group_id: str, *, member_id: str | None = None) -> EventSubscription:
        # A consumer that starts before the relay's first send would otherwise subscribe to a topic
        # that does not exist yet (or that a lenient broker creates with its own partition count).
        self.ensure_topic()
        return KafkaSubscription(self, group_id, member_id)

    def close(self) -> None:
        with self._sending:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None

    def _connected_producer(self) -> KafkaProducer:
        if self._producer is None:
            config = self._config(KafkaProducer, PRODUCER_DEFAULTS)
            config.update(acks="all", max_in_flight_requests_per_connection=1, allow_auto_create_topics=False)
            # The topic is ours to create, with its partition count (brokers' auto-creation is off).
            self.ensure_topic()
            try:
                self._producer = KafkaProducer(**config)
            except KafkaError as error:  # kafka-python 3 raises KafkaTimeoutError, 2.x NoBrokersAvailable
                raise TransportUnavailable(f"cannot reach Kafka at {self.bootstrap_servers}: {error}") from error
        return self._producer

    def _discard_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=0)
            except Exception:  # closing is best effort: the producer already failed
                log.warning("closing a failed Kafka producer failed", exc_info=True)
            self._producer = None

    def _config(self, client: Any, defaults: dict[str, Any]) -> dict[str, Any]:  # a kafka-python client class
        known = client.DEFAULT_CONFIG
        options = {k: v for k, v in self._client_options.items() if k in known}
        return {**defaults, **options, "bootstrap_servers": self.bootstrap_servers}


class KafkaSubscription(EventSubscription):
    """One KafkaConsumer in the group; use it from one thread, like the consumer itself."""

    def __init__(self, transport: KafkaTransport, group_id: str, member_id: str | None):
        config = transport._config(KafkaConsumer, CONSUMER_DEFAULTS)
        config.update(
            group_id=group_id,
            group_instance_id=member_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            allow_auto_create_topics=False,
        )
        self._bootstrap_servers = transport.bootstrap_servers
        self._close_timeout_ms = config["request_timeout_ms"]
        # Rebalance callbacks run on kafka-python's IO thread, hence the lock; it is never
        # held while the consumer runs, which may wait for those callbacks.
        self._lock = threading.Lock()
        self._uncommitted: dict[TopicPartition, int] = {}  # partition -> offset to commit
        try:
            self._consumer = KafkaConsumer(**config)
            self._consumer.subscribe([transport.topic], listener=_ForgetRevoked(self))
        except KafkaError as error:
            raise TransportUnavailable(f"cannot reach Kafka at {transport.bootstrap_servers}: {error}") from error
        self._closed = False

    def poll(self, max_records: int = 500, timeout_ms: int = 1000) -> list[Delivery]:
        try:
            batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as error:
            raise TransportUnavailable(f"polling Kafka at {self._bootstrap_servers} failed: {error}") from error
        deliveries = sorted(
            (delivery_of(r.key, r.value, r.partition, r.offset) for records in batches.values() for r in records),
            key=lambda d: (d.partition, d.offset),
        )
        with self._lock:
            for partition, records in batches.items():
                if records:
                    self._uncommitted[partition] = records[-1].offset + 1
        return deliveries

    def commit(self) -> None:
        """Commit what poll() returned; TransportUnavailable if the broker did not record it
        (after a rebalance, say): those messages will then be delivered again."""
        with self._lock:
            offsets = {p: OffsetAndMetadata(offset, "", -1) for p, offset in self._uncommitted.items()}
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except KafkaError as error:
            raise TransportUnavailable(f"Kafka did not record the commit: {error}") from error
        with self._lock:
            for partition, offset in offsets.items():
                if self._uncommitted.get(partition) == offset.offset:
                    del self._uncommitted[partition]

    def rewind(self) -> None:
        with self._lock:
            self._uncommitted.clear()
        try:
            for partition in self._consumer.assignment():
                committed = self._consumer.committed(partition, timeout_ms=self._close_timeout_ms)
                if committed is None:  # nothing committed yet: auto_offset_reset="earliest"
                    self._consumer.seek_to_beginning(partition)
                else:
                    self._consumer.seek(partition, committed)
        except KafkaError as error:
            raise TransportUnavailable(f"could not go back to the committed offsets: {error}") from error

    def _forget(self, partitions) -> None:
        with self._lock:
            for partition in partitions:
                self._uncommitted.pop(partition, None)

    def close(self) -> None:
        """Leave the group. A static member (member_id given) does not leave: as in Kafka, its
        partitions wait for it to come back under the same member_id, or for its session to time out."""
        if not self._closed:
            self._closed = True
            self._consumer.close(autocommit=False, timeout_ms=self._close_timeout_ms)


class _ForgetRevoked(ConsumerRebalanceListener):
    """Drop what was polled from partitions this member lost: committing it now could move
    the new owner's committed offset backwards."""

    def __init__(self, subscription: KafkaSubscription):
        self._subscription = subscription

    def on_partitions_revoked(self, revoked):
        self._subscription._forget(revoked)

    def on_partitions_assigned(self, assigned):
        pass

    def on_partitions_lost(self, lost):
        self.on_partitions_revoked(lost)


def delivery_of(key: bytes | None, value: bytes | None, partition: int, offset: int) -> Delivery:
    """A Delivery for one message: never raises, a bad message carries its problem instead."""
    text_key = key.decode("utf-8", errors="replace") if key is not None else None
    raw = value if value is not None else b""  # None: a tombstone
    try:
        return Delivery(text_key, raw, partition, offset, event=envelope.decode(raw))
    except Exception as problem:  # noqa: BLE001 - whatever is wrong with one message must not stop the ones after it
        return Delivery(text_key, raw, partition, offset, problem=str(problem) or repr(problem))
