"""The embedded stack's relay lock: one relay at a time among the threads of this process.

It keeps to what eventstore.relay needs of a lock (the relay-lock contract in
tests/contract/relay_lock_contract.py holds it to that, as it holds the Redis
lock): each relay takes its own handle (`handle()`), one handle holds it at a
time, and confirming or releasing a lock that is no longer the handle's
raises. It expires as the Redis lock does, `timeout` seconds after it was
taken or last confirmed: a thread stuck that long loses it to the next.
Unlike `holding()`, `acquire(blocking=True)` waits for the holder: a command's
thread waits for the relay another thread is running, then relays what is left.
"""

from __future__ import annotations

import threading
import time

# Seconds: the relay confirms the lock before each batch, which starts this again.
DEFAULT_TIMEOUT = 60.0


class RelayLockNotOwned(Exception):
    """Confirmed or released by a handle that no longer holds the lock (it expired, and may be another's)."""


class _Ownership:
    """Who holds the lock, and until when; shared by every handle on it."""

    def __init__(self):
        self.changed = threading.Condition()
        self.holder: InProcessRelayLock | None = None
        self.expires_at = 0.0


class InProcessRelayLock:
    def __init__(self, timeout: float = DEFAULT_TIMEOUT, *, _ownership: _Ownership | None = None):
        self.timeout = timeout
        self._ownership = _ownership or _Ownership()

    def handle(self) -> InProcessRelayLock:
        """Another handle on the same lock, for another relay (each thread's relay takes its own)."""
        return InProcessRelayLock(self.timeout, _ownership=self._ownership)

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock if it is free (or its holder let it expire); with `blocking`, wait until it is."""
        ownership = self._ownership
        with ownership.changed:
            while True:
                now = time.monotonic()
                if ownership.holder is None or ownership.expires_at <= now:
                    ownership.holder, ownership.expires_at = self, now + self.timeout
                    return True
                if not blocking:
                    return False
                ownership.changed.wait(ownership.expires_at - now)

    def reacquire(self) -> bool:
        """Confirm this handle still holds the lock, and start its timeout again."""
        with self._ownership.changed:
            self._check_held()
            self._ownership.expires_at = time.monotonic() + self.timeout
            return True

    def release(self) -> None:
        with self._ownership.changed:
            self._check_held()
            self._ownership.holder = None
            self._ownership.changed.notify_all()

    def _check_held(self) -> None:
        ownership = self._ownership
        if ownership.holder is not self or ownership.expires_at <= time.monotonic():
            raise RelayLockNotOwned("the relay lock is not this relay's (it expired, or another relay holds it)")
