"""The in-memory relay lock the unit tests use keeps to the relay-lock contract, as the Redis lock does."""

import pytest

from tests.contract.relay_lock_contract import RelayLockContract
from tests.fake_relay_lock import FakeRelayLock


class TestFakeRelayLock(RelayLockContract):
    @pytest.fixture
    def make_lock(self):
        shared = {"holder": None}
        return lambda: FakeRelayLock(shared)

    @pytest.fixture
    def lapse(self):
        return lambda lock: lock.lapse()
