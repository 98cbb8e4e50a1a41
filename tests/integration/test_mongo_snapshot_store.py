import uuid

import pytest

from eventstore.backends.mongo import MongoEventStore, MongoSnapshotStore
from tests.contract.snapshot_store_contract import SnapshotStoreContract
from tests.servers.mongo import mongo_server  # noqa: F401  (the session's server, a pytest fixture)


@pytest.fixture
def event_store(mongo_server):  # noqa: F811
    """An empty store on a database of its own."""
    name = f"techbank_test_{uuid.uuid4().hex[:12]}"
    store = MongoEventStore(url=f"{mongo_server}/{name}?retryWrites=false", alias=name)
    yield store
    store.drop_everything()
    store.close()


class TestMongoSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def snapshots(self, event_store):
        return MongoSnapshotStore(event_store)


def test_dropping_the_event_store_drops_its_snapshots(event_store):
    from tests.contract.snapshot_store_contract import snapshot, stream

    snapshots = MongoSnapshotStore(event_store)
    account = stream()
    snapshots.save(snapshot(account, 1))
    event_store.drop_everything()
    assert snapshots.get(account) is None
