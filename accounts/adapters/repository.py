"""Loads and saves BankAccount aggregates as event streams, with snapshots of long ones.

A snapshot is the account's state at one version, stored beside its events
(eventstore.snapshots). Loading starts from it and replays only the events after
it, so a load costs what the events since the last snapshot cost, not the whole
history. Snapshots are a cache: one written by other aggregate code (another
fingerprint), or one that cannot be restored, is ignored (the account is
replayed in full) and replaced; failing to write one never fails a command.
"""

import hashlib
import logging
import threading
import weakref
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from uuid import UUID

from accounts.adapters import event_mapping
from accounts.adapters.event_mapping import to_domain_event, to_new_event
from accounts.domain import bank_account, events
from accounts.domain.bank_account import BankAccount, InvalidSnapshot
from accounts.domain.errors import AccountNotFound
from eventstore.snapshots import Snapshot, SnapshotStore
from eventstore.store import EventStore, StoredEvent

logger = logging.getLogger(__name__)

# Write a snapshot once a stream has this many events past its last one.
DEFAULT_SNAPSHOT_EVERY = 100


@cache
def aggregate_schema() -> str:
    """A fingerprint of the code that turns stored events into an account's state.

    Any change to it (the aggregate, its events, their mapping from the store)
    may change the state a replay gives, so snapshots written before it are not trusted.
    """
    digest = hashlib.sha256()
    for module in (bank_account, events, event_mapping):
        if module.__file__ is None:  # never for a module imported from a file
            raise RuntimeError(f"{module.__name__} has no source file to fingerprint")
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


class BankAccountRepository:
    def __init__(
        self,
        event_store: EventStore,
        snapshots: SnapshotStore | None = None,
        *,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        schema: str | None = None,
        idempotency_ttl: timedelta | None = None,
    ):
        """Without `snapshots` (or with snapshot_every=0) every load replays the whole stream.

        With `idempotency_ttl`, snapshots leave out the idempotency keys older
        than that (they have expired), so they stay small however many keyed
        requests an account has had.
        """
        self.event_store = event_store
        self.idempotency_ttl = idempotency_ttl
        self.snapshots = snapshots if snapshot_every > 0 else None
        self.snapshot_every = snapshot_every
        self.schema = schema or aggregate_schema()
        # The version of the latest snapshot each account in use was built from (or wrote).
        self._snapshot_versions: weakref.WeakKeyDictionary[BankAccount, int] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, account_id: UUID) -> BankAccount:
        restored = self._restore(self.snapshots, account_id) if self.snapshots else None
        if restored:
            account, snapshot_version = restored
        else:
            history = self.event_store.load_stream(str(account_id))
            if not history:
                raise AccountNotFound(f"No bank account with id {account_id}")
            account = BankAccount.from_history(account_id, (to_domain_event(e) for e in history))
            snapshot_version = 0
        self._remember(account, snapshot_version)
        # This load replayed many events (no usable snapshot, or it lags): spare the next one.
        self._snapshot_if_due(account)
        return account

    def save(self, account: BankAccount) -> list[StoredEvent]:
        """Append the account's pending events; ConcurrencyConflict if it moved meanwhile."""
        pending = account.pending_events
        if not pending:
            return []
        expected_version = pending[0].version - 1
        stored = self.event_store.append(str(account.id), expected_version, [to_new_event(e) for e in pending])
        account.pending_events = []
        self._snapshot_if_due(account)
        return stored

    # -- snapshots ---------------------------------------------------------
    def _restore(self, snapshots: SnapshotStore, account_id: UUID) -> tuple[BankAccount, int] | None:
        """The account from its snapshot and the events after it, or None: replay it all."""
        stream_id = str(account_id)
        try:
            snapshot = snapshots.get(stream_id)
        except Exception:  # a cache that cannot be read is a cache miss
            logger.warning("Could not read the snapshot of account %s; replaying its events", stream_id, exc_info=True)
            return None
        if snapshot is None:
            return None
        if snapshot.schema != self.schema:
            # Replaced by the next snapshot this code writes (the stream is long: it has one).
            logger.info("The snapshot of account %s is from other code; replaying its events", stream_id)
            return None
        if (
            not isinstance(snapshot.version, int)
            or snapshot.version < 1
            or snapshot.state.get("version") != snapshot.version
        ):
            self._discard(snapshots, snapshot, "its versions disagree")
            return None
        # From the snapshot's own last event: a snapshot ahead of its stream (which
        # no correct run writes) would otherwise give an account no append can follow.
        history = self.event_store.load_stream(stream_id, after_version=snapshot.version - 1)
        if not history or history[0].version != snapshot.version:
            self._discard(snapshots, snapshot, "it is ahead of the events")
            return None
        try:
            account = BankAccount.from_snapshot(account_id, snapshot.state, (to_domain_event(e) for e in history[1:]))
        except InvalidSnapshot as error:
            self._discard(snapshots, snapshot, str(error))
            return None
        return account, snapshot.version

    def _discard(self, snapshots: SnapshotStore, snapshot: Snapshot, problem: str) -> None:
        """Delete a snapshot that cannot be used (a later one, written after the replay, may never replace it)."""
        logger.warning("The snapshot of account %s is corrupt (%s); replaying its events", snapshot.stream_id, problem)
        try:
            snapshots.delete(snapshot.stream_id)
        except Exception:  # still a cache miss; the replay goes on
            logger.warning("Could not delete the snapshot of account %s", snapshot.stream_id, exc_info=True)
        return None

    def _remember(self, account: BankAccount, snapshot_version: int) -> None:
        with self._lock:
            self._snapshot_versions[account] = snapshot_version

    def _snapshot_if_due(self, account: BankAccount) -> None:
        if not self.snapshots or account.pending_events:
            return
        with self._lock:
            last = self._snapshot_versions.get(account, 0)
        if account.version - last < self.snapshot_every:
            return
        # Remembered even if the save fails: the next try is another `snapshot_every` events on.
        self._remember(account, account.version)
        try:
            handled_since = datetime.now(UTC) - self.idempotency_ttl if self.idempotency_ttl else None
            state = account.to_snapshot(handled_since=handled_since)
            self.snapshots.save(Snapshot(str(account.id), account.version, self.schema, state))
        except Exception:  # a snapshot is a cache: the command has succeeded
            logger.warning(
                "Could not save a snapshot of account %s at version %d", account.id, account.version, exc_info=True
            )
