"""Celery entry point for a one-off relay run: thin, the work is in eventstore.relay.

The relay that follows the outbox (`manage.py relay_outbox --follow`, which the
Celery worker runs beside itself: techbank_site/celery.py) holds the lock
while it runs, so this task then does nothing. It is on beat's schedule as a
safety net, for a worker whose follower is not running.
"""

import logging

from celery import shared_task
from django.conf import settings

from eventstore.relay import RelayLockLost, RelayLockNotTaken, holding, relay_outbox
from eventstore.transports.base import TransportUnavailable
from techbank_site import bootstrap

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def relay_outbox_task() -> int:
    """Relay the whole outbox once, unless another relay holds the lock (then return 0 at once)."""
    transport = bootstrap.event_transport()
    lock = bootstrap.relay_lock(transport)
    try:
        with holding(lock):
            return relay_outbox(
                event_store=bootstrap.event_store(),
                transport=transport,
                lock=lock,
                batch_size=settings.TECHBANK_RELAY_BATCH,
            )
    except RelayLockNotTaken as exc:
        logger.debug("relay task not run: %s", exc)
        return 0
    except RelayLockLost as exc:
        logger.warning("%s; the rest of the outbox is left to the relay that holds it", exc)
        return 0
    except TransportUnavailable as exc:
        logger.warning("Kafka unavailable, events wait in the outbox: %s", exc)
        return 0
