"""The embedded stack's event path, run in the thread of the command that stored the events.

The same path as the full stack's: outbox -> relay (eventstore.relay) ->
transport -> consumer (projections.consumer) -> projection. Here the
transport is in this process (eventstore.transports.in_process) and nothing
runs in the background: once a command has committed, its publisher wakes
this path, which relays the outbox and consumes it before the request
returns, so the next query sees the command's effect.

One relay at a time (an in-process relay lock): a command's thread that finds
another relaying waits for it, then relays and consumes what is left, so it
never returns before its own events are projected.

Memory does not outlive the process, so a send to the in-process topic is
acknowledged (and the relay takes the events out of the outbox) only once the
consumer has applied them. If it cannot (the read database is down), the
events stay in the outbox for the next command; that failure is logged, not
raised: the command has happened. A poison event is set aside in the
dead-letter table, as on the Kafka path, and the line moves on.
"""

import logging
from collections.abc import Sequence

from eventstore.in_process_relay_lock import InProcessRelayLock, RelayLockNotOwned
from eventstore.relay import relay_outbox
from eventstore.store import EventStore, StoredEvent
from eventstore.transports.base import EventSubscription, EventTransport, TransportUnavailable
from eventstore.transports.in_process import InProcessTransport
from projections.consumer import consume_batch
from projections.models import DeadLetterSource

logger = logging.getLogger(__name__)

GROUP = "projections"


class InProcessEventPath:
    def __init__(
        self,
        *,
        event_store: EventStore,
        transport: InProcessTransport,
        relay_lock: InProcessRelayLock,
        batch_size: int = 500,
    ):
        self.event_store = event_store
        self.transport = transport
        self.relay_lock = relay_lock
        self.batch_size = batch_size
        # One member, used only by the thread that holds the relay lock.
        self.subscription: EventSubscription = transport.subscribe(GROUP)
        self._acknowledged_once_applied = _AcknowledgedOnceApplied(self)

    def relay_and_consume(self) -> None:
        """Relay the outbox and apply it to the read model, now, in this thread; never raises (it logs)."""
        lock = self.relay_lock.handle()
        try:
            lock.acquire(blocking=True)
            try:
                relay_outbox(
                    event_store=self.event_store,
                    transport=self._acknowledged_once_applied,
                    lock=lock,
                    batch_size=self.batch_size,
                )
            finally:
                lock.release()
        except RelayLockNotOwned as exc:  # held longer than its timeout: the next relay took over
            logger.warning("%s; the relay that took over sends the rest", exc)
        except Exception:
            logger.exception("the outbox could not be relayed and projected; it waits for the next command")

    def consume_all(self) -> int:
        """Apply what the in-process topic holds until its consumer has committed it all; returns how many."""
        received = 0
        while self.transport.uncommitted():  # asked of the topic: no empty poll to find out
            batch = consume_batch(
                subscription=self.subscription,
                event_store=self.event_store,
                timeout_ms=0,
                source=DeadLetterSource.IN_PROCESS,
            ).received
            if not batch:  # another group's (none here): nothing of ours to wait for
                break
            received += batch
        return received


class _AcknowledgedOnceApplied(EventTransport):
    """The relay's view of the in-process topic: a send returns once the consumer has applied it.

    What an earlier send left (its consumer failed) is applied first: the topic holds one batch at most.
    """

    def __init__(self, path: InProcessEventPath):
        self.path = path

    def send(self, events: Sequence[StoredEvent]) -> None:
        try:
            self.path.consume_all()
            self.path.transport.send(events)
            self.path.consume_all()
        except TransportUnavailable:
            raise
        except Exception as exc:
            raise TransportUnavailable(f"the read model could not apply the events ({exc!r})") from exc

    def subscribe(self, group_id: str, *, member_id: str | None = None) -> EventSubscription:
        return self.path.transport.subscribe(group_id, member_id=member_id)
