"""Serializer pieces shared by both APIs."""

import uuid
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.domain.bank_account import clean_holder
from accounts.domain.commands import CommandMetadata
from accounts.domain.errors import AccountNotFound, InvalidCommand
from accounts.domain.money import positive_money, to_money
from entrypoints.wiring import services


@extend_schema_field(
    {"type": "string", "format": "decimal", "pattern": r"^-?\d{1,13}(\.\d{1,2})?$", "example": "125.00"}
)
class MoneyField(serializers.Field):
    """Accepts a JSON number or a decimal string; the domain's money rules decide."""

    default_error_messages = {"type": 'must be a number or a decimal string such as "125.00"'}

    def __init__(self, *, positive: bool = True, allow_negative: bool = False, **kwargs):
        self.positive = positive
        self.allow_negative = allow_negative
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, (Decimal, int, str)):
            self.fail("type")
        try:
            amount = positive_money(data) if self.positive else to_money(data)
        except InvalidCommand as exc:
            raise serializers.ValidationError(exc.problem) from None
        if amount < 0 and not (self.positive or self.allow_negative):
            raise serializers.ValidationError("must not be negative")
        return amount

    def to_representation(self, value):
        return f"{value:.2f}"


@extend_schema_field({"type": "number", "example": 125.0})
class TechbankMoneyField(MoneyField):
    """The techbank API's money: a JSON number on the wire, exact once parsed."""


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 255, "example": "Ada Lovelace"})
class HolderField(serializers.Field):
    """The domain's holder rules (trimmed, 1 to 255 characters, no control characters)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string")
        try:
            return clean_holder(data)
        except InvalidCommand as exc:
            raise serializers.ValidationError(exc.problem) from None

    def to_representation(self, value):
        return value


class StrictInputSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is not silently ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["is not an accepted field"] for name in unknown})
        return super().to_internal_value(data)


def parse_account_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise AccountNotFound(f"No bank account with id {value!r}: account ids are UUIDs") from None


def correlation_id(request) -> str:
    """The client's X-Correlation-ID if it is sane, else a fresh one."""
    given = request.headers.get("X-Correlation-ID", "")
    if 0 < len(given) <= 100 and given.isprintable():
        return given
    return str(uuid.uuid4())


def command_metadata(request) -> CommandMetadata:
    return CommandMetadata(
        issued_by=request.user.get_username(),
        correlation_id=correlation_id(request),
        # Already checked by entrypoints.drf.idempotency on every write endpoint.
        idempotency_key=request.headers.get("Idempotency-Key", ""),
        idempotent_since=timezone.now() - services().idempotency_ttl,
    )
