"""The techbank course API's query routes (and restoreReadDb), kept route for route."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.domain.errors import InvalidAmount
from accounts.domain.money import to_money
from entrypoints.api.rebuilds import RebuildInProgress
from entrypoints.api.techbank_commands import TECHBANK_ERROR_RESPONSES, MessageSerializer, TechbankApi
from entrypoints.drf.fields import parse_account_id
from entrypoints.drf.idempotency import idempotent
from entrypoints.drf.permissions import REBUILD_READ_MODEL, VIEW_ACCOUNTS, requires
from entrypoints.wiring import services
from projections import selectors
from projections.rebuild import RebuildAlreadyRunning, rebuild_read_model


class TechbankAccountSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    accountHolder = serializers.CharField(source="holder")
    creationDate = serializers.DateTimeField(source="opened_at")
    accountType = serializers.CharField(source="account_type")
    # techbank clients expect a JSON number; two-place decimals up to 15 digits
    # survive the trip through a double exactly.
    balance = serializers.DecimalField(max_digits=15, decimal_places=2, coerce_to_string=False)


LookupResponse = inline_serializer(
    "TechbankLookup", {"message": serializers.CharField(), "accounts": TechbankAccountSerializer(many=True)}
)


class _LookupApi(TechbankApi):
    permission_classes = requires(VIEW_ACCOUNTS)

    def _answer(self, accounts) -> Response:
        accounts = list(accounts)
        if not accounts:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(
            {
                "message": f"Successfully returned {len(accounts)} bank account(s)!",
                "accounts": TechbankAccountSerializer(accounts, many=True).data,
            }
        )


_lookup_schema = extend_schema(
    tags=["techbank API"], responses={200: LookupResponse, 204: None, **TECHBANK_ERROR_RESPONSES}
)


class AllAccountsLookupApi(_LookupApi):
    @_lookup_schema
    def get(self, request):
        return self._answer(selectors.open_account_list())


class AccountByIdLookupApi(_LookupApi):
    @_lookup_schema
    def get(self, request, account_id: str):
        return self._answer(selectors.open_account_list().filter(id=parse_account_id(account_id)))


class AccountsByHolderLookupApi(_LookupApi):
    @_lookup_schema
    def get(self, request, holder: str):
        return self._answer(selectors.open_account_list(holder=holder))


class AccountsWithBalanceLookupApi(_LookupApi):
    COMPARISONS = {"GREATER_THAN": "balance_gt", "LESS_THAN": "balance_lt"}

    @_lookup_schema
    def get(self, request, equality_type: str, balance: str):
        if equality_type not in self.COMPARISONS:
            raise serializers.ValidationError(
                {"equalityType": [f"must be GREATER_THAN or LESS_THAN, not {equality_type!r}"]}
            )
        try:
            amount = to_money(balance, field="balance")
        except InvalidAmount as exc:
            raise serializers.ValidationError({"balance": [exc.problem]}) from None
        return self._answer(selectors.open_account_list(**{self.COMPARISONS[equality_type]: amount}))


class RestoreReadDbApi(TechbankApi):
    """Rebuilds the read model (blue/green, projections.rebuild) and answers when it is done, as techbank did.

    The rebuild runs in this request, in short transactions: commands and the
    live projection go on meanwhile. A large store is better rebuilt as a
    job (POST /api/rebuilds/) or with `manage.py rebuild_read_model`, which a
    proxy's request timeout cannot cut short.
    """

    permission_classes = requires(REBUILD_READ_MODEL)

    @extend_schema(
        tags=["techbank API"],
        request=None,
        responses={
            201: MessageSerializer,
            **TECHBANK_ERROR_RESPONSES,
            409: OpenApiResponse(
                MessageSerializer, "A rebuild is already running, or Idempotency-Key reused or still in progress"
            ),
        },
        description="Rebuilds the read database from the event store; answers when it is done. "
        "409 if a rebuild is already running.",
    )
    @idempotent
    def post(self, request):
        try:
            rebuild_read_model(event_store=services().event_store, requested_by=request.user.get_username())
        except RebuildAlreadyRunning as running:
            raise RebuildInProgress(str(running)) from None
        return Response(
            {"message": "Read database restore request completed successfully!"}, status=status.HTTP_201_CREATED
        )
