"""Celery tasks: thin, the work is in the service layers.

- `relay_outbox_task`: a one-off relay run (eventstore.relay). The relay that
  follows the outbox (`manage.py relay_outbox --follow`, which the worker runs
  beside itself: entrypoints/worker.py) holds the lock while it runs, so this
  task then does nothing. It is on beat's schedule as a safety net, for a
  worker whose follower is not running.
- `consume_events_task`: a bounded run of the projection consumer
  (projections.consumer). Not on beat's schedule: the worker's continuous
  consumer (`run_projection_consumer`) keeps the read model's lag low; this is
  for a worker without it, or a one-off catch-up.
- `rebuild_read_model_task`: a rebuild job that POST /api/rebuilds/ started.
- `purge_idempotency_records_task`: hourly under beat.

Each worker process gets its own services (connections are not shared across
the fork): they are installed when the process starts.
"""

import logging
import os
import socket
import time
from uuid import UUID

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown
from django.conf import settings

from bootstrap import bootstrap
from entrypoints.wiring import install, services
from eventstore.relay import RelayLockLost, RelayLockNotTaken, holding, relay_outbox
from eventstore.transports.base import EventSubscription, TransportUnavailable
from projections.consumer import consume_batch
from projections.rebuild import rebuild_job_run

logger = logging.getLogger(__name__)


@worker_process_init.connect
def _install_this_process_services(**kwargs):
    install(bootstrap())


@shared_task(ignore_result=True)
def relay_outbox_task() -> int:
    """Relay the whole outbox once, unless another relay holds the lock (then return 0 at once)."""
    bank = services()
    transport = bank.transport
    lock = bank.relay_lock(transport)
    try:
        with holding(lock):
            return relay_outbox(
                event_store=bank.event_store, transport=transport, lock=lock, batch_size=settings.TECHBANK_RELAY_BATCH
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


def projection_member_id() -> str:
    """Stable across restarts (host + pool slot), for static group membership."""
    from billiard.process import current_process

    index = getattr(current_process(), "index", None)
    return f"{socket.gethostname()}-projector-{index if index is not None else os.getpid()}"


class _ProcessSubscription:
    """This worker process's member of the projection group, kept between task runs (no rebalance at each)."""

    def __init__(self) -> None:
        self._subscription: EventSubscription | None = None

    def get(self) -> EventSubscription:
        if self._subscription is None:
            self._subscription = services().transport.subscribe(
                settings.TECHBANK_KAFKA_GROUP, member_id=projection_member_id()
            )
        return self._subscription

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None


projection_subscription = _ProcessSubscription()


@shared_task(ignore_result=True)
def consume_events_task(seconds: float = 5.0) -> int:
    """Consume for about `seconds` (at least one batch, however short), then return.

    Each worker process keeps its own group member between runs, so the
    group does not rebalance every time the task starts.
    """
    store = services().event_store
    applied = 0
    deadline = time.monotonic() + seconds
    try:
        while True:  # one batch at least: a run that started late on a busy machine still does some work
            subscription = projection_subscription.get()
            applied += consume_batch(subscription=subscription, event_store=store, timeout_ms=500).applied
            if time.monotonic() >= deadline:
                break
    except TransportUnavailable as exc:
        # Uncommitted messages come back to the next member; start afresh next run.
        logger.warning("Kafka unavailable, the read model waits: %s", exc)
        projection_subscription.close()
    return applied


@worker_process_shutdown.connect
def _leave_group(**kwargs):
    projection_subscription.close()


@shared_task(ignore_result=True)
def rebuild_read_model_task(job_id: str) -> None:
    """Run a rebuild job that POST /api/rebuilds/ started (projections.rebuild)."""
    rebuild_job_run(job_id=UUID(job_id), event_store=services().event_store)


@shared_task(ignore_result=True)
def purge_idempotency_records_task() -> int:
    """Hourly under beat: forget Idempotency-Keys older than their time to live."""
    return services().idempotent_requests.purge_expired()
