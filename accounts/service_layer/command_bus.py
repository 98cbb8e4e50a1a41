"""Runs each command through its one handler in a unit of work, retrying lost races, then publishes."""

import logging
import random
import time

from accounts.domain.bank_account import BankAccount
from accounts.domain.commands import Command
from accounts.service_layer.handlers import COMMAND_HANDLERS
from accounts.service_layer.publisher import EventPublisher
from accounts.service_layer.unit_of_work import StaleCopy, UnitOfWork
from eventstore.store import ConcurrencyConflict

logger = logging.getLogger(__name__)


class CommandBus:
    def __init__(
        self,
        *,
        uow: UnitOfWork,
        publisher: EventPublisher,
        max_attempts: int = 30,
        backoff_seconds: float = 0.002,
    ):
        self.uow = uow
        self.publisher = publisher
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds

    def handle(self, command: Command) -> BankAccount:
        """Returns the account as it stands after the command."""
        handler = COMMAND_HANDLERS[type(command)]
        attempt, reuse_recent = 1, True
        while True:
            try:
                with self.uow.start(reuse_recent=reuse_recent) as uow:
                    account = handler(command, uow)
                    stored = uow.commit()
            except StaleCopy:
                reuse_recent = False  # not a lost race: decide again on the store's state, at once
                continue
            except ConcurrencyConflict as conflict:
                if attempt == self.max_attempts:
                    raise
                logger.debug("conflict on %s, attempt %d; reloading", conflict.stream_id, attempt)
                # Jitter keeps racing writers from colliding again in lockstep.
                time.sleep(random.uniform(0, self.backoff_seconds * attempt))
                attempt += 1
                continue
            self.publisher.publish(stored)
            return account
