"""The resource API's command side: /api/accounts/ and its actions."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.domain import commands
from accounts.domain.bank_account import ACCOUNT_TYPES, BankAccount
from entrypoints.drf.fields import (
    HolderField,
    MoneyField,
    StrictInputSerializer,
    command_metadata,
    parse_account_id,
)
from entrypoints.drf.idempotency import idempotent
from entrypoints.drf.permissions import CLOSE_ACCOUNT, MOVE_MONEY, OPEN_ACCOUNT, VIEW_ACCOUNTS, requires
from entrypoints.drf.schema import (
    ERROR_RESPONSES,
    AccountCommandAnswer,
    AccountDetailSerializer,
    AccountReceiptSerializer,
)
from entrypoints.wiring import services


def account_detail(account: BankAccount) -> dict:
    """The account as the command left it (independent of read-model lag)."""
    return AccountDetailSerializer(
        {
            "id": account.id,
            "holder": account.holder,
            "account_type": account.account_type,
            "balance": account.balance,
            "status": "CLOSED" if account.is_closed else "OPEN",
            "version": account.version,
            "opened_at": account.opened_at,
            "closed_at": account.closed_at,
        }
    ).data


def command_answer(request, account: BankAccount, operation: str) -> dict:
    """The account after the command, or only a receipt for a user who may not look accounts up."""
    if request.user.has_perm(VIEW_ACCOUNTS):
        return account_detail(account)
    return AccountReceiptSerializer({"id": account.id, "operation": operation, "outcome": "completed"}).data


class AmountSerializer(StrictInputSerializer):
    amount = MoneyField(help_text='A positive amount with at most 2 decimals, e.g. "125.00".')


class AccountOpenApi(APIView):
    permission_classes = requires(OPEN_ACCOUNT)

    class OpenInputSerializer(StrictInputSerializer):
        holder = HolderField()
        account_type = serializers.ChoiceField(choices=ACCOUNT_TYPES)
        opening_balance = MoneyField(positive=False)

    @extend_schema(
        tags=["accounts"],
        operation_id="accounts_open",
        request=OpenInputSerializer,
        responses={201: AccountCommandAnswer, **ERROR_RESPONSES},
    )
    @idempotent
    def post(self, request):
        serializer = self.OpenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = services().bus.handle(
            commands.OpenAccount(**serializer.validated_data, metadata=command_metadata(request))
        )
        location = request.build_absolute_uri(reverse("account-detail", args=[account.id]))
        return Response(
            command_answer(request, account, "open"), status=status.HTTP_201_CREATED, headers={"Location": location}
        )


class _AccountCommandApi(APIView):
    operation: str

    def _handle(self, request, command) -> Response:
        return Response(command_answer(request, services().bus.handle(command), self.operation))


class _MoneyMovementApi(_AccountCommandApi):
    permission_classes = requires(MOVE_MONEY)
    command_class: type[commands.DepositFunds] | type[commands.WithdrawFunds]

    @extend_schema(
        tags=["accounts"], request=AmountSerializer, responses={200: AccountCommandAnswer, **ERROR_RESPONSES}
    )
    @idempotent
    def post(self, request, account_id: str):
        serializer = AmountSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._handle(
            request,
            self.command_class(
                account_id=parse_account_id(account_id),
                amount=serializer.validated_data["amount"],
                metadata=command_metadata(request),
            ),
        )


class AccountDepositApi(_MoneyMovementApi):
    """Deposit funds; answers with the account after the deposit (to those who may look accounts up)."""

    command_class = commands.DepositFunds
    operation = "deposit"


class AccountWithdrawApi(_MoneyMovementApi):
    """Withdraw funds; answers with the account after the withdrawal (to those who may look accounts up)."""

    command_class = commands.WithdrawFunds
    operation = "withdrawal"


class AccountCloseApi(_AccountCommandApi):
    permission_classes = requires(CLOSE_ACCOUNT)
    operation = "close"

    @extend_schema(tags=["accounts"], request=None, responses={200: AccountCommandAnswer, **ERROR_RESPONSES})
    @idempotent
    def post(self, request, account_id: str):
        """Close the account; no money moves in or out afterwards."""
        command = commands.CloseAccount(account_id=parse_account_id(account_id), metadata=command_metadata(request))
        return self._handle(request, command)
