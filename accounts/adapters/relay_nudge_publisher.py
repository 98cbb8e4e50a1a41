"""The publisher: once a command has committed, wake the relay (eventstore.relay) that sends its events on."""

import logging
from collections.abc import Callable, Sequence

from django.db import transaction

from accounts.service_layer.publisher import EventPublisher
from eventstore.store import StoredEvent

logger = logging.getLogger(__name__)


class RelayNudgePublisher(EventPublisher):
    """Both stacks: the relay publishes from the outbox; this only wakes it at once.

    The nudge is sent once the command has committed. On the full stack it is
    a Redis message to the relay process; if it cannot be sent (Redis down),
    nothing is lost: the relay also looks at the outbox every second by
    itself. On the embedded stack it runs the relay and the consumer in this
    thread (projections.in_process_path), which logs its own failures.
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
