import pytest
from django.db import connection

from eventstore.backends.django_orm import DjangoEventStore
from tests.contract.event_store_contract import EventStoreContract


@pytest.mark.django_db(transaction=True)
class TestDjangoEventStoreOnSQLite(EventStoreContract):
    @pytest.fixture
    def store(self):
        assert connection.vendor == "sqlite"
        return DjangoEventStore()

    def release_thread_resources(self):
        connection.close()
