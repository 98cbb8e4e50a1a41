"""The snapshot-store contract against the SQL backend: SQLite by default,
MariaDB/MySQL through DATABASE_URL (scripts/test-mariadb.sh)."""

import pytest
from django.db import connection, transaction

from eventstore.backends.django_orm import DjangoSnapshotStore
from tests.contract.snapshot_store_contract import SnapshotStoreContract, snapshot, stream


@pytest.mark.django_db(transaction=True)
class TestDjangoSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def snapshots(self):
        assert connection.vendor in {"sqlite", "mysql", "postgresql"}, connection.vendor
        return DjangoSnapshotStore()

    def release_thread_resources(self):
        connection.close()

    def test_an_older_snapshot_inside_a_callers_transaction_leaves_that_transaction_usable(self, snapshots):
        account = stream()
        snapshots.save(snapshot(account, 200))
        with transaction.atomic():
            snapshots.save(snapshot(account, 100))
            snapshots.save(snapshot(stream(), 1))
        assert snapshots.get(account) == snapshot(account, 200)
