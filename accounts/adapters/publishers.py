"""EventPublisher implementations."""

import logging
from collections.abc import Callable, Sequence

from django.db import transaction

from accounts.service_layer.publisher import EventPublisher
from eventstore.store import EventStore, StoredEvent

logger = logging.getLogger(__name__)


class InProcessPublisher(EventPublisher):
    """The embedded default: projects the store's outbox in the request's thread.

    It runs after the append has committed: first the events it was handed,
    then whatever else is in the outbox (an earlier failure's leftovers).
    Projecting its own events first keeps concurrent requests from each
    projecting the others' events too. An event that cannot be applied is set aside by
    the projection (the dead-letter table), so it does not hold the others up.
    Any other projection failure (the read database down) is logged, not
    raised: the command has already happened, and its events stay in the
    outbox until the next command (or a rebuild) brings the read model up to date.
    """

    def __init__(self, event_store: EventStore, project: Callable[[Sequence[StoredEvent]], object]):
        self.event_store = event_store
        self.project = project

    def publish(self, events: Sequence[StoredEvent]) -> None:
        if events:
            transaction.on_commit(lambda: self._project_then_drain(events))

    def _project_then_drain(self, events: Sequence[StoredEvent]) -> None:
        try:
            self.project(events)
            self.event_store.mark_published([e.event_id for e in events])
        except Exception:
            logger.exception("projecting the command's events failed; they stay in the outbox")
            return
        self.drain_outbox()

    def drain_outbox(self, batch_size: int = 500) -> int:
        drained = 0
        try:
            while batch := self.event_store.unpublished(limit=batch_size):
                self.project(batch)
                self.event_store.mark_published([e.event_id for e in batch])
                drained += len(batch)
        except Exception:
            logger.exception("projecting the outbox failed; the read model lags until the next command")
        return drained


class RelayNudgePublisher(EventPublisher):
    """The Kafka stack: the relay publishes from the outbox; this only wakes it at once.

    The nudge is sent once the command has committed. If it cannot be sent
    (Redis down), nothing is lost: the relay also looks at the outbox every
    second by itself.
    """

    def __init__(self, nudge: Callable[[], object]):
        self.nudge = nudge

    def publish(self, events: Sequence[StoredEvent]) -> None:
        if events:
            transaction.on_commit(self._nudge)

    def _nudge(self) -> None:
        try:
            self.nudge()
        except Exception as exc:  # noqa: BLE001 - the request must not fail for a late nudge
            logger.warning("could not wake the relay (%s); it publishes within a second by itself", exc)
