"""EventPublisher implementations."""
import logging
from typing import Callable, Sequence

from django.db import transaction

from accounts.service_layer.publisher import EventPublisher
from eventstore.store import StoredEvent

logger = logging.getLogger(__name__)


class InProcessPublisher(EventPublisher):
    """The embedded default: hands stored events straight to the projector.

    Runs after the event store's transaction commits, so only what is stored
    is projected. A projection failure is logged, not raised: the command has
    already happened, and the next event of that account (or a rebuild)
    brings the read model up to date.
    """

    def __init__(self, project: Callable[[Sequence[StoredEvent]], object]):
        self.project = project

    def publish(self, events: Sequence[StoredEvent]) -> None:
        if events:
            transaction.on_commit(lambda: self._project(events))

    def _project(self, events: Sequence[StoredEvent]) -> None:
        try:
            self.project(events)
        except Exception:
            logger.exception("projection of %d event(s) failed; the read model lags", len(events))
