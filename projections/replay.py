"""Replaying the event store in memory, for the rebuild and for verification.

Both fold every stored event, in the store's global order, through the live
projection's projectors, so a rebuilt or verified read model is what the live
projection makes of the same events.
"""

import queue
import threading
from collections.abc import Iterator
from itertools import islice
from typing import TypeVar
from uuid import UUID

from django.db import connections

from eventstore.store import EventStore, StoredEvent
from projections.models import AccountSummary
from projections.projection import EventNotApplicable, apply_one_event
from projections.projectors import LedgerRow

# How many events a replay (rebuild, verification) reads from the store and writes at a time.
REPLAY_BATCH_SIZE = 10_000


class Replay:
    """Every stored event, in the store's order, through the live projection's projectors, in memory.

    One summary per account (memory grows with accounts, not events). After an
    event that cannot be applied the account's version no longer advances, so
    its later events are skipped, as the live projection leaves them waiting.
    An event ahead of its account's next version (on a database server, a
    writer may commit an earlier position after a later one has been read)
    marks the account as gapped: fill_gaps() then reads it from the store.
    """

    def __init__(self):
        self.summaries: dict[str, AccountSummary] = {}  # by stream id
        self.poison: list[EventNotApplicable] = []
        self.poisoned: set[str] = set()
        self.gapped: set[str] = set()
        self.replayed = 0
        self.position = 0  # the store position of the last event read

    def batches(self, event_store: EventStore) -> Iterator[tuple[list[LedgerRow], int]]:
        """A batch of events at a time: the ledger rows of those applied, and how many were replayed."""
        events = event_store.read_all(batch_size=REPLAY_BATCH_SIZE)
        while batch := list(islice(events, REPLAY_BATCH_SIZE)):
            self.position = max(self.position, batch[-1].position or 0)
            yield self._apply(batch), len(batch)
            self.replayed += len(batch)

    def fill_gaps(self, event_store: EventStore) -> list[LedgerRow]:
        """The ledger rows of the gapped accounts' missing events, read from the store (in version order)."""
        entries = []
        for stream_id in sorted(self.gapped - self.poisoned):
            summary = self.summaries[stream_id]
            entries += self._apply(event_store.load_stream(stream_id, after_version=summary.version))
        self.gapped.clear()
        return entries

    def _apply(self, events: list[StoredEvent]) -> list[LedgerRow]:
        entries = []
        summaries = self.summaries
        for event in events:
            summary = summaries.get(event.stream_id)
            if summary is None:
                summary = summaries[event.stream_id] = AccountSummary(id=UUID(event.stream_id), version=0)
            if event.version == summary.version + 1:
                try:
                    entries.append(apply_one_event(summary, event))
                except EventNotApplicable as failure:
                    self.poison.append(failure)
                    self.poisoned.add(event.stream_id)
            elif event.version > summary.version + 1 and event.stream_id not in self.poisoned:
                self.gapped.add(event.stream_id)
        return entries

    def projected(self) -> list[AccountSummary]:
        """The summaries to write: not those whose opening cannot be applied."""
        return [summary for summary in self.summaries.values() if summary.version > 0]


_END = object()


T = TypeVar("T")


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced by a thread of their own up to `depth` items ahead of the caller.

    What the thread raises is raised here; if the caller stops early, the thread stops too.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def put(item) -> bool:
        while not stopped.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as error:  # noqa: BLE001 - handed to the reading thread, which raises it
            put((_END, error))
        finally:
            connections.close_all()  # this thread's own connections

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, error = ready.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stopped.set()
        producer.join()
