"""Idempotency-Key for every write endpoint: a retried request has no second effect.

The first request under a key claims a record (unique per user and key) and,
when it is done, stores its answer there; the same key with the same request
gets that answer again. While the first is still running, a retry waits for
it. If the process died mid-request, its claim lapses and a retry runs the
command again: the events carry the key, so the command finds its own earlier
effect in the account's stream and does not repeat it (accounts.service_layer.handlers).
The same key with a different request is refused: 409 idempotency_key_reuse.
Answers that say "retry" (a lost race, a key still in use, a 5xx) are not
kept: the key is freed, so a retry with it runs the request.
"""

import contextlib
import functools
import hashlib
import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from accounts.models import IdempotencyRecord
from entrypoints.drf.schema import ErrorSerializer
from eventstore.store import ConcurrencyConflict

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# How long a request holds its key without renewing it; a retry may take over
# a claim whose lease lapsed (its process died). A live request renews it
# every third of LEASE, however long it runs.
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


# Answers that tell the client to retry: a retry with the same key must run the request again.
TRANSIENT_ERRORS = (ConcurrencyConflict, IdempotentRequestInProgress, OperationalError, InterfaceError)


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


def _wait_for(record: IdempotencyRecord) -> IdempotencyRecord | None:
    """The record once its request is done, lapsed, or WAIT_SECONDS passed; None if it was freed."""
    deadline = time.monotonic() + WAIT_SECONDS
    while record.status == IdempotencyRecord.Status.IN_PROGRESS and time.monotonic() < deadline:
        if record.locked_until < timezone.now():
            return record
        time.sleep(0.05)
        try:
            record.refresh_from_db()
        except IdempotencyRecord.DoesNotExist:
            return None  # its request gave a transient answer and freed the key
    return record


def _renew_lease(record_pk: int, stop: threading.Event) -> None:
    try:
        while not stop.wait(LEASE.total_seconds() / 3):
            try:
                IdempotencyRecord.objects.filter(pk=record_pk, status=IdempotencyRecord.Status.IN_PROGRESS).update(
                    locked_until=timezone.now() + LEASE
                )
            except DatabaseError as error:  # the next round tries again; the request goes on
                logger.warning("could not renew the Idempotency-Key lease of record %s: %s", record_pk, error)
    finally:
        connection.close()  # this thread's own connection


@contextlib.contextmanager
def _lease_renewed(record: IdempotencyRecord):
    """Keeps renewing the claim on the key while the request runs, so no retry takes over a live request."""
    stop = threading.Event()
    renewer = threading.Thread(target=_renew_lease, args=(record.pk, stop), name=f"lease-{record.pk}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()


def _holding_the_key(request, key: str, fingerprint: str) -> IdempotencyRecord | Response:
    """Claims the key for this request, or answers it: the first answer again, or a 409."""
    record: IdempotencyRecord | None
    while True:
        record, claimed = _claim(request.user, key, fingerprint)
        if claimed:
            return record
        if record.request_fingerprint != fingerprint:
            raise IdempotencyKeyReuse()
        record = _wait_for(record)
        if record is None:
            continue  # freed meanwhile: claim it
        if record.status == IdempotencyRecord.Status.DONE:
            return _replay(record)
        if _take_over_if_lapsed(record):
            return record
        raise IdempotentRequestInProgress()


def idempotent(view_method):
    """Decorate a DRF view's write method (post/put/delete) to honour Idempotency-Key."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        raw_key = request.headers.get(HEADER)
        if raw_key is None:
            return view_method(self, request, *args, **kwargs)
        key = _clean_key(raw_key)
        fingerprint = _fingerprint(request)  # reads the raw body before DRF parses it
        held = _holding_the_key(request, key, fingerprint)
        if isinstance(held, Response):
            return held
        record = held
        try:
            with _lease_renewed(record):
                try:
                    response = view_method(self, request, *args, **kwargs)
                    transient = False
                except Exception as exc:  # noqa: BLE001 - handle_exception answers or re-raises it
                    response = self.handle_exception(exc)  # the documented error answer; re-raised if a bug
                    transient = isinstance(exc, TRANSIENT_ERRORS)
        except BaseException:
            record.delete()  # a bug is not an answer: let a retry run again
            raise
        if transient or response.status_code >= 500:
            record.delete()  # "retry" is not a final answer: let the retry run again
            return response
        record.status = IdempotencyRecord.Status.DONE
        record.response_status = response.status_code
        record.response_body = response.data
        record.response_headers = {h: response[h] for h in REPLAYED_HEADERS if response.has_header(h)}
        record.save()
        return response

    return extend_schema(parameters=[KEY_PARAMETER], responses={409: ErrorSerializer})(wrapper)
