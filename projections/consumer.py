"""The projection consumer: topic -> read model, at least once, applied exactly once in effect."""
import logging
from dataclasses import dataclass

from eventstore.store import EventStore
from eventstore.transports.base import EventSubscription
from projections.services import project_deliveries

logger = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    received: int = 0
    applied: int = 0
    undecodable: int = 0
    dead_lettered: int = 0  # set aside in the dead-letter table (the undecodable ones included)


def consume_batch(
    *, subscription: EventSubscription, event_store: EventStore, max_records: int = 500, timeout_ms: int = 1000
) -> BatchOutcome:
    """Poll one batch, apply it, and only then commit the offsets.

    project_deliveries commits each account's changes in its own database
    transaction and skips versions already applied, so a batch redelivered
    after a crash (before the commit below) changes nothing the second time.
    A message that cannot be applied (poison) is stored in the dead-letter
    table before the commit, and the line moves on; an infrastructure error
    (the read database down) propagates, and the batch is not committed: the
    subscription goes back to the last commit, so the next poll returns it again.
    """
    deliveries = subscription.poll(max_records=max_records, timeout_ms=timeout_ms)
    outcome = BatchOutcome(received=len(deliveries))
    if not deliveries:
        return outcome
    try:
        projected = project_deliveries(deliveries=deliveries, event_store=event_store)
    except Exception:
        # Not applied, so not to be committed, and this member has already read past it:
        # go back to the last commit, or the next commit would skip it.
        subscription.rewind()
        raise
    outcome.applied = projected.applied
    outcome.undecodable = projected.undecodable
    outcome.dead_lettered = projected.dead_lettered
    subscription.commit()
    if outcome.dead_lettered:
        logger.warning(
            "batch of %d: applied %d, dead-lettered %d (%d undecodable); see Dead letters in the admin",
            outcome.received,
            outcome.applied,
            outcome.dead_lettered,
            outcome.undecodable,
        )
    return outcome
