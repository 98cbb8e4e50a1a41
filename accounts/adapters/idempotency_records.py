"""The idempotency step's records (accounts.service_layer.idempotency) in the Django ORM: IdempotencyRecord."""

import logging
from datetime import datetime

from django.db import DatabaseError, IntegrityError, connection, transaction

from accounts.models import IdempotencyRecord
from accounts.service_layer.idempotency import Answer, IdempotencyRecords, KeyRecord

logger = logging.getLogger(__name__)

Status = IdempotencyRecord.Status


def _key_record(row: IdempotencyRecord) -> KeyRecord:
    answer = (
        Answer(row.response_status, row.response_body, dict(row.response_headers))
        if row.status == Status.DONE and row.response_status is not None
        else None
    )
    return KeyRecord(row.pk, row.request_fingerprint, row.locked_until, answer)


class DjangoIdempotencyRecords(IdempotencyRecords):
    """Owners are Django users; one row per (user, key), unique in the database."""

    def claim(self, owner, key, fingerprint, *, now, lease_until):
        try:
            with transaction.atomic():
                row = IdempotencyRecord.objects.create(
                    user=owner, key=key, request_fingerprint=fingerprint, locked_until=lease_until, created_at=now
                )
        except IntegrityError:
            return None
        return _key_record(row)

    def get(self, owner, key):
        row = IdempotencyRecord.objects.filter(user=owner, key=key).first()
        return None if row is None else _key_record(row)

    def refresh(self, record):
        row = IdempotencyRecord.objects.filter(pk=record.record_id).first()
        return None if row is None else _key_record(row)

    def take_over_if_lapsed(self, record, *, now, lease_until):
        return bool(
            IdempotencyRecord.objects.filter(
                pk=record.record_id, status=Status.IN_PROGRESS, locked_until__lt=now
            ).update(locked_until=lease_until)
        )

    def renew(self, record, *, lease_until):
        try:
            IdempotencyRecord.objects.filter(pk=record.record_id, status=Status.IN_PROGRESS).update(
                locked_until=lease_until
            )
        except DatabaseError as error:  # the next round tries again; the request goes on
            logger.warning("could not renew the Idempotency-Key lease of record %s: %s", record.record_id, error)

    def finish(self, record, answer: Answer) -> None:
        IdempotencyRecord.objects.filter(pk=record.record_id).update(
            status=Status.DONE,
            response_status=answer.status,
            response_body=answer.body,
            response_headers=answer.headers,
        )

    def release(self, record) -> None:
        IdempotencyRecord.objects.filter(pk=record.record_id).delete()

    def forget_expired(self, owner, key, *, created_before: datetime) -> None:
        IdempotencyRecord.objects.filter(user=owner, key=key, created_at__lt=created_before).delete()

    def purge(self, *, created_before: datetime) -> int:
        deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=created_before).delete()
        return deleted

    def release_thread_resources(self) -> None:
        connection.close()  # the renewing thread's own connection
