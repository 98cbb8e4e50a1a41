"""The relay-lock contract: what eventstore.relay needs of a lock, for the Redis lock and the test fake alike.

A subclass provides two fixtures:
- `make_lock`: a function returning a new handle on one and the same lock (as
  each relay process builds its own), not yet acquired;
- `lapse`: a function (lock) that makes the lock run out as it does when its
  holder has not renewed it for a whole timeout.
"""

import pytest

from eventstore.relay import RelayLockLost, RelayLockNotTaken, confirm_held, holding


class RelayLockContract:
    @pytest.fixture
    def make_lock(self):
        pytest.fail("a lock's test class provides `make_lock`: new handles on one lock")

    @pytest.fixture
    def lapse(self):
        pytest.fail("a lock's test class provides `lapse(lock)`: the lock runs out")

    def test_one_relay_holds_the_lock_at_a_time_and_the_next_takes_it_once_released(self, make_lock):
        first, second = make_lock(), make_lock()
        assert first.acquire(blocking=False)
        assert second.acquire(blocking=False) is False
        first.release()
        assert second.acquire(blocking=False)
        second.release()

    def test_only_the_holder_can_confirm_the_lock(self, make_lock):
        holder, other = make_lock(), make_lock()
        assert holder.acquire(blocking=False)
        confirm_held(holder)
        with pytest.raises(RelayLockLost):
            confirm_held(other)
        holder.release()

    def test_a_lock_that_ran_out_and_was_taken_over_is_lost_to_its_old_holder_and_kept_by_the_new_one(
        self, make_lock, lapse
    ):
        old, new, third = make_lock(), make_lock(), make_lock()
        assert old.acquire(blocking=False)
        lapse(old)
        assert new.acquire(blocking=False)

        with pytest.raises(RelayLockLost):
            confirm_held(old)
        with pytest.raises(Exception):  # noqa: B017, PT011 - each backend refuses with its own error
            old.release()  # refused: it is not the old holder's to release
        assert third.acquire(blocking=False) is False  # still the new holder's
        confirm_held(new)
        new.release()

    def test_holding_refuses_while_another_relay_holds_the_lock_and_releases_it_after_the_block(self, make_lock):
        first, second = make_lock(), make_lock()
        with holding(first), pytest.raises(RelayLockNotTaken), holding(second):
            pytest.fail("two relays held the lock at once")
        with holding(second):
            confirm_held(second)
