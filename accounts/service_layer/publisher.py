"""Where stored events go next. The composition root picks the implementation."""

import abc
from collections.abc import Sequence

from eventstore.store import StoredEvent


class EventPublisher(abc.ABC):
    @abc.abstractmethod
    def publish(self, events: Sequence[StoredEvent]) -> None:
        """Hand over events that are already durably stored."""
