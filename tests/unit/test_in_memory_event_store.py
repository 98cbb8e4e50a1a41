import pytest

from eventstore.backends.memory import InMemoryEventStore
from tests.contract.event_store_contract import EventStoreContract


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self):
        return InMemoryEventStore()
