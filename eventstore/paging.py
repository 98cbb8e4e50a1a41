"""One stream as a sequence that reads only what is asked for, so a paginator's page is one bounded read."""

from collections.abc import Sequence

from eventstore.store import EventStore


class StreamEvents(Sequence):
    """A stream's events by position (index 0 is version 1), read from the store a slice at a time.

    Its length is the stream's version, asked once: an event appended while a
    page is read shows on a later page, never shifts this one.
    """

    def __init__(self, store: EventStore, stream_id: str):
        self._store = store
        self._stream_id = stream_id
        self._length: int | None = None

    def __len__(self) -> int:
        if self._length is None:
            self._length = self._store.stream_version(self._stream_id)
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("a stream is read in version order, one step at a time")
            if stop <= start:
                return []
            return self._store.load_stream(self._stream_id, after_version=start, limit=stop - start)
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(index)
        [event] = self._store.load_stream(self._stream_id, after_version=position, limit=1)
        return event

    def __iter__(self):
        # Sequence's own iteration would read one event per query.
        return iter(self[:])
