"""Every error a client can cause becomes JSON in one of two documented shapes.

Resource API: {"code", "message"} plus "fields" for validation errors.
techbank API (/api/v1/): {"message"}, as its clients expect.
"""

import logging
from dataclasses import dataclass, field

from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from accounts.domain import errors as domain
from accounts.domain.money import MAX_AMOUNT
from entrypoints.drf.permissions import VIEW_ACCOUNTS
from eventstore.store import ConcurrencyConflict

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5


@dataclass
class ApiError:
    status: int
    code: str
    message: str
    fields: dict = field(default_factory=dict)


def _flatten(detail) -> list[str]:
    if isinstance(detail, dict):
        return [f"{k}: {m}" for k, v in detail.items() for m in _flatten(v)]
    if isinstance(detail, list):
        return [m for item in detail for m in _flatten(item)]
    return [str(detail)]


def _field_errors(detail) -> dict:
    if isinstance(detail, dict):
        return {k: _flatten(v) for k, v in detail.items()}
    return {"non_field_errors": _flatten(detail)}


_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "throttled",
    exceptions.NotFound: "not_found",
}


# What a refusal says to a user who may not look accounts up: the rule, never the
# balance. (The domain's messages may say more; a rule added later says only its code.)
_REFUSALS_WITHOUT_ACCOUNT_STATE = {
    domain.InsufficientFunds: "Insufficient funds for this withdrawal",
    domain.BalanceLimitExceeded: f"This deposit would take the balance past {MAX_AMOUNT:,}",
    domain.AccountAlreadyClosed: "This bank account is already closed",
    domain.AccountIsClosed: "This bank account is closed: no deposits or withdrawals",
}


def _refusal_message(exc: domain.AccountRuleViolation, may_view_accounts: bool) -> str:
    if may_view_accounts:
        return str(exc)
    return next(
        (message for cls, message in _REFUSALS_WITHOUT_ACCOUNT_STATE.items() if isinstance(exc, cls)),
        f"The bank's rules refuse this command on this account ({exc.code})",
    )


def describe(exc: Exception, *, may_view_accounts: bool = False) -> ApiError | None:
    """The client-facing description of `exc`, or None if it is a bug (a 500).

    Refusals tell the account's balance only if `may_view_accounts`.
    """
    if isinstance(exc, domain.InvalidCommand):
        return ApiError(400, exc.code, f"Invalid input: {exc}", {exc.field: [exc.problem]})
    if isinstance(exc, domain.AccountNotFound):
        return ApiError(404, exc.code, str(exc))
    if isinstance(exc, domain.AccountRuleViolation):
        return ApiError(409, exc.code, _refusal_message(exc, may_view_accounts))
    if isinstance(exc, ConcurrencyConflict):
        return ApiError(409, exc.code, "The account is busy with other changes; please retry the request")
    if isinstance(exc, Http404):
        return ApiError(404, "not_found", "Not found")
    if isinstance(exc, exceptions.ValidationError):
        fields = _field_errors(exc.detail)
        return ApiError(400, "validation_error", "Invalid input: " + "; ".join(_flatten(exc.detail)), fields)
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), exc.default_code)
        return ApiError(exc.status_code, code, " ".join(_flatten(exc.detail)))
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database (users, tokens, Idempotency-Key records, read models) is down or unreachable.
        logger.error("database unavailable: %s", exc)
        return ApiError(
            503,
            "service_unavailable",
            "The database is unavailable; please retry shortly (with the same Idempotency-Key, if you sent one).",
        )
    return None


def _headers(exc) -> dict:
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, (OperationalError, InterfaceError)):
        headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return headers


def _with_auth_header(exc, context):
    # DRF sets auth_header on the exception only inside its own handler; do the same.
    request = context.get("request")
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)) and request:
        authenticators = getattr(request, "authenticators", None) or []
        if authenticators:
            exc.auth_header = authenticators[0].authenticate_header(request)


def _may_view_accounts(exc, context) -> bool:
    # Asked only of refusals: other errors (a database down, a bad token) must not touch the user.
    request = context.get("request")
    return isinstance(exc, domain.AccountRuleViolation) and bool(request and request.user.has_perm(VIEW_ACCOUNTS))


def resource_exception_handler(exc, context):
    _with_auth_header(exc, context)
    error = describe(exc, may_view_accounts=_may_view_accounts(exc, context))
    if error is None:
        return None
    body: dict[str, object] = {"code": error.code, "message": error.message}
    if error.status == 400 and error.fields:
        body["fields"] = error.fields
    return Response(body, status=error.status, headers=_headers(exc))


def techbank_exception_handler(exc, context):
    """The techbank API answers rule violations with 400 and a bare message.

    A lost race stays a 409: it is no refusal, the same request may pass on retry.
    """
    _with_auth_header(exc, context)
    error = describe(exc, may_view_accounts=_may_view_accounts(exc, context))
    if error is None:
        return None
    refused = isinstance(exc, domain.AccountRuleViolation)
    code = status.HTTP_400_BAD_REQUEST if refused else error.status
    return Response({"message": error.message}, status=code, headers=_headers(exc))


def bad_request_view(request, exception=None):
    """Requests Django refuses before any view runs (e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    reason = str(exception) if exception else "The request could not be understood."
    return JsonResponse({"code": "bad_request", "message": reason}, status=400)


def not_found_view(request, exception=None):
    return JsonResponse({"code": "not_found", "message": f"No such page: {request.path}"}, status=404)


def server_error_view(request):
    return JsonResponse(
        {"code": "server_error", "message": "Something went wrong on our side; it has been logged."},
        status=500,
    )
