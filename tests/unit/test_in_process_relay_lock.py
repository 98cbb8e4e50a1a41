"""The embedded stack's relay lock keeps to the relay-lock contract, as the Redis lock does, and a blocking
acquire waits for the holder (a command's thread waits for the relay another thread runs)."""

import threading
import time

import pytest

from eventstore.in_process_relay_lock import InProcessRelayLock, RelayLockNotOwned
from tests.contract.relay_lock_contract import RelayLockContract

TIMEOUT = 0.5


class TestInProcessRelayLock(RelayLockContract):
    @pytest.fixture
    def make_lock(self):
        lock = InProcessRelayLock(timeout=TIMEOUT)
        return lock.handle

    @pytest.fixture
    def lapse(self):
        return lambda lock: time.sleep(TIMEOUT * 1.2)  # not confirmed for a whole timeout


def test_a_blocking_acquire_waits_until_the_holder_releases():
    lock = InProcessRelayLock()
    holder, waiter = lock.handle(), lock.handle()
    assert holder.acquire(blocking=False)
    taken = threading.Event()
    thread = threading.Thread(target=lambda: waiter.acquire(blocking=True) and taken.set())
    thread.start()

    assert not taken.wait(0.2)  # still the holder's
    holder.release()
    assert taken.wait(5)
    thread.join()
    waiter.release()


def test_a_blocking_acquire_takes_over_a_lock_its_holder_let_expire():
    lock = InProcessRelayLock(timeout=0.2)
    stuck, next_one = lock.handle(), lock.handle()
    assert stuck.acquire(blocking=False)
    started = time.monotonic()

    assert next_one.acquire(blocking=True)
    assert time.monotonic() - started >= 0.15
    with pytest.raises(RelayLockNotOwned):
        stuck.reacquire()
    next_one.release()


def test_confirming_starts_the_timeout_again():
    holder = InProcessRelayLock(timeout=0.3).handle()
    assert holder.acquire(blocking=False)
    for _ in range(3):
        time.sleep(0.15)
        assert holder.reacquire()
    holder.release()
