"""Serializers both apps' resource views share: the account's shape and the error shape."""

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer
from rest_framework import serializers

from accounts.domain.bank_account import ACCOUNT_TYPES
from entrypoints.drf.fields import MoneyField
from projections.models import AccountStatus


class AccountDetailSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    holder = serializers.CharField()
    account_type = serializers.ChoiceField(choices=ACCOUNT_TYPES)
    balance = MoneyField(positive=False, allow_negative=True, help_text='Decimal string, e.g. "125.00".')
    status = serializers.ChoiceField(choices=AccountStatus.values)
    version = serializers.IntegerField(help_text="Version of the last event applied.")
    opened_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class AccountReceiptSerializer(serializers.Serializer):
    """A command's answer to a user who may not look accounts up: nothing of the account's state."""

    id = serializers.UUIDField(help_text="The account's id.")
    operation = serializers.ChoiceField(choices=["open", "deposit", "withdrawal", "close"])
    outcome = serializers.ChoiceField(choices=["completed"])


# The account after the command, to users with projections.view_accountsummary; a receipt to others.
AccountCommandAnswer = PolymorphicProxySerializer(
    component_name="AccountCommandAnswer",
    serializers=[AccountDetailSerializer, AccountReceiptSerializer],
    resource_type_field_name=None,
)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="validation_error, malformed_request, not_found, account_closed, insufficient_funds, "
        "concurrency_conflict, unsupported_media_type, not_authenticated, permission_denied, ..."
    )
    message = serializers.CharField(help_text="What went wrong, for a person to act on.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors by field (400 validation_error only).",
    )


ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, "Bad input"),
    401: OpenApiResponse(ErrorSerializer, "Not authenticated"),
    403: OpenApiResponse(ErrorSerializer, "Lacks the route's permission"),
    404: OpenApiResponse(ErrorSerializer, "Unknown account"),
    409: OpenApiResponse(ErrorSerializer, "Refused by a rule or a conflict"),
    415: OpenApiResponse(ErrorSerializer, "Body is not JSON"),
    429: OpenApiResponse(ErrorSerializer, "Too many failed sign-ins from this address (Retry-After)"),
}
