"""The techbank course API's command routes, kept route for route."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.domain import commands
from accounts.domain.bank_account import ACCOUNT_TYPES
from entrypoints.drf.errors import techbank_exception_handler
from entrypoints.drf.fields import (
    HolderField,
    StrictInputSerializer,
    TechbankMoneyField,
    command_metadata,
    parse_account_id,
)
from entrypoints.drf.idempotency import idempotent
from entrypoints.drf.permissions import CLOSE_ACCOUNT, MOVE_MONEY, OPEN_ACCOUNT, requires
from entrypoints.wiring import services

MessageSerializer = inline_serializer("TechbankMessage", {"message": serializers.CharField()})
# Every techbank route answers its errors as {"message"} (README, "The techbank API").
TECHBANK_ERROR_RESPONSES = {
    400: OpenApiResponse(MessageSerializer, "Bad input, or a command the bank's rules refuse"),
    401: OpenApiResponse(MessageSerializer, "Not authenticated"),
    403: OpenApiResponse(MessageSerializer, "Lacks the permission"),
    404: OpenApiResponse(MessageSerializer, "Unknown account (ids are UUIDs)"),
    409: OpenApiResponse(
        MessageSerializer,
        "Idempotency-Key reused for another request, or still in progress; or the account was too busy: retry",
    ),
    415: OpenApiResponse(MessageSerializer, "Body is not JSON"),
    429: OpenApiResponse(MessageSerializer, "Too many failed sign-ins from this address (Retry-After)"),
}


class TechbankApi(APIView):
    """Errors here are {"message"}, with 400 for any refused command, as in techbank."""

    def get_exception_handler(self):
        return techbank_exception_handler


def _message(text: str, code: int = status.HTTP_200_OK, **extra) -> Response:
    return Response({"message": text, **extra}, status=code)


class TechbankAmountSerializer(StrictInputSerializer):
    amount = TechbankMoneyField()


class OpenBankAccountApi(TechbankApi):
    permission_classes = requires(OPEN_ACCOUNT)

    class InputSerializer(StrictInputSerializer):
        accountHolder = HolderField()
        accountType = serializers.ChoiceField(choices=ACCOUNT_TYPES)
        openingBalance = TechbankMoneyField(positive=False)

    @extend_schema(
        tags=["techbank API"],
        request=InputSerializer,
        responses={
            201: inline_serializer(
                "TechbankOpened", {"message": serializers.CharField(), "id": serializers.UUIDField()}
            ),
            **TECHBANK_ERROR_RESPONSES,
        },
    )
    @idempotent
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        account = services().bus.handle(
            commands.OpenAccount(
                holder=data["accountHolder"],
                account_type=data["accountType"],
                opening_balance=data["openingBalance"],
                metadata=command_metadata(request),
            )
        )
        return _message(
            "Bank account creation request completed successfully!", status.HTTP_201_CREATED, id=str(account.id)
        )


class _MoneyMovementApi(TechbankApi):
    permission_classes = requires(MOVE_MONEY)
    command_class: type[commands.DepositFunds] | type[commands.WithdrawFunds]
    success_message: str

    @extend_schema(
        tags=["techbank API"],
        request=TechbankAmountSerializer,
        responses={200: MessageSerializer, **TECHBANK_ERROR_RESPONSES},
    )
    @idempotent
    def put(self, request, account_id: str):
        serializer = TechbankAmountSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services().bus.handle(
            self.command_class(
                account_id=parse_account_id(account_id),
                amount=serializer.validated_data["amount"],
                metadata=command_metadata(request),
            )
        )
        return _message(self.success_message)


class DepositFundsApi(_MoneyMovementApi):
    command_class = commands.DepositFunds
    success_message = "Deposit funds request completed successfully!"


class WithdrawFundsApi(_MoneyMovementApi):
    command_class = commands.WithdrawFunds
    success_message = "Withdraw funds request completed successfully!"


class CloseBankAccountApi(TechbankApi):
    permission_classes = requires(CLOSE_ACCOUNT)

    @extend_schema(tags=["techbank API"], request=None, responses={200: MessageSerializer, **TECHBANK_ERROR_RESPONSES})
    @idempotent
    def delete(self, request, account_id: str):
        services().bus.handle(
            commands.CloseAccount(account_id=parse_account_id(account_id), metadata=command_metadata(request))
        )
        return _message("Bank account closure request successfully completed!")
