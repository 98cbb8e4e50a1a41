"""The relay: publishes what the store holds and has not yet published.

Publication never depends on the request that stored the events. If the
broker is down, the events wait in the outbox and go out, in order, once it is
back. An event may be sent twice (sent, then a crash before it is marked):
consumers are idempotent, so that is safe; losing one is not possible.

One relay at a time (a lock), so the outbox goes out in order. `follow_outbox`
is the long-running relay: it holds the lock, and relays whenever it is woken
(a command stored events) and at least every `idle_seconds` (a nudge that was
lost: the command's process died, the wake-up channel was down).
"""
import logging
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Protocol

from eventstore.store import EventStore
from eventstore.transports.base import EventTransport, TransportUnavailable

logger = logging.getLogger(__name__)


class RelayLock(Protocol):
    """What the relay needs of a lock that expires unless renewed (redis-py's Lock is one)."""

    timeout: float

    def acquire(self, blocking: bool = ...) -> bool: ...
    def reacquire(self) -> bool: ...
    def release(self) -> None: ...


class WakeUps(Protocol):
    """Wake-ups for the relay: `wait` returns early once someone asked for a relay since the last wait."""

    def wait(self, timeout: float) -> bool: ...
    def close(self) -> None: ...


def relay_outbox(*, event_store: EventStore, transport: EventTransport, batch_size: int = 500) -> int:
    """Send the outbox in global order until it is empty; returns how many were sent.

    A batch shorter than `batch_size` was the end of the outbox: events stored
    since then are the next run's (their commands woke the relay again), which
    saves asking the store once more on every run.

    Raises TransportUnavailable (with the unsent events still in the outbox)
    if the broker does not acknowledge.
    """
    sent = 0
    while batch := event_store.unpublished(limit=batch_size):
        transport.send(batch)
        event_store.mark_published([e.event_id for e in batch])
        sent += len(batch)
        if len(batch) < batch_size:
            break
    if sent:
        logger.debug("relayed %d event(s)", sent)
    return sent


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
            acquired = lock.acquire(blocking=False)
        except Exception as exc:  # noqa: BLE001 - the lock's server is down: nobody relays, try again soon
            logger.warning("could not take the relay lock: %s", exc)
            acquired = False
        if not acquired:
            _sleep(idle_seconds, stopping)  # another relay runs (or the lock's server is down): stand by
            continue
        try:
            with renewed(lock) as lost:
                logger.info("relay following the outbox")
                while not stopping() and not lost.is_set():
                    try:
                        sent += relay_outbox(event_store=event_store, transport=transport, batch_size=batch_size)
                    except TransportUnavailable as exc:
                        logger.warning("Kafka unavailable, events wait in the outbox: %s", exc)
                        _sleep(retry_seconds, stopping)  # however many commands nudge meanwhile
                        continue
                    except Exception:  # the event store down, say: the events wait, the relay goes on
                        logger.exception("relaying failed; trying again in %.0f s", retry_seconds)
                        _sleep(retry_seconds, stopping)
                        continue
                    _wait_for_nudge(wake_ups, idle_seconds, stopping)
        finally:
            if not lost.is_set():
                try:
                    lock.release()
                except Exception as exc:  # noqa: BLE001 - it expires by itself
                    logger.warning("could not release the relay lock: %s", exc)
        if lost.is_set():
            logger.warning("relay lock lost; relaying stops until it is taken again")
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
