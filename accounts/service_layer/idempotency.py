"""Idempotency keys: a retried request has no second effect. The step in front of the command bus.

The first request under a key claims a record (unique per user and key) and,
when it is done, keeps its answer there; the same key with the same request
gets that answer again. While the first is still running, a retry waits for
it. If the process died mid-request, its claim lapses and a retry runs the
command again: the events carry the key, so the unit of work finds the
command's earlier effect in the account's stream and the handler does not
repeat it (accounts.service_layer.unit_of_work). The same key with a
different request is refused (IdempotencyKeyReuse). Answers that say "retry"
(a lost race, a key still in use, a server error) are not kept: the key is
freed, so a retry with it runs the request.

Where records are kept is a port (IdempotencyRecords); the HTTP entry point
translates requests and answers (entrypoints.drf.idempotency).
"""

import abc
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

# How long a request holds its key without renewing it; a retry may take over
# a claim whose lease lapsed (its process died). A live request renews it
# every third of LEASE, however long it runs.
LEASE = timedelta(seconds=30)
# How long a retry waits for the first request under its key to finish.
WAIT_SECONDS = 10.0


class IdempotencyKeyReuse(Exception):
    """The key was already used for a different request."""


class IdempotentRequestInProgress(Exception):
    """The first request under the key is still running (its lease is live)."""


@dataclass(frozen=True)
class Answer:
    """What a request was answered, as kept for its retries: JSON-able."""

    status: int
    body: object
    headers: dict[str, str]


@dataclass
class KeyRecord:
    """One request made under a key: its fingerprint, its lease while it runs, its answer once done."""

    record_id: object  # the storage's own id
    fingerprint: str
    locked_until: datetime
    answer: Answer | None = None  # None while in progress

    @property
    def done(self) -> bool:
        return self.answer is not None


class IdempotencyRecords(abc.ABC):
    """The storage port: one record per (owner, key), the owner being whatever the storage keys users by."""

    @abc.abstractmethod
    def claim(
        self, owner: object, key: str, fingerprint: str, *, now: datetime, lease_until: datetime
    ) -> KeyRecord | None:
        """A new in-progress record for this request, or None if the owner already has one under the key."""

    @abc.abstractmethod
    def get(self, owner: object, key: str) -> KeyRecord | None:
        """The owner's record under the key, or None (freed meanwhile)."""

    @abc.abstractmethod
    def refresh(self, record: KeyRecord) -> KeyRecord | None:
        """The record as stored now, or None if it was released."""

    @abc.abstractmethod
    def take_over_if_lapsed(self, record: KeyRecord, *, now: datetime, lease_until: datetime) -> bool:
        """Claim an in-progress record whose lease ran out before `now`; False if it is done or live."""

    @abc.abstractmethod
    def renew(self, record: KeyRecord, *, lease_until: datetime) -> None:
        """Extend the lease of an in-progress record; a storage hiccup is logged, not raised (the next round tries)."""

    @abc.abstractmethod
    def finish(self, record: KeyRecord, answer: Answer) -> None:
        """Keep the answer: the record is done."""

    @abc.abstractmethod
    def release(self, record: KeyRecord) -> None:
        """Forget the record: the next request under the key runs."""

    @abc.abstractmethod
    def forget_expired(self, owner: object, key: str, *, created_before: datetime) -> None:
        """Forget the owner's record under the key if it was made before `created_before`."""

    @abc.abstractmethod
    def purge(self, *, created_before: datetime) -> int:
        """Forget every record made before `created_before`; returns how many."""

    def release_thread_resources(self) -> None:  # noqa: B027 - most storages hold nothing per thread
        """Called at the end of a thread that used the records (the lease renewer)."""


T = TypeVar("T")


@dataclass(frozen=True)
class Replayed:
    """The first answer under the key, given again."""

    answer: Answer


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What running a request gave: the caller's own result, and the answer to keep (None: a 'retry' answer)."""

    result: T
    answer_to_keep: Answer | None


def utc_now() -> datetime:
    return datetime.now(UTC)


class IdempotentRequests:
    """Runs requests under idempotency keys; see the module's docstring."""

    def __init__(
        self,
        records: IdempotencyRecords,
        *,
        ttl: timedelta,
        lease: timedelta = LEASE,
        wait_seconds: float = WAIT_SECONDS,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.records = records
        self.ttl = ttl
        self.lease = lease
        self.wait_seconds = wait_seconds
        self.clock = clock

    def run(self, owner: object, key: str, fingerprint: str, request: Callable[[], Outcome[T]]) -> T | Replayed:
        """Run `request` once under the key, or give the first answer again (Replayed).

        Raises IdempotencyKeyReuse or IdempotentRequestInProgress instead of running it.
        """
        held = self._holding_the_key(owner, key, fingerprint)
        if isinstance(held, Replayed):
            return held
        try:
            with self._lease_renewed(held):
                outcome = request()
        except BaseException:
            self.records.release(held)  # a bug is not an answer: let a retry run again
            raise
        if outcome.answer_to_keep is None:
            self.records.release(held)  # "retry" is not a final answer: let the retry run again
        else:
            self.records.finish(held, outcome.answer_to_keep)
        return outcome.result

    def purge_expired(self) -> int:
        """Forget every key older than its time to live; returns how many."""
        return self.records.purge(created_before=self.clock() - self.ttl)

    def live_since(self) -> datetime:
        """Requests under the same key are the same request only this recently."""
        return self.clock() - self.ttl

    # -- holding the key -------------------------------------------------------
    def _claim(self, owner: object, key: str, fingerprint: str) -> tuple[KeyRecord | None, bool]:
        """(record, True) if this request now holds the key; (existing record or None if freed, False) if not."""
        now = self.clock()
        self.records.forget_expired(owner, key, created_before=now - self.ttl)
        claimed = self.records.claim(owner, key, fingerprint, now=now, lease_until=now + self.lease)
        if claimed is not None:
            return claimed, True
        return self.records.get(owner, key), False

    def _holding_the_key(self, owner: object, key: str, fingerprint: str) -> KeyRecord | Replayed:
        """Claims the key for this request, or answers it: the first answer again, or an error."""
        while True:
            record, claimed = self._claim(owner, key, fingerprint)
            if record is None:
                continue  # freed between the claim and the look: claim it
            if claimed:
                return record
            if record.fingerprint != fingerprint:
                raise IdempotencyKeyReuse()
            waited = self._wait_for(record)
            if waited is None:
                continue  # freed meanwhile: claim it
            if waited.answer is not None:
                return Replayed(waited.answer)
            now = self.clock()
            if self.records.take_over_if_lapsed(waited, now=now, lease_until=now + self.lease):
                return waited
            raise IdempotentRequestInProgress()

    def _wait_for(self, record: KeyRecord) -> KeyRecord | None:
        """The record once its request is done, lapsed, or wait_seconds passed; None if it was freed."""
        deadline = time.monotonic() + self.wait_seconds
        current: KeyRecord | None = record
        while current is not None and not current.done and time.monotonic() < deadline:
            if current.locked_until < self.clock():
                return current
            time.sleep(0.05)
            current = self.records.refresh(current)  # None: its request gave a transient answer and freed the key
        return current

    # -- the lease -------------------------------------------------------------
    def _renew_lease(self, record: KeyRecord, stop: threading.Event) -> None:
        try:
            while not stop.wait(self.lease.total_seconds() / 3):
                self.records.renew(record, lease_until=self.clock() + self.lease)
        finally:
            self.records.release_thread_resources()

    @contextlib.contextmanager
    def _lease_renewed(self, record: KeyRecord) -> Iterator[None]:
        """Keeps renewing the claim on the key while the request runs, so no retry takes over a live request."""
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew_lease, args=(record, stop), name=f"lease-{record.record_id}", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
