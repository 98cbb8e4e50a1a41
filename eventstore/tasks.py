"""Celery entry point for the relay: thin, the work is in eventstore.relay."""
import logging
import threading
from contextlib import contextmanager

from celery import shared_task
from redis.exceptions import RedisError

from eventstore.relay import relay_outbox
from eventstore.transports.base import TransportUnavailable
from techbank_site import bootstrap

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def relay_outbox_task() -> int:
    """Runs every second under beat, and right after each command on the Kafka stack.

    One relay at a time (a Redis lock), so the outbox goes out in order.
    """
    lock = bootstrap.relay_lock()
    if not lock.acquire(blocking=False):
        return 0
    try:
        with _renewed(lock):
            return relay_outbox(event_store=bootstrap.event_store(), transport=bootstrap.event_transport())
    except TransportUnavailable as exc:
        logger.warning("Kafka unavailable, events wait in the outbox: %s", exc)
        return 0
    finally:
        lock.release()


@contextmanager
def _renewed(lock):
    """Keep renewing `lock` while the relay runs: it expires soon after the process dies, not before."""
    done = threading.Event()

    def renew():
        while not done.wait(lock.timeout / 3):
            try:
                lock.reacquire()
            except RedisError as exc:  # lost (Redis unreachable for a whole timeout): this batch may go out twice
                logger.warning("could not renew the relay lock: %s", exc)
                return

    renewer = threading.Thread(target=renew, name="relay-lock-renewer", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
