"""Idempotency-Key for every write endpoint: a retried request has no second effect.

The first request under a key claims a record (unique per user and key) and,
when it is done, stores its answer there; the same key with the same request
gets that answer again. While the first is still running, a retry waits for
it. If the process died mid-request, its claim lapses and a retry runs the
command again: the events carry the key, so the command finds its own earlier
effect in the account's stream and does not repeat it (accounts.service_layer.handlers).
The same key with a different request is refused: 409 idempotency_key_reuse.
"""
import functools
import hashlib
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from accounts.models import IdempotencyRecord
from techbank_site.api.schema import ErrorSerializer

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# How long a request may hold its key before a retry may take over (it died).
LEASE = timedelta(seconds=30)
# How long a retry waits for the first request under its key to finish.
WAIT_SECONDS = 10
REPLAYED_HEADERS = ("Location",)
KEY_PARAMETER = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (e.g. a UUID) per intended operation: a retry with the same key and "
    "request gets the first answer again (header Idempotent-Replayed: true) without a second effect.",
)


class IdempotencyKeyReuse(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_key_reuse"
    default_detail = "This Idempotency-Key was already used for a different request; use a new key."


class IdempotentRequestInProgress(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_request_in_progress"
    default_detail = "The first request with this Idempotency-Key is still being processed; retry shortly."


def _fingerprint(request) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), request.body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _clean_key(raw: str) -> str:
    if not (0 < len(raw) <= MAX_KEY_LENGTH) or not raw.isprintable():
        raise ValidationError({HEADER: [f"must be 1 to {MAX_KEY_LENGTH} printable characters"]})
    return raw


def _ttl() -> timedelta:
    return timedelta(hours=settings.TECHBANK_IDEMPOTENCY_TTL_HOURS)


def purge_expired_records() -> int:
    """Forget every key older than its time to live; returns how many."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - _ttl()).delete()
    return deleted


def _claim(user, key: str, fingerprint: str) -> tuple[IdempotencyRecord, bool]:
    """(record, True) if this request now holds the key; (existing record, False) if not."""
    now = timezone.now()
    IdempotencyRecord.objects.filter(user=user, key=key, created_at__lt=now - _ttl()).delete()
    try:
        with transaction.atomic():
            return (
                IdempotencyRecord.objects.create(
                    user=user, key=key, request_fingerprint=fingerprint, locked_until=now + LEASE, created_at=now
                ),
                True,
            )
    except IntegrityError:
        return IdempotencyRecord.objects.get(user=user, key=key), False


def _take_over_if_lapsed(record: IdempotencyRecord) -> bool:
    """Claim an in-progress record whose holder stopped renewing it (it died)."""
    now = timezone.now()
    return bool(
        IdempotencyRecord.objects.filter(
            pk=record.pk, status=IdempotencyRecord.Status.IN_PROGRESS, locked_until__lt=now
        ).update(locked_until=now + LEASE)
    )


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(record.response_body, status=record.response_status, headers=record.response_headers)
    response["Idempotent-Replayed"] = "true"
    return response


def _wait_for(record: IdempotencyRecord) -> IdempotencyRecord:
    deadline = time.monotonic() + WAIT_SECONDS
    while record.status == IdempotencyRecord.Status.IN_PROGRESS and time.monotonic() < deadline:
        if record.locked_until < timezone.now():
            return record
        time.sleep(0.05)
        record.refresh_from_db()
    return record


def idempotent(view_method):
    """Decorate a DRF view's write method (post/put/delete) to honour Idempotency-Key."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        raw_key = request.headers.get(HEADER)
        if raw_key is None:
            return view_method(self, request, *args, **kwargs)
        key = _clean_key(raw_key)
        fingerprint = _fingerprint(request)  # reads the raw body before DRF parses it
        record, claimed = _claim(request.user, key, fingerprint)
        if not claimed:
            if record.request_fingerprint != fingerprint:
                raise IdempotencyKeyReuse()
            record = _wait_for(record)
            if record.status == IdempotencyRecord.Status.DONE:
                return _replay(record)
            if not _take_over_if_lapsed(record):
                raise IdempotentRequestInProgress()
        try:
            try:
                response = view_method(self, request, *args, **kwargs)
            except Exception as exc:
                response = self.handle_exception(exc)  # the documented error answer; re-raised if a bug
        except BaseException:
            record.delete()  # a bug is not an answer: let a retry run again
            raise
        if response.status_code >= 500:
            record.delete()  # a server error is not an answer: let a retry run again
            return response
        record.status = IdempotencyRecord.Status.DONE
        record.response_status = response.status_code
        record.response_body = response.data
        record.response_headers = {h: response[h] for h in REPLAYED_HEADERS if response.has_header(h)}
        record.save()
        return response

    return extend_schema(parameters=[KEY_PARAMETER], responses={409: ErrorSerializer})(wrapper)
