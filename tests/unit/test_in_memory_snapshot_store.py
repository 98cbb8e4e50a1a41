import pytest

from eventstore.backends.memory import InMemorySnapshotStore
from tests.contract.snapshot_store_contract import SnapshotStoreContract


class TestInMemorySnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def snapshots(self):
        return InMemorySnapshotStore()
