"""The relay: publishes what the store holds and has not yet published.

Publication never depends on the request that stored the events. If the
broker is down, the events wait in the outbox and go out, in order, once it is
back. An event may be sent twice (sent, then a crash before it is marked):
consumers are idempotent, so that is safe; losing one is not possible.
"""
import logging

from eventstore.store import EventStore
from eventstore.transports.base import EventTransport

logger = logging.getLogger(__name__)


def relay_outbox(*, event_store: EventStore, transport: EventTransport, batch_size: int = 500) -> int:
    """Send the outbox in global order until it is empty; returns how many were sent.

    Raises TransportUnavailable (with the unsent events still in the outbox)
    if the broker does not acknowledge.
    """
    sent = 0
    while batch := event_store.unpublished(limit=batch_size):
        transport.send(batch)
        event_store.mark_published([e.event_id for e in batch])
        sent += len(batch)
    if sent:
        logger.info("relayed %d event(s)", sent)
    return sent
