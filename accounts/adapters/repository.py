"""Loads and appends BankAccount event streams, with snapshots of long ones.

A snapshot is the account's state at one version, stored beside its events
(eventstore.snapshots), with the keyed requests the account has handled
(accounts.service_layer.handled_requests). Loading starts from it and replays
only the events after it, so a load costs what the events since the last
snapshot cost, not the whole history. Snapshots are a cache: one written by
other code (another fingerprint), or one that cannot be restored, is ignored
(the account is replayed in full) and replaced after the account's next save;
failing to write one never fails a command. Loading never writes: as in the
eventsourcing library, a snapshot is taken after a save (the unit of work asks).
"""

import hashlib
import logging
import sys
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from uuid import UUID

from accounts.adapters import event_mapping
from accounts.adapters.event_mapping import to_domain_event, to_new_event
from accounts.domain import bank_account, events, metadata
from accounts.domain.bank_account import BankAccount, InvalidSnapshot
from accounts.domain.errors import AccountNotFound
from accounts.service_layer import handled_requests
from accounts.service_layer.handled_requests import HandledRequests
from accounts.service_layer.unit_of_work import LoadedAccount
from eventstore.snapshots import Snapshot, SnapshotStore
from eventstore.store import EventStore, StoredEvent

logger = logging.getLogger(__name__)

# Write a snapshot once a stream has this many events past its last one.
DEFAULT_SNAPSHOT_EVERY = 100

# Every module whose code shapes what a replay or a snapshot gives (the
# aggregate, its events and their metadata, their mapping from the store, the
# handled requests kept beside the state, and this module, which puts a
# snapshot together).
SNAPSHOT_CODE = (bank_account, events, metadata, event_mapping, handled_requests)


@cache
def aggregate_schema() -> str:
    """A fingerprint of the code that turns stored events into an account's state.

    Any change to it may change the state a replay gives, so snapshots written before it are not trusted.
    """
    digest = hashlib.sha256()
    for module in (*SNAPSHOT_CODE, sys.modules[__name__]):
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

    def get(self, account_id: UUID) -> BankAccount:
        """The account as the store has it (from its snapshot if there is a usable one)."""
        return self.load(account_id).account

    def load(self, account_id: UUID) -> LoadedAccount:
        """The account, the keyed requests it handled, and the version of the snapshot it came from (0: none)."""
        restored = self._restore(self.snapshots, account_id) if self.snapshots else None
        if restored:
            return restored
        history = [to_domain_event(e) for e in self.event_store.load_stream(str(account_id))]
        if not history:
            raise AccountNotFound(f"No bank account with id {account_id}")
        handled = HandledRequests()
        handled.note_all(event.metadata for event in history)
        return LoadedAccount(BankAccount.from_history(account_id, history), handled)

    def save(self, account: BankAccount) -> list[StoredEvent]:
        """Append the account's pending events; ConcurrencyConflict if it moved meanwhile.

        The pending events stay on the account: the unit of work clears them once it has noted them.
        """
        pending = account.pending_events
        if not pending:
            return []
        expected_version = pending[0].version - 1
        return self.event_store.append(str(account.id), expected_version, [to_new_event(e) for e in pending])

    # -- snapshots ---------------------------------------------------------
    def snapshot_if_due(self, loaded: LoadedAccount) -> None:
        """Write a snapshot of a just-saved account if it is `snapshot_every` events past its last one."""
        account = loaded.account
        if not self.snapshots or account.pending_events:
            return
        if account.version - loaded.snapshot_version < self.snapshot_every:
            return
        # Remembered even if the save fails: the next try is another `snapshot_every` events on.
        loaded.snapshot_version = account.version
        try:
            handled_since = datetime.now(UTC) - self.idempotency_ttl if self.idempotency_ttl else None
            state = {**account.to_snapshot(), "handled_requests": loaded.handled.to_json(since=handled_since)}
            self.snapshots.save(Snapshot(str(account.id), account.version, self.schema, state))
        except Exception:
            logger.warning(
                "Could not save a snapshot of account %s at version %d", account.id, account.version, exc_info=True
            )

    def _restore(self, snapshots: SnapshotStore, account_id: UUID) -> LoadedAccount | None:
        """The account from its snapshot and the events after it, or None: replay it all."""
        stream_id = str(account_id)
        try:
            snapshot = snapshots.get(stream_id)
        except Exception:
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
        after = [to_domain_event(e) for e in history[1:]]
        try:
            handled = HandledRequests.from_json(snapshot.state.get("handled_requests"))
        except (TypeError, ValueError) as error:
            self._discard(snapshots, snapshot, f"Not a snapshot of a bank account: {error!r}")
            return None
        try:
            account = BankAccount.from_snapshot(account_id, snapshot.state, after)
        except InvalidSnapshot as error:
            self._discard(snapshots, snapshot, str(error))
            return None
        handled.note_all(event.metadata for event in after)
        return LoadedAccount(account, handled, snapshot.version)

    def _discard(self, snapshots: SnapshotStore, snapshot: Snapshot, problem: str) -> None:
        """Delete a snapshot that cannot be used (a later one, written after the replay, may never replace it)."""
        logger.warning("The snapshot of account %s is corrupt (%s); replaying its events", snapshot.stream_id, problem)
        try:
            snapshots.delete(snapshot.stream_id)
        except Exception:
            logger.warning("Could not delete the snapshot of account %s", snapshot.stream_id, exc_info=True)
