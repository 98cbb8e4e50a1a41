"""An in-memory event store: for unit tests and as the simplest reference backend."""

import copy
import threading
from collections.abc import Iterator, Sequence

from eventstore.snapshots import Snapshot, SnapshotStore
from eventstore.store import ConcurrencyConflict, EventStore, NewEvent, StoredEvent


class InMemoryEventStore(EventStore):
    def __init__(self):
        self._lock = threading.Lock()
        self._streams: dict[str, list[StoredEvent]] = {}
        self._all: list[StoredEvent] = []
        self._event_ids: set = set()
        self._outbox: dict = {}  # event_id -> StoredEvent, insertion (= global) order

    def append(self, stream_id, expected_version, events: Sequence[NewEvent]):
        with self._lock:
            stream = self._streams.get(stream_id, [])
            if len(stream) != expected_version:
                raise ConcurrencyConflict(stream_id, expected_version)
            if any(e.event_id in self._event_ids for e in events) or len({e.event_id for e in events}) != len(events):
                raise ConcurrencyConflict(stream_id, expected_version)
            stored = [
                StoredEvent(
                    event_id=e.event_id,
                    stream_id=stream_id,
                    version=expected_version + i,
                    event_type=e.event_type,
                    data=dict(e.data),
                    occurred_at=e.occurred_at,
                    metadata=dict(e.metadata),
                    position=len(self._all) + i,
                )
                for i, e in enumerate(events, start=1)
            ]
            self._streams[stream_id] = stream + stored
            self._all.extend(stored)
            self._event_ids.update(e.event_id for e in events)
            self._outbox.update((e.event_id, e) for e in stored)
            return stored

    def load_stream(self, stream_id, after_version=0, *, limit=None):
        # Versions run 1, 2, 3, ...: version v sits at index v - 1.
        start = max(after_version, 0)
        with self._lock:
            stream = self._streams.get(stream_id, [])
            return stream[start:] if limit is None else stream[start : start + limit]

    def stream_version(self, stream_id):
        with self._lock:
            return len(self._streams.get(stream_id, []))

    def read_all(self, after_position=0, batch_size=1000) -> Iterator[StoredEvent]:
        with self._lock:
            snapshot = list(self._all[after_position:])
        yield from snapshot

    def count_events(self):
        return len(self._all)

    def unpublished(self, limit=500):
        with self._lock:
            return list(self._outbox.values())[:limit]

    def mark_published(self, event_ids):
        with self._lock:
            for event_id in event_ids:
                self._outbox.pop(event_id, None)


class InMemorySnapshotStore(SnapshotStore):
    def __init__(self):
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}

    def get(self, stream_id):
        with self._lock:
            stored = self._snapshots.get(stream_id)
        # A copy, as a database hands out: a caller that changes what it loaded must not change the store.
        return None if stored is None else _copy(stored)

    def save(self, snapshot):
        # Stored as given: a snapshot is frozen, but its state is a dict, so copy it.
        snapshot = _copy(snapshot)
        with self._lock:
            stored = self._snapshots.get(snapshot.stream_id)
            if stored is None or stored.version <= snapshot.version:
                self._snapshots[snapshot.stream_id] = snapshot

    def delete(self, stream_id):
        with self._lock:
            self._snapshots.pop(stream_id, None)


def _copy(snapshot: Snapshot) -> Snapshot:
    return Snapshot(snapshot.stream_id, snapshot.version, snapshot.schema, copy.deepcopy(snapshot.state))
