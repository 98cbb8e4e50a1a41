"""An EventStore that hands every call to another one: tests subclass it to watch one method."""

from eventstore.store import EventStore


class DelegatingEventStore(EventStore):
    def __init__(self, inner: EventStore):
        self.inner = inner

    def append(self, stream_id, expected_version, events):
        return self.inner.append(stream_id, expected_version, events)

    def load_stream(self, stream_id, after_version=0, *, limit=None):
        return self.inner.load_stream(stream_id, after_version, limit=limit)

    def stream_version(self, stream_id):
        return self.inner.stream_version(stream_id)

    def read_all(self, after_position=0, batch_size=1000):
        return self.inner.read_all(after_position, batch_size)

    def count_events(self):
        return self.inner.count_events()

    def unpublished(self, limit=500):
        return self.inner.unpublished(limit)

    def mark_published(self, event_ids):
        self.inner.mark_published(event_ids)
