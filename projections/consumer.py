"""The projection consumer: topic -> read model, at least once, applied exactly once in effect."""

import logging
from dataclasses import dataclass

from django.conf import settings

from eventstore.store import EventStore
from eventstore.transports.base import EventSubscription
from projections.models import DeadLetterSource
from projections.projection import project_deliveries

logger = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    received: int = 0
    applied: int = 0
    undecodable: int = 0
    dead_lettered: int = 0  # set aside in the dead-letter table (the undecodable ones included)


def consume_batch(
    *,
    subscription: EventSubscription,
    event_store: EventStore,
    max_records: int | None = None,
    timeout_ms: int = 1000,
    source: str = DeadLetterSource.KAFKA,
) -> BatchOutcome:
    """Poll one batch (settings.TECHBANK_PROJECTION_BATCH messages at most), apply it, and only then commit the offsets.

    project_deliveries applies the batch in one database transaction (an
    account with an event that cannot be applied in one of its own) and skips
    versions already applied, so a batch redelivered after a crash (before the
    commit below) changes nothing the second time.
    A message that cannot be applied (poison) is stored in the dead-letter
    table before the commit, and the line moves on; an infrastructure error
    (the read database down) propagates, and the batch is not committed: the
    subscription goes back to the last commit, so the next poll returns it again.
    Dead letters say they came from `source` (the Kafka topic, or the embedded stack's in-process one).
    """
    # A batch is one read-model transaction, whose cost (locking the summaries, two writes,
    # the commit) its events share.
    max_records = max_records or settings.TECHBANK_PROJECTION_BATCH
    deliveries = subscription.poll(max_records=max_records, timeout_ms=timeout_ms)
    outcome = BatchOutcome(received=len(deliveries))
    if not deliveries:
        return outcome
    try:
        projected = project_deliveries(deliveries=deliveries, event_store=event_store, source=source)
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
