"""The event store's interface: what every backend promises.

A stream is one account's events, versioned 1, 2, 3, ...; the store also keeps
one global order (`position`) over all streams, for rebuilds and publishing.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID


class ConcurrencyConflict(Exception):
    """Another writer appended to the stream since it was read."""

    code = "concurrency_conflict"

    def __init__(self, stream_id: str, expected_version: int):
        self.stream_id = stream_id
        self.expected_version = expected_version
        super().__init__(
            f"Stream {stream_id} is no longer at version {expected_version}: another change to it was stored first"
        )


@dataclass(frozen=True)
class NewEvent:
    """An event on its way in: the store gives it its version and position."""

    event_id: UUID
    event_type: str
    data: dict
    occurred_at: datetime
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent:
    event_id: UUID
    stream_id: str
    version: int
    event_type: str
    data: dict
    occurred_at: datetime
    metadata: dict
    position: int | None = None  # None only where a backend cannot say at append time


class EventStore(abc.ABC):
    @abc.abstractmethod
    def append(self, stream_id: str, expected_version: int, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """Store `events` as versions expected_version+1, +2, ... all or nothing.

        Raises ConcurrencyConflict if the stream is not at `expected_version`.
        """

    @abc.abstractmethod
    def load_stream(self, stream_id: str, after_version: int = 0, *, limit: int | None = None) -> list[StoredEvent]:
        """The stream's events with version > after_version, in version order; the first `limit` of them if given.

        A page of a long stream is a bounded read: the store fetches at most `limit` events.
        """

    @abc.abstractmethod
    def stream_version(self, stream_id: str) -> int:
        """The stream's latest version (= how many events it holds: versions run 1, 2, 3, ...); 0 if it has none."""

    @abc.abstractmethod
    def read_all(self, after_position: int = 0, batch_size: int = 1000) -> Iterator[StoredEvent]:
        """Every event with position > after_position, in global order."""

    @abc.abstractmethod
    def count_events(self) -> int:
        """How many events the store holds, all streams together."""

    # The outbox: every appended event is also recorded as "to publish" in the
    # same atomic write, so publication can lag but never lose an event.
    @abc.abstractmethod
    def unpublished(self, limit: int = 500) -> list[StoredEvent]:
        """Stored events not yet marked published, oldest first (global order)."""

    @abc.abstractmethod
    def mark_published(self, event_ids: Sequence[UUID]) -> None:
        """Take these events out of the outbox; unknown ids are ignored."""
