"""Celery entry points of the command side: thin, the work is in techbank_site.api.idempotency."""

from celery import shared_task

from techbank_site.api.idempotency import purge_expired_records


@shared_task(ignore_result=True)
def purge_idempotency_records_task() -> int:
    """Hourly under beat: forget Idempotency-Keys older than their time to live."""
    return purge_expired_records()
