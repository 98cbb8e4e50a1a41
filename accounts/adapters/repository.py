"""Loads and saves BankAccount aggregates as event streams."""
from uuid import UUID

from accounts.adapters.event_mapping import to_domain_event, to_new_event
from accounts.domain.bank_account import BankAccount
from accounts.domain.errors import AccountNotFound
from eventstore.store import EventStore, StoredEvent


class BankAccountRepository:
    def __init__(self, event_store: EventStore):
        self.event_store = event_store

    def get(self, account_id: UUID) -> BankAccount:
        history = self.event_store.load_stream(str(account_id))
        if not history:
            raise AccountNotFound(f"No bank account with id {account_id}")
        return BankAccount.from_history(account_id, (to_domain_event(e) for e in history))

    def save(self, account: BankAccount) -> list[StoredEvent]:
        """Append the account's pending events; ConcurrencyConflict if it moved meanwhile."""
        pending = account.pending_events
        if not pending:
            return []
        expected_version = pending[0].version - 1
        stored = self.event_store.append(str(account.id), expected_version, [to_new_event(e) for e in pending])
        account.pending_events = []
        return stored
