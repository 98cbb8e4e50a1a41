"""Idempotency-Key for every write endpoint: HTTP in front of the idempotency step.

The step (accounts.service_layer.idempotency) decides: run the request once
under its key, give the first answer again, or refuse. This decorator
translates: the header and the request's fingerprint in; a replayed answer
(with Idempotent-Replayed: true), a 409, or the view's own answer out. Answers
that say "retry" (a lost race, a key still in use, a 5xx) are not kept.
"""

import functools
import hashlib

from django.db import InterfaceError, OperationalError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from accounts.service_layer import idempotency
from accounts.service_layer.idempotency import Answer, Outcome, Replayed
from entrypoints.drf.schema import ErrorSerializer
from entrypoints.wiring import services
from eventstore.store import ConcurrencyConflict

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
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


def _replay(answer: Answer) -> Response:
    response = Response(answer.body, status=answer.status, headers=answer.headers)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(view_method):
    """Decorate a DRF view's write method (post/put/delete) to honour Idempotency-Key."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        raw_key = request.headers.get(HEADER)
        if raw_key is None:
            return view_method(self, request, *args, **kwargs)
        key = _clean_key(raw_key)
        fingerprint = _fingerprint(request)  # reads the raw body before DRF parses it

        def run_view() -> Outcome[Response]:
            try:
                response = view_method(self, request, *args, **kwargs)
                transient = False
            except Exception as exc:  # noqa: BLE001 - handle_exception answers or re-raises it
                response = self.handle_exception(exc)  # the documented error answer; re-raised if a bug
                transient = isinstance(exc, TRANSIENT_ERRORS)
            if transient or response.status_code >= 500:
                return Outcome(response, None)
            headers = {h: response[h] for h in REPLAYED_HEADERS if response.has_header(h)}
            return Outcome(response, Answer(response.status_code, response.data, headers))

        try:
            result = services().idempotent_requests.run(request.user, key, fingerprint, run_view)
        except idempotency.IdempotencyKeyReuse:
            raise IdempotencyKeyReuse() from None
        except idempotency.IdempotentRequestInProgress:
            raise IdempotentRequestInProgress() from None
        return _replay(result.answer) if isinstance(result, Replayed) else result

    return extend_schema(parameters=[KEY_PARAMETER], responses={409: ErrorSerializer})(wrapper)
