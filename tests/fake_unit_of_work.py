"""A unit of work over plain lists of domain events: the service layer's tests run on it.

It passes the same contract as the real one (tests/contract/unit_of_work_contract.py).
Several fakes may share one `streams` dict: as processes sharing a store.
"""

import itertools
import uuid

from accounts.domain.bank_account import BankAccount
from accounts.domain.errors import AccountNotFound
from accounts.domain.events import AccountEvent
from accounts.service_layer.handled_requests import HandledRequests
from accounts.service_layer.unit_of_work import LoadedAccount, UnitOfWork
from eventstore.store import ConcurrencyConflict, StoredEvent


class FakeUnitOfWork(UnitOfWork):
    def __init__(self, streams: dict | None = None, *, recent_accounts: int = 0):
        super().__init__(recent_accounts=recent_accounts)
        self.streams: dict[uuid.UUID, list[AccountEvent]] = {} if streams is None else streams
        self.loads = 0
        self.appends = 0
        self._positions = itertools.count(1)

    def _load(self, account_id):
        self.loads += 1
        history = list(self.streams.get(account_id, []))
        if not history:
            raise AccountNotFound(f"No bank account with id {account_id}")
        handled = HandledRequests()
        handled.note_all(event.metadata for event in history)
        return LoadedAccount(BankAccount.from_history(account_id, history), handled)

    def _append(self, account):
        pending = account.pending_events
        stream = self.streams.setdefault(account.id, [])
        if len(stream) != pending[0].version - 1:
            raise ConcurrencyConflict(str(account.id), pending[0].version - 1)
        self.appends += 1
        stream.extend(pending)
        return [
            StoredEvent(
                event_id=uuid.uuid4(),
                stream_id=str(account.id),
                version=event.version,
                event_type=type(event).__name__,
                data={},
                occurred_at=event.occurred_at,
                metadata={},
                position=next(self._positions),
            )
            for event in pending
        ]

    def events(self, account_id) -> list[AccountEvent]:
        return list(self.streams.get(account_id, []))
