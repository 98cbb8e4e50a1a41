"""The unit of work over the event store and its snapshots (through BankAccountRepository)."""

from uuid import UUID

from accounts.adapters.repository import BankAccountRepository
from accounts.domain.bank_account import BankAccount
from accounts.service_layer.unit_of_work import LoadedAccount, UnitOfWork
from eventstore.store import StoredEvent


class EventStoreUnitOfWork(UnitOfWork):
    """Loads through the repository (snapshot, then the events after it), appends to the event store,
    and takes a snapshot after a save once one is due."""

    def __init__(self, repository: BankAccountRepository, *, recent_accounts: int = 0):
        super().__init__(recent_accounts=recent_accounts)
        self.repository = repository

    def _load(self, account_id: UUID) -> LoadedAccount:
        return self.repository.load(account_id)

    def _append(self, account: BankAccount) -> list[StoredEvent]:
        return self.repository.save(account)

    def _after_save(self, loaded: LoadedAccount) -> None:
        self.repository.snapshot_if_due(loaded)
