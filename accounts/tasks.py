"""Celery entry points of the command side: thin, the work is in accounts.service_layer.idempotency."""

from celery import shared_task

from techbank_site import bootstrap


@shared_task(ignore_result=True)
def purge_idempotency_records_task() -> int:
    """Hourly under beat: forget Idempotency-Keys older than their time to live."""
    return bootstrap.idempotent_requests().purge_expired()
