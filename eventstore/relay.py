"""The relay: publishes what the store holds and has not yet published.

Publication never depends on the request that stored the events. If the
broker is down, the events wait in the outbox and go out, in order, once it is
back. An event may be sent twice (sent, then a crash before it is marked):
consumers are idempotent, so that is safe; losing one is not possible.

One relay at a time (a lock), so the outbox goes out in order: two relays
sending the same outbox would put an account's older events after newer ones.
Every relay holds the lock (`holding`), and confirms it before each batch it
sends (`relay_outbox`): a relay that lost it (frozen, or cut off from the
lock's server for longer than its timeout, while another relay took it over)
stops before its next batch. `follow_outbox` is the long-running relay: it
holds the lock, and relays whenever it is woken (a command stored events) and
at least every `idle_seconds` (a nudge that was lost: the command's process
died, the wake-up channel was down).
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from eventstore.store import EventStore
from eventstore.transports.base import EventTransport, TransportUnavailable

logger = logging.getLogger(__name__)


class RelayLock(Protocol):
    """What the relay needs of a lock that expires unless renewed (redis-py's Lock is one)."""

    timeout: float

    def acquire(self, blocking: bool = ...) -> bool: ...
    def reacquire(self) -> bool: ...
    def release(self) -> None: ...


class RelayLockNotTaken(Exception):
    """Another relay holds the relay lock (or its server cannot be reached): this one must not relay."""


class RelayLockLost(Exception):
    """The relay could not confirm that it still holds its lock: another relay may be sending now."""


class WakeUps(Protocol):
    """Wake-ups for the relay: `wait` returns early once someone asked for a relay since the last wait."""

    def wait(self, timeout: float) -> bool: ...
    def close(self) -> None: ...


def relay_outbox(*, event_store: EventStore, transport: EventTransport, lock: RelayLock, batch_size: int = 500) -> int:
    """Send the outbox in global order until it is empty; returns how many were sent.

    The caller holds `lock` (see `holding`). Before each batch is sent the lock
    is confirmed, which also starts its timeout again; if it cannot be (it is
    someone else's now, or its server does not answer), this raises
    RelayLockLost at once, with the unsent events still in the outbox for the
    relay that holds it. (The check is per batch: a send that outlasts the
    lock's timeout while its server is out of reach can still land after the
    next relay's first batch; only the broker could fence that one.)

    A batch shorter than `batch_size` was the end of the outbox: events stored
    since then are the next run's (their commands woke the relay again), which
    saves asking the store once more on every run.

    Raises TransportUnavailable (with the unsent events still in the outbox)
    if the broker does not acknowledge.
    """
    sent = 0
    while batch := event_store.unpublished(limit=batch_size):
        confirm_held(lock)
        transport.send(batch)
        event_store.mark_published([e.event_id for e in batch])
        sent += len(batch)
        if len(batch) < batch_size:
            break
    if sent:
        logger.debug("relayed %d event(s)", sent)
    return sent


def confirm_held(lock: RelayLock) -> None:
    """Raise RelayLockLost unless `lock` is still this relay's (its timeout then starts again)."""
    try:
        held = lock.reacquire()
    except Exception as exc:  # not owned, or not answered: either way it may be someone else's
        raise RelayLockLost(f"could not confirm the relay lock: {exc}") from exc
    if held is False:
        raise RelayLockLost("the relay lock is no longer this relay's")


@contextmanager
def holding(lock: RelayLock) -> Iterator[threading.Event]:
    """Take `lock` without waiting, keep it renewed while the block runs, release it after.

    Raises RelayLockNotTaken if another relay holds it or its server cannot be
    reached. Yields `renewed`'s Event, set if the lock was lost meanwhile.
    """
    try:
        acquired = lock.acquire(blocking=False)
    except Exception as exc:  # the lock's server is down: nobody may relay
        raise RelayLockNotTaken(f"could not take the relay lock: {exc}") from exc
    if not acquired:
        raise RelayLockNotTaken("another relay holds the relay lock")
    try:
        with renewed(lock) as lost:
            yield lost
    finally:
        _release(lock)


def _release(lock: RelayLock) -> None:
    # Safe even if the lock was lost: it is released only if it is still this relay's.
    try:
        lock.release()
    except Exception as exc:  # noqa: BLE001 - no longer ours, or its server is down: it expires by itself
        logger.info("relay lock not released (%s); it expires by itself", exc)


@contextmanager
def renewed(lock: RelayLock) -> Iterator[threading.Event]:
    """Keep renewing `lock` while the block runs: it expires soon after the process dies, not before.

    Yields an Event that is set if the lock was lost (not renewed in time: the
    process was frozen, or the lock's server unreachable for a whole timeout);
    whoever holds it then must stop relaying, or two relays could interleave.
    """
    done, lost = threading.Event(), threading.Event()

    def renew():
        while not done.wait(lock.timeout / 3):
            try:
                lock.reacquire()
            except Exception as exc:  # noqa: BLE001 - any failure means the lock may be someone else's now
                logger.warning("could not renew the relay lock: %s", exc)
                lost.set()
                return

    renewer = threading.Thread(target=renew, name="relay-lock-renewer", daemon=True)
    renewer.start()
    try:
        yield lost
    finally:
        done.set()
        renewer.join()


def follow_outbox(
    *,
    event_store: EventStore,
    transport: EventTransport,
    lock: RelayLock,
    wake_ups: WakeUps,
    stopping: Callable[[], bool],
    idle_seconds: float = 1.0,
    retry_seconds: float = 2.0,
    batch_size: int = 500,
) -> int:
    """Relay the outbox whenever woken, until `stopping()`; returns how many events were sent.

    Waits (as a standby) while another relay holds the lock. With the broker
    or the store down it tries again every `retry_seconds`; the events wait in
    the outbox.
    """
    sent = 0
    while not stopping():
        try:
            with holding(lock) as lost:
                logger.info("relay following the outbox")
                sent += _relay_while_held(
                    event_store=event_store,
                    transport=transport,
                    lock=lock,
                    lost=lost,
                    wake_ups=wake_ups,
                    stopping=stopping,
                    idle_seconds=idle_seconds,
                    retry_seconds=retry_seconds,
                    batch_size=batch_size,
                )
        except RelayLockNotTaken as exc:  # another relay runs (or the lock's server is down): stand by
            logger.debug("relay standing by: %s", exc)
            _sleep(idle_seconds, stopping)
    return sent


def _relay_while_held(
    *, event_store, transport, lock, lost, wake_ups, stopping, idle_seconds, retry_seconds, batch_size
) -> int:
    """follow_outbox's rounds while it holds the lock; returns once stopping, or once the lock is lost."""
    sent = 0
    while not stopping():
        if lost.is_set():
            logger.warning("relay lock not renewed in time; relaying stops until it is taken again")
            break
        try:
            sent += relay_outbox(event_store=event_store, transport=transport, lock=lock, batch_size=batch_size)
        except RelayLockLost as exc:
            logger.warning("%s; relaying stops until the lock is taken again", exc)
            break
        except TransportUnavailable as exc:
            logger.warning("Kafka unavailable, events wait in the outbox: %s", exc)
            _sleep(retry_seconds, stopping)  # however many commands nudge meanwhile
            continue
        except Exception:  # the event store down, say: the events wait, the relay goes on
            logger.exception("relaying failed; trying again in %.0f s", retry_seconds)
            _sleep(retry_seconds, stopping)
            continue
        _wait_for_nudge(wake_ups, idle_seconds, stopping)
    return sent


def _wait_for_nudge(wake_ups: WakeUps, seconds: float, stopping: Callable[[], bool]) -> None:
    """Wait until nudged or `seconds` have passed, in short slices so that a stop is not kept waiting."""
    deadline = time.monotonic() + seconds
    while not stopping() and (left := deadline - time.monotonic()) > 0:
        if wake_ups.wait(min(left, 0.25)):
            return


def _sleep(seconds: float, stopping: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not stopping() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))
