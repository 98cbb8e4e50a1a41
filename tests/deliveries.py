"""Events as a consumer receives them: for tests that project without a transport in between."""

from collections.abc import Sequence

from eventstore.store import StoredEvent
from eventstore.transports import envelope
from eventstore.transports.base import Delivery
from eventstore.transports.memory import delivery_of


def deliveries_of(events: Sequence[StoredEvent], *, partition: int = 0) -> list[Delivery]:
    """Each event in its envelope, at consecutive offsets of one partition, decoded as a transport would."""
    return [delivery_of(*envelope.encode(event), partition, offset) for offset, event in enumerate(events)]
