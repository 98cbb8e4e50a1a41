"""A relay lock in memory, behind eventstore.relay.RelayLock, for tests without Redis.

It keeps to redis-py's Lock where the relay can notice (the lock contract in
tests/contract/relay_lock_contract.py holds it to that): one holder at a time,
a non-blocking acquire is refused while another holds it, and confirming or
releasing a lock that is no longer this holder's raises. It never lapses by
itself: a test calls `lapse()` where the Redis lock would time out.
"""

import threading


class LockNotOwned(Exception):
    pass


class FakeRelayLock:
    timeout = 0.3  # seconds: the relay renews every timeout / 3

    def __init__(self, shared: dict | None = None):
        """Locks made with the same `shared` dict are one lock held by different relays."""
        self.shared = shared if shared is not None else {"holder": None, "guard": threading.Lock()}
        self.shared.setdefault("guard", threading.Lock())
        self.refused = 0  # acquires refused because another relay held it
        self.confirmations_failed = 0  # reacquires that found the lock no longer this one's

    def acquire(self, blocking: bool = True) -> bool:
        with self.shared["guard"]:
            if self.shared["holder"] is None:
                self.shared["holder"] = self
                return True
            self.refused += 1
            return False

    def reacquire(self) -> bool:
        with self.shared["guard"]:
            if self.shared["holder"] is not self:
                self.confirmations_failed += 1
                raise LockNotOwned("Cannot reacquire a lock that's no longer owned")
            return True

    def release(self) -> None:
        with self.shared["guard"]:
            if self.shared["holder"] is not self:
                raise LockNotOwned("Cannot release a lock that's no longer owned")
            self.shared["holder"] = None

    def lapse(self) -> None:
        """As the Redis lock does once its holder has not renewed it for a whole timeout."""
        with self.shared["guard"]:
            self.shared["holder"] = None

    @property
    def held(self) -> bool:
        return self.shared["holder"] is self
