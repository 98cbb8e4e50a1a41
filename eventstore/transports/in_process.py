"""The embedded stack's transport: the relay hands events to the projection consumer in this process.

It behaves as the in-memory topic the unit tests use (partitions, groups,
commits, rewinds: the transport contract), but it is made to run for as long
as the process does, in bounded memory. A message every group has committed
is dropped once its partition holds `retention` newer messages (as a broker's
retention drops old messages: a group that joins later reads what is kept).
And it holds at most `capacity` messages that some group has not committed:
a send beyond that is refused whole (TransportUnavailable), as a broker that
is down refuses it, and the events wait in the outbox. It is thread-safe (one
lock guards the topic).

Nothing here outlives the process: the outbox is the durable record, and
the embedded stack acknowledges a send only once its consumer has applied it
(projections.in_process_path).
"""

from collections.abc import Sequence

from eventstore.store import StoredEvent
from eventstore.transports.base import Delivery, TransportUnavailable
from eventstore.transports.memory import InMemoryTransport

# Messages not yet committed by every group. The embedded stack's consumer applies each relay batch
# (500 events at most) before the next is sent.
DEFAULT_CAPACITY = 10_000
# Committed messages kept per partition (a few hundred kilobytes).
DEFAULT_RETENTION = 1_000


class InProcessTransport(InMemoryTransport):
    def __init__(self, partitions: int = 1, *, capacity: int = DEFAULT_CAPACITY, retention: int = DEFAULT_RETENTION):
        super().__init__(partitions=partitions)
        if capacity < 1 or retention < 0:
            raise ValueError("the topic must take at least one message, and keep a number of them that is not negative")
        self.capacity = capacity
        self.retention = retention

    def send(self, events: Sequence[StoredEvent]) -> None:
        with self._changed:
            if self.uncommitted() + len(events) > self.capacity:
                raise TransportUnavailable(
                    f"the in-process topic is full ({self.uncommitted()} of {self.capacity} messages not yet "
                    "committed by every group); the events wait in the outbox"
                )
            super().send(events)
            self._drop_what_is_done_with()

    def held(self) -> int:
        """How many messages the topic holds (those not yet committed by every group, and those retained)."""
        with self._changed:
            return sum(len(log.messages) for log in self._partitions)

    def uncommitted(self) -> int:
        """How many messages some group has not committed yet."""
        with self._changed:
            return sum(
                log.end - max(log.first, self._committed_by_all(partition))
                for partition, log in enumerate(self._partitions)
            )

    def _committed(self) -> None:
        self._drop_what_is_done_with()

    def _kept_beside_its_bytes(self, event: StoredEvent) -> StoredEvent | None:
        return event

    def _delivery(
        self, key: bytes | None, value: bytes, sent: StoredEvent | None, partition: int, offset: int
    ) -> Delivery:
        """The message with the event that was sent, which decoding its bytes would only make again.

        The bytes are still the envelope (a dead letter keeps them, for a retry); an event sent
        from this process is a StoredEvent already, so decoding it would cost a JSON parse for nothing.
        """
        if sent is None:  # put on the topic as bytes only (send_raw)
            return super()._delivery(key, value, sent, partition, offset)
        text_key = key.decode("utf-8", errors="replace") if key is not None else None
        return Delivery(text_key, value, partition, offset, event=sent)

    def _drop_what_is_done_with(self) -> None:
        for partition, log in enumerate(self._partitions):
            log.drop_before(min(self._committed_by_all(partition), log.end - self.retention))

    def _committed_by_all(self, partition: int) -> int:
        """The offset up to which every group has committed `partition` (with no group: all of it)."""
        if not self._groups:
            return self._partitions[partition].end
        return min(group.committed.get(partition, 0) for group in self._groups.values())
