"""Celery entry point for a bounded run of the projection consumer: thin, the work is in projections.consumer.

Not on beat's schedule: the worker runs the continuous consumer (`run_projection_consumer`)
beside itself (techbank_site/celery.py), which is what keeps the read model's lag low. This
task is for a worker without it, or a one-off catch-up.
"""

import logging
import time
from uuid import UUID

from celery import shared_task
from celery.signals import worker_process_shutdown

from eventstore.transports.base import TransportUnavailable
from projections.consumer import consume_batch
from projections.rebuild import rebuild_job_run
from techbank_site import bootstrap

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def consume_events_task(seconds: float = 5.0) -> int:
    """Consume for about `seconds` (at least one batch, however short), then return.

    Each worker process keeps its own group member between runs, so the
    group does not rebalance every time the task starts.
    """
    store = bootstrap.event_store()
    applied = 0
    deadline = time.monotonic() + seconds
    try:
        while True:  # one batch at least: a run that started late on a busy machine still does some work
            subscription = bootstrap.projection_subscription()
            applied += consume_batch(subscription=subscription, event_store=store, timeout_ms=500).applied
            if time.monotonic() >= deadline:
                break
    except TransportUnavailable as exc:
        # Uncommitted messages come back to the next member; start afresh next run.
        logger.warning("Kafka unavailable, the read model waits: %s", exc)
        bootstrap.close_projection_subscription()
    return applied


@shared_task(ignore_result=True)
def rebuild_read_model_task(job_id: str) -> None:
    """Run a rebuild job that POST /api/rebuilds/ started (projections.rebuild)."""
    rebuild_job_run(job_id=UUID(job_id), event_store=bootstrap.event_store())


@worker_process_shutdown.connect
def _leave_group(**kwargs):
    bootstrap.close_projection_subscription()
