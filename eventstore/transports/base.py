"""Event-bus transports: how stored events travel from the relay to consumers.

One topic for all account events, keyed by account id, so each account's
events stay in order (partitioning by key). Consumers are members of a group;
each member sees its share of the partitions and commits how far it got.
"""

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from eventstore.store import StoredEvent


class TransportUnavailable(Exception):
    """The broker could not be reached or did not acknowledge in time."""


@dataclass(frozen=True)
class Delivery:
    """One received message: the decoded event, or why it could not be decoded."""

    key: str | None
    raw: bytes
    partition: int
    offset: int
    event: StoredEvent | None = None
    problem: str | None = None


class EventSubscription(abc.ABC):
    """One member of a consumer group, reading the topic."""

    @abc.abstractmethod
    def poll(self, max_records: int = 500, timeout_ms: int = 1000) -> list[Delivery]:
        """The next messages of this member's partitions, in order within each."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Record everything returned by poll() so far as done (at-least-once:
        call it only after the effects of those messages are durably stored)."""

    @abc.abstractmethod
    def rewind(self) -> None:
        """Go back to the last commit: what poll() returned since then comes again (call it
        when those messages could not be applied; this member keeps its partitions)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Leave the group; uncommitted messages go to the next member."""


class EventTransport(abc.ABC):
    @abc.abstractmethod
    def send(self, events: Sequence[StoredEvent]) -> None:
        """Deliver durably, in order per account; TransportUnavailable if not all were acknowledged."""

    @abc.abstractmethod
    def subscribe(self, group_id: str, *, member_id: str | None = None) -> EventSubscription:
        """Join consumer group `group_id` (member_id: a stable identity for static membership)."""

    def longest_send_seconds(self) -> float:
        """How long one send() can take at the most, connecting included, before it returns or raises.

        The relay's lock must outlast it (bootstrap.full_stack.relay_lock_for): a relay that
        confirmed its lock before a batch then still holds it when that batch has gone out.
        """
        return 0.0

    def close(self) -> None:  # noqa: B027 - a default: a transport with no connections has nothing to release
        """Release connections."""
