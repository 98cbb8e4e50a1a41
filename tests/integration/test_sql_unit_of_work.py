"""The unit-of-work contract against the SQL event and snapshot stores: SQLite by default,
MariaDB/MySQL through DATABASE_URL (scripts/test-mariadb.sh)."""

import pytest

from accounts.adapters.repository import BankAccountRepository
from accounts.adapters.unit_of_work import EventStoreUnitOfWork
from eventstore.backends.django_orm import DjangoEventStore, DjangoSnapshotStore
from tests.contract.unit_of_work_contract import UnitOfWorkContract


@pytest.mark.django_db(transaction=True)
class TestSqlUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    def new_uow(self):
        events, snapshots = DjangoEventStore(), DjangoSnapshotStore()
        return lambda recent_accounts=0: EventStoreUnitOfWork(
            BankAccountRepository(events, snapshots, snapshot_every=2), recent_accounts=recent_accounts
        )
