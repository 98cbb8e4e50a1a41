"""The unit-of-work contract, against the fake and against the real one over the in-memory stores."""

import pytest

from accounts.adapters.repository import BankAccountRepository
from accounts.adapters.unit_of_work import EventStoreUnitOfWork
from eventstore.backends.memory import InMemoryEventStore, InMemorySnapshotStore
from tests.contract.unit_of_work_contract import UnitOfWorkContract
from tests.fake_unit_of_work import FakeUnitOfWork


class TestFakeUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    def new_uow(self):
        streams: dict = {}
        return lambda recent_accounts=0: FakeUnitOfWork(streams, recent_accounts=recent_accounts)


class TestEventStoreUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    def new_uow(self):
        events, snapshots = InMemoryEventStore(), InMemorySnapshotStore()
        return lambda recent_accounts=0: EventStoreUnitOfWork(
            BankAccountRepository(events, snapshots, snapshot_every=2), recent_accounts=recent_accounts
        )
