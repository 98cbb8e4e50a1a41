"""Runs each command through its one handler, retrying lost races, then publishes."""
import logging
import random
import time

from accounts.adapters.repository import BankAccountRepository
from accounts.domain.commands import Command
from accounts.domain.bank_account import BankAccount
from accounts.service_layer.handlers import COMMAND_HANDLERS
from accounts.service_layer.publisher import EventPublisher
from eventstore.store import ConcurrencyConflict

logger = logging.getLogger(__name__)


class CommandBus:
    def __init__(
        self,
        *,
        accounts: BankAccountRepository,
        publisher: EventPublisher,
        max_attempts: int = 30,
        backoff_seconds: float = 0.002,
    ):
        self.accounts = accounts
        self.publisher = publisher
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds

    def handle(self, command: Command) -> BankAccount:
        """Returns the account as it stands after the command."""
        handler = COMMAND_HANDLERS[type(command)]
        for attempt in range(1, self.max_attempts + 1):
            account = handler(command, self.accounts)
            try:
                stored = self.accounts.save(account)
            except ConcurrencyConflict:
                if attempt == self.max_attempts:
                    raise
                logger.debug("conflict on %s, attempt %d; reloading", account.id, attempt)
                # Jitter keeps racing writers from colliding again in lockstep.
                time.sleep(random.uniform(0, self.backoff_seconds * attempt))
                continue
            self.publisher.publish(stored)
            return account
        raise AssertionError("unreachable")
