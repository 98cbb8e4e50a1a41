"""An in-memory event bus: one topic, its partitions and consumer groups, for unit tests.

It keeps the encoded bytes, as a broker would, so whatever passes through it
has also been through the JSON envelope. Semantics follow Kafka where tests can
notice them: a key always lands on the same partition, each partition of a
group belongs to one member at a time, and a group resumes from its last
commit. Rebalancing is simpler than Kafka's: it happens at once when a member
joins or leaves, and a member keeps its position on the partitions it keeps.
There are no session timeouts: a member is in its group until it closes (a
static member too, which in Kafka would wait for its session to time out) or
another subscribes under its member_id.
"""

from __future__ import annotations

import itertools
import threading
import time
import zlib
from collections.abc import Sequence

from eventstore.store import StoredEvent
from eventstore.transports import envelope
from eventstore.transports.base import Delivery, EventSubscription, EventTransport, TransportUnavailable


class SubscriptionClosed(RuntimeError):
    """The subscription was closed and then used."""


class InMemoryTransport(EventTransport):
    def __init__(self, partitions: int = 3):
        if partitions < 1:
            raise ValueError("a topic needs at least one partition")
        self._changed = threading.Condition()  # guards everything below; notified on every send
        self._partitions: list[_PartitionLog] = [_PartitionLog() for _ in range(partitions)]
        self._groups: dict[str, _Group] = {}
        self._keyless = itertools.count()

    def send(self, events: Sequence[StoredEvent]) -> None:
        with self._changed:
            for event in events:
                self._append(*envelope.encode(event), sent=self._kept_beside_its_bytes(event))
            self._changed.notify_all()

    def send_raw(self, key: bytes | None, value: bytes) -> None:
        """For tests: put bytes on the topic that need not be an envelope."""
        with self._changed:
            self._append(key, value)
            self._changed.notify_all()

    def subscribe(self, group_id: str, *, member_id: str | None = None) -> EventSubscription:
        with self._changed:
            group = self._groups.setdefault(group_id, _Group(len(self._partitions)))
            subscription = InMemorySubscription(self, group, member_id)
            group.join(subscription)
            return subscription

    def partition_for(self, key: bytes | None) -> int:
        # crc32, unlike hash(), is the same in every process; keyless messages are spread.
        count = len(self._partitions)
        return zlib.crc32(key) % count if key is not None else next(self._keyless) % count

    def _append(self, key: bytes | None, value: bytes, *, sent: StoredEvent | None = None) -> None:
        self._partitions[self.partition_for(key)].append((key, value, sent))

    def _kept_beside_its_bytes(self, event: StoredEvent) -> StoredEvent | None:
        """None: a receiver gets what it decodes from the bytes, as from a broker (the tests rely on that)."""
        return None

    def _delivery(
        self, key: bytes | None, value: bytes, sent: StoredEvent | None, partition: int, offset: int
    ) -> Delivery:
        return delivery_of(key, value, partition, offset)

    def _committed(self) -> None:
        """A group committed (called holding `_changed`); this topic keeps every message, so nothing to do."""


class _PartitionLog:
    """One partition's messages, at consecutive offsets from `first` (those before it were dropped, if any)."""

    def __init__(self):
        self.first = 0
        self.messages: list[tuple[bytes | None, bytes, StoredEvent | None]] = []  # key, value, the event sent

    @property
    def end(self) -> int:
        """The offset the next message gets."""
        return self.first + len(self.messages)

    def append(self, message: tuple[bytes | None, bytes, StoredEvent | None]) -> None:
        self.messages.append(message)

    def at(self, offset: int) -> tuple[bytes | None, bytes, StoredEvent | None]:
        return self.messages[offset - self.first]

    def drop_before(self, offset: int) -> None:
        dropped = min(offset, self.end) - self.first
        if dropped > 0:
            del self.messages[:dropped]
            self.first += dropped


class _Group:
    """One consumer group: its committed offsets and who owns which partition."""

    def __init__(self, partitions: int):
        self.partitions = partitions
        self.committed: dict[int, int] = {}
        self.members: list[InMemorySubscription] = []

    def join(self, member: InMemorySubscription) -> None:
        if member.member_id is not None:
            # Static membership: a new instance with the same id takes the old one's place,
            # and the old one is fenced off, as Kafka does.
            for old in [m for m in self.members if m.member_id == member.member_id]:
                old._replaced = True
                self.members.remove(old)
        self.members.append(member)
        self._rebalance()

    def leave(self, member: InMemorySubscription) -> None:
        if member in self.members:
            self.members.remove(member)
            self._rebalance()

    def _rebalance(self) -> None:
        owners = {p: self.members[p % len(self.members)] for p in range(self.partitions)} if self.members else {}
        for member in self.members:
            kept = {p: o for p, o in member.positions.items() if owners.get(p) is member}
            gained = {p: self.committed.get(p, 0) for p, o in owners.items() if o is member and p not in kept}
            member.positions = {**kept, **gained}
            member.uncommitted = {p: o for p, o in member.uncommitted.items() if p in kept}


class InMemorySubscription(EventSubscription):
    def __init__(self, transport: InMemoryTransport, group: _Group, member_id: str | None):
        self._transport = transport
        self._group = group
        self.member_id = member_id
        self.positions: dict[int, int] = {}  # partition -> next offset to read
        self.uncommitted: dict[int, int] = {}  # partition -> offset to commit
        self._closed = False
        self._replaced = False

    def poll(self, max_records: int = 500, timeout_ms: int = 1000) -> list[Delivery]:
        deadline = time.monotonic() + timeout_ms / 1000
        with self._transport._changed:
            while True:
                self._check_open()
                deliveries = self._take(max_records)
                remaining = deadline - time.monotonic()
                if deliveries or remaining <= 0:
                    return deliveries
                self._transport._changed.wait(remaining)

    def commit(self) -> None:
        with self._transport._changed:
            self._check_open()
            self._group.committed.update(self.uncommitted)
            self.uncommitted = {}
            self._transport._committed()

    def rewind(self) -> None:
        with self._transport._changed:
            self._check_open()
            self.positions = {p: self._group.committed.get(p, 0) for p in self.positions}
            self.uncommitted = {}

    def close(self) -> None:
        with self._transport._changed:
            if not self._closed:
                self._closed = True
                self._group.leave(self)
            self._transport._changed.notify_all()

    def _take(self, max_records: int) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for partition in sorted(self.positions):
            log = self._transport._partitions[partition]
            start = max(self.positions[partition], log.first)  # what was dropped cannot be read
            for offset in range(start, min(log.end, start + max_records - len(deliveries))):
                deliveries.append(self._transport._delivery(*log.at(offset), partition, offset))
            if len(deliveries) > 0 and deliveries[-1].partition == partition:
                self.positions[partition] = self.uncommitted[partition] = deliveries[-1].offset + 1
        return deliveries

    def _check_open(self) -> None:
        if self._closed:
            raise SubscriptionClosed("this subscription was closed")
        if self._replaced:
            raise TransportUnavailable(
                f"fenced: a newer member with member_id {self.member_id!r} took this one's place"
            )


def delivery_of(key: bytes | None, value: bytes, partition: int, offset: int) -> Delivery:
    """A Delivery for one message: never raises, a bad message carries its problem instead."""
    text_key = key.decode("utf-8", errors="replace") if key is not None else None
    try:
        return Delivery(text_key, value, partition, offset, event=envelope.decode(value))
    except Exception as problem:  # noqa: BLE001 - whatever is wrong with one message must not stop the ones after it
        return Delivery(text_key, value, partition, offset, problem=str(problem) or repr(problem))
