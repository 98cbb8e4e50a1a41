"""The projection consumer: topic -> read model, at least once, applied exactly once in effect."""
import logging
from dataclasses import dataclass

from eventstore.store import EventStore
from eventstore.transports.base import EventSubscription
from projections.services import project_events

logger = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    received: int = 0
    applied: int = 0
    undecodable: int = 0


def consume_batch(
    *, subscription: EventSubscription, event_store: EventStore, max_records: int = 500, timeout_ms: int = 1000
) -> BatchOutcome:
    """Poll one batch, apply it, and only then commit the offsets.

    project_events commits each account's changes in its own database
    transaction and skips versions already applied, so a batch redelivered
    after a crash (before the commit below) changes nothing the second time.
    """
    deliveries = subscription.poll(max_records=max_records, timeout_ms=timeout_ms)
    outcome = BatchOutcome(received=len(deliveries))
    if not deliveries:
        return outcome
    events = []
    for delivery in deliveries:
        if delivery.event is None:
            outcome.undecodable += 1
            logger.error(
                "skipping undecodable message at partition %s offset %s: %s",
                delivery.partition,
                delivery.offset,
                delivery.problem,
            )
        else:
            events.append(delivery.event)
    outcome.applied = project_events(events=events, event_store=event_store)
    subscription.commit()
    return outcome
