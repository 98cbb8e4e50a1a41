"""Runs each command through its one handler, retrying lost races, then publishes."""

import logging
import random
import threading
import time
from uuid import UUID

from accounts.adapters.repository import BankAccountRepository
from accounts.domain.bank_account import BankAccount
from accounts.domain.commands import Command
from accounts.domain.errors import AccountRuleViolation
from accounts.service_layer.handlers import COMMAND_HANDLERS
from accounts.service_layer.publisher import EventPublisher
from eventstore.store import ConcurrencyConflict

logger = logging.getLogger(__name__)


# How many accounts the composition root's command bus keeps (RecentAccounts).
RECENT_ACCOUNTS = 10_000


class RecentAccounts:
    """The accounts this process stored last, as it stored them: the next command on one needs no load.

    Reusing one is optimistic, like every command: its events are appended at
    the version after the one it was stored at, so if anyone (another process)
    has stored an event on the account since, the append is a ConcurrencyConflict
    and the command is decided again on a fresh load. A command that would be
    refused, or that changes nothing (already handled), is decided again on a
    fresh load too, so no answer rests on a copy older than the store.

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
        self._accounts: dict[UUID, BankAccount] = {}
        self._lock = threading.Lock()
        self._out_of_date_share = 0.0
        self._passed_over = 0

    def take(self, account_id: UUID) -> BankAccount | None:
        """The account, for this caller alone (another asking meanwhile loads it), or None: load it."""
        with self._lock:
            account = self._accounts.pop(account_id, None)
            if account is not None and self._out_of_date_share > 0.5:
                self._passed_over += 1
                if self._passed_over % self.PROBE_EVERY:
                    return None
            return account

    def note(self, *, out_of_date: bool) -> None:
        """How reusing a copy turned out: its append was refused (out of date), or it went through."""
        with self._lock:
            self._out_of_date_share += ((1.0 if out_of_date else 0.0) - self._out_of_date_share) * self._WEIGHT

    def keep(self, account: BankAccount) -> BankAccount:
        """Keep `account` (just stored) for the next command on it; returns a copy for the caller.

        The caller may go on reading its copy while the next command changes the
        kept one. The kept one is the object the repository handed out, so what
        the repository knows about it (which snapshot it came from) still holds.
        """
        if self.size <= 0 or account.pending_events:
            return account
        with self._lock:
            self._accounts.pop(account.id, None)
            self._accounts[account.id] = account  # the most recent last
            while len(self._accounts) > self.size:
                del self._accounts[next(iter(self._accounts))]
        # A shallow copy whose containers (handled requests, pending events) are its own.
        twin = object.__new__(type(account))
        twin.__dict__.update(
            (name, value.copy() if isinstance(value, (dict, list, set)) else value)
            for name, value in vars(account).items()
        )
        return twin


class _AccountsForOneAttempt:
    """What a handler loads accounts through: a recent account if there is one (and it may), else the repository."""

    def __init__(self, repository: BankAccountRepository, recent: RecentAccounts, *, may_reuse: bool):
        self.repository = repository
        self.recent = recent
        self.may_reuse = may_reuse
        self.reused = False

    def get(self, account_id: UUID) -> BankAccount:
        if self.may_reuse and (account := self.recent.take(account_id)) is not None:
            self.reused = True
            return account
        return self.repository.get(account_id)


class CommandBus:
    def __init__(
        self,
        *,
        accounts: BankAccountRepository,
        publisher: EventPublisher,
        max_attempts: int = 30,
        backoff_seconds: float = 0.002,
        recent_accounts: int = 0,
    ):
        self.accounts = accounts
        self.publisher = publisher
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.recent = RecentAccounts(recent_accounts)

    def handle(self, command: Command) -> BankAccount:
        """Returns the account as it stands after the command."""
        handler = COMMAND_HANDLERS[type(command)]
        attempt, may_reuse = 1, True
        while True:
            accounts = _AccountsForOneAttempt(self.accounts, self.recent, may_reuse=may_reuse)
            try:
                account = handler(command, accounts)
            except AccountRuleViolation:
                if not accounts.reused:
                    raise
                may_reuse = False  # refused on a reused copy: decide again on the store's state
                continue
            if accounts.reused and not account.pending_events:
                may_reuse = False  # nothing to store, so nothing confirms the copy: answer from the store
                continue
            try:
                stored = self.accounts.save(account)
            except ConcurrencyConflict:
                if accounts.reused:
                    self.recent.note(out_of_date=True)
                    may_reuse = False  # the copy was out of date (no lost race): decide again on a fresh load
                    continue
                if attempt == self.max_attempts:
                    raise
                logger.debug("conflict on %s, attempt %d; reloading", account.id, attempt)
                # Jitter keeps racing writers from colliding again in lockstep.
                time.sleep(random.uniform(0, self.backoff_seconds * attempt))
                attempt += 1
                continue
            if accounts.reused:
                self.recent.note(out_of_date=False)
            answer = self.recent.keep(account)
            self.publisher.publish(stored)
            return answer
