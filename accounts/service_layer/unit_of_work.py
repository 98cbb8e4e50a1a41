"""The unit of work: the accounts one command loads and changes, stored all at once.

Handlers get accounts through `uow.accounts`, add new ones there, and the
command bus calls `commit()`, which appends the events the accounts recorded
and returns them as stored. Leaving the `with` block without a commit drops
whatever was not stored.

The unit of work also owns two things the aggregate should not know about:
- the accounts this process stored last (`RecentAccounts`), so the next
  command on one needs no load; a copy that may be out of date is never the
  last word (`StaleCopy`, below);
- the keyed requests each account has handled (`HandledRequests`), read from
  its events' metadata or its snapshot, so a retry after a crash finds its
  earlier effect.

One object serves the whole process, as the bus does: each thread's `with`
block is its own unit (the state of a unit is kept per thread).
"""

import abc
import threading
from copy import copy
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, Self, TypeVar
from uuid import UUID

from accounts.domain.bank_account import BankAccount
from accounts.domain.commands import CommandMetadata
from accounts.domain.errors import AccountRuleViolation
from accounts.service_layer.handled_requests import HandledRequests
from eventstore.store import ConcurrencyConflict, StoredEvent

# How many accounts the composition root's unit of work keeps (RecentAccounts).
RECENT_ACCOUNTS = 10_000


class StaleCopy(Exception):
    """A recent copy of an account could not be trusted for this command: decide it again on a fresh load.

    Raised when the copy's append met a newer event (someone else moved the
    account), when the command was refused on it, or when it had nothing to
    store (an answer must not rest on a copy older than the store).
    """


@dataclass
class LoadedAccount:
    """An account as a unit of work holds it, with what the store told about it beside the state."""

    account: BankAccount
    handled: HandledRequests = field(default_factory=HandledRequests)
    # The version of the snapshot it was built from (or last wrote); 0 if none.
    snapshot_version: int = 0
    reused: bool = False  # a recent copy, not loaded from the store for this unit

    def kept_copy(self) -> "LoadedAccount":
        """A copy to keep for the next command; this one's caller may go on reading the original."""
        return LoadedAccount(copy(self.account), self.handled.copy(), self.snapshot_version)


K = TypeVar("K")
V = TypeVar("V")


class RecentAccounts(Generic[K, V]):
    """The accounts this process stored last, as it stored them: the next command on one needs no load.

    Reusing one is optimistic, like every command: its events are appended at
    the version after the one it was stored at, so if anyone (another process)
    has stored an event on the account since, the append is a ConcurrencyConflict
    and the command is decided again on a fresh load.

    Where other processes write to the same accounts (several web workers),
    most copies are out of date by the time they are reused, and each costs a
    refused append before the load. So this keeps count: while most reused
    copies turn out out of date, only one in PROBE_EVERY is reused (to notice
    when that changes), and the others are loaded as if not kept.
    Bounded: the least recently stored go first.
    """

    PROBE_EVERY = 8
    _WEIGHT = 1 / 16  # of the latest outcome in the running share of out-of-date copies

    def __init__(self, size: int):
        self.size = size
        self._kept: dict[K, V] = {}
        self._lock = threading.Lock()
        self._out_of_date_share = 0.0
        self._passed_over = 0

    def take(self, key: K) -> V | None:
        """The kept one, for this caller alone (another asking meanwhile loads it), or None: load it."""
        with self._lock:
            kept = self._kept.pop(key, None)
            if kept is not None and self._out_of_date_share > 0.5:
                self._passed_over += 1
                if self._passed_over % self.PROBE_EVERY:
                    return None
            return kept

    def note(self, *, out_of_date: bool) -> None:
        """How reusing a copy turned out: its append was refused (out of date), or it went through."""
        with self._lock:
            self._out_of_date_share += ((1.0 if out_of_date else 0.0) - self._out_of_date_share) * self._WEIGHT

    def keep(self, key: K, value: V) -> None:
        """Keep `value` (just stored) for the next command on it; the caller must not change it afterwards."""
        if self.size <= 0:
            return
        with self._lock:
            self._kept.pop(key, None)
            self._kept[key] = value  # the most recent last
            while len(self._kept) > self.size:
                del self._kept[next(iter(self._kept))]


@dataclass
class _Unit:
    """One `with` block's state."""

    reuse_recent: bool
    loaded: dict[UUID, LoadedAccount] = field(default_factory=dict)

    @property
    def reused(self) -> bool:
        return any(loaded.reused for loaded in self.loaded.values())


class Accounts:
    """The accounts of the current unit: `get` one (loaded once per unit), `add` a new one."""

    def __init__(self, uow: "UnitOfWork"):
        self._uow = uow

    def get(self, account_id: UUID) -> BankAccount:
        """The account; AccountNotFound if it has no events."""
        return self._uow._get(account_id).account

    def add(self, account: BankAccount) -> None:
        """A new account (just opened): its events are stored on commit."""
        self._uow._unit().loaded[account.id] = LoadedAccount(account)


class UnitOfWork(abc.ABC):
    """Accounts loaded and stored as one command's unit; see the module's docstring.

    Concrete units of work say how an account is loaded (`_load`), how its
    pending events are appended (`_append`) and what follows a save (`_after_save`,
    e.g. a snapshot).
    """

    def __init__(self, *, recent_accounts: int = 0):
        self.recent: RecentAccounts[UUID, LoadedAccount] = RecentAccounts(recent_accounts)
        self.accounts = Accounts(self)
        self._local = threading.local()

    # -- the unit --------------------------------------------------------------
    def start(self, *, reuse_recent: bool = True) -> Self:
        """Begin a unit for this thread (`with uow.start(...)`); reuse_recent=False loads every account afresh."""
        if getattr(self._local, "unit", None) is not None:
            raise RuntimeError("this thread is already in a unit of work")
        self._local.unit = _Unit(reuse_recent)
        return self

    def __enter__(self) -> Self:
        if getattr(self._local, "unit", None) is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        unit = self._unit()
        self._local.unit = None  # whatever was not committed is dropped with it
        if isinstance(exc, AccountRuleViolation) and unit.reused:
            raise StaleCopy("refused on a recent copy: decide again on the store's state") from exc

    def _unit(self) -> _Unit:
        unit: _Unit | None = getattr(self._local, "unit", None)
        if unit is None:
            raise RuntimeError("no unit of work: use `with uow:`")
        return unit

    # -- what handlers ask -----------------------------------------------------
    def has_handled(self, account_id: UUID, request: CommandMetadata) -> bool:
        """Whether this request (its user and key, within the key's time to live) already changed the account.

        The account must have been got in this unit.
        """
        return (
            self._unit()
            .loaded[account_id]
            .handled.has_handled(request.issued_by, request.idempotency_key, since=request.idempotent_since)
        )

    def _get(self, account_id: UUID) -> LoadedAccount:
        unit = self._unit()
        if (loaded := unit.loaded.get(account_id)) is not None:
            return loaded
        kept = self.recent.take(account_id) if unit.reuse_recent else None
        if kept is not None:
            kept.reused = True
            loaded = kept
        else:
            loaded = self._load(account_id)
        unit.loaded[account_id] = loaded
        return loaded

    # -- storing ---------------------------------------------------------------
    def commit(self) -> list[StoredEvent]:
        """Append what the unit's accounts recorded; returns those events as stored.

        ConcurrencyConflict if an account loaded from the store moved meanwhile
        (a lost race: the caller may retry); StaleCopy if a recent copy turned
        out out of date, or had nothing to store.
        """
        unit = self._unit()
        reused = unit.reused
        changed = [loaded for loaded in unit.loaded.values() if loaded.account.pending_events]
        if reused and not changed:
            raise StaleCopy("nothing to store, so nothing confirms the recent copy: answer from the store")
        stored: list[StoredEvent] = []
        for loaded in changed:
            try:
                stored += self._append(loaded.account)
            except ConcurrencyConflict as conflict:
                if loaded.reused:
                    self.recent.note(out_of_date=True)
                    raise StaleCopy("the recent copy was out of date: decide again on a fresh load") from conflict
                raise
            loaded.handled.note_all(event.metadata for event in loaded.account.pending_events)
            loaded.account.pending_events = []
            self._after_save(loaded)
        if reused:
            self.recent.note(out_of_date=False)
        for account_id, loaded in unit.loaded.items():
            self.recent.keep(account_id, loaded.kept_copy())
        unit.loaded.clear()  # stored: a second commit has nothing to add
        return stored

    # -- the backend -----------------------------------------------------------
    @abc.abstractmethod
    def _load(self, account_id: UUID) -> LoadedAccount:
        """The account from the store, with the requests it handled; AccountNotFound if it has no events."""

    @abc.abstractmethod
    def _append(self, account: BankAccount) -> list[StoredEvent]:
        """Append the account's pending events after the version they follow; ConcurrencyConflict if it moved."""

    def _after_save(self, loaded: LoadedAccount) -> None:  # noqa: B027 - optional: most backends need nothing here
        """What follows a save (a snapshot, if one is due); failing here must never fail the command."""
