"""Celery entry point for the projection consumer: thin, the work is in projections.consumer."""
import logging
import time

from celery import shared_task
from celery.signals import worker_process_shutdown

from projections.consumer import consume_batch
from techbank_site import bootstrap

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def consume_events_task(seconds: float = 5.0) -> int:
    """Consume for about `seconds`, then return; beat starts it again.

    Each worker process keeps its own group member between runs, so the
    group does not rebalance every time the task starts.
    """
    subscription = bootstrap.projection_subscription()
    store = bootstrap.event_store()
    applied = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        applied += consume_batch(subscription=subscription, event_store=store, timeout_ms=500).applied
    return applied


@worker_process_shutdown.connect
def _leave_group(**kwargs):
    bootstrap.close_projection_subscription()
