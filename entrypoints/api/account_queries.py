"""The resource API's query side: list, detail, events and ledger of accounts."""

from uuid import UUID

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.domain.bank_account import ACCOUNT_TYPES
from accounts.domain.errors import AccountNotFound
from entrypoints.drf.fields import MoneyField, StrictInputSerializer, parse_account_id
from entrypoints.drf.permissions import VIEW_ACCOUNTS, requires
from entrypoints.drf.schema import ERROR_RESPONSES, AccountDetailSerializer
from entrypoints.wiring import services
from eventstore.paging import StreamEvents
from projections import selectors
from projections.models import AccountStatus


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    invalid_page_message = "No page {page_number}: {message}"


class PageSerializer(StrictInputSerializer):
    """The query of a paginated route: a bad page or page size is a 400 (DRF alone answers
    404 for one and silently uses the default for the other)."""

    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=Pagination.max_page_size, required=False)


def _validated_query(request, serializer_class: type[serializers.Serializer]) -> dict:
    query = serializer_class(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return query.validated_data


def _paginated(request, view, queryset, serializer_class) -> Response:
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _existing_account_id(text: str) -> UUID:
    account_id = parse_account_id(text)
    if selectors.account_get(account_id=account_id) is None:
        raise AccountNotFound(f"No bank account with id {account_id}")
    return account_id


class AccountListApi(APIView):
    permission_classes = requires(VIEW_ACCOUNTS)
    pagination_class = Pagination  # also tells the schema that answers are pages

    class FilterSerializer(PageSerializer):
        holder = serializers.CharField(required=False)
        account_type = serializers.ChoiceField(choices=ACCOUNT_TYPES, required=False)
        status = serializers.ChoiceField(choices=AccountStatus.values, required=False)
        balance_gt = MoneyField(positive=False, allow_negative=True, required=False)
        balance_lt = MoneyField(positive=False, allow_negative=True, required=False)

    @extend_schema(
        tags=["accounts"],
        operation_id="accounts_list",
        parameters=[FilterSerializer],
        responses={200: AccountDetailSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        """Accounts, open and closed, filtered and paginated."""
        filters = _validated_query(request, AccountListApi.FilterSerializer)
        criteria = {k: v for k, v in filters.items() if k not in ("page", "page_size")}
        return _paginated(request, self, selectors.account_list(**criteria), AccountDetailSerializer)


class AccountDetailApi(APIView):
    permission_classes = requires(VIEW_ACCOUNTS)

    @extend_schema(tags=["accounts"], responses={200: AccountDetailSerializer, **ERROR_RESPONSES})
    def get(self, request, account_id: str):
        account = selectors.account_get(account_id=parse_account_id(account_id))
        if account is None:
            raise AccountNotFound(f"No bank account with id {account_id}")
        return Response(AccountDetailSerializer(account).data)


class StoredEventSerializer(serializers.Serializer):
    event_id = serializers.UUIDField()
    event_type = serializers.CharField()
    version = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    data = serializers.DictField()
    metadata = serializers.DictField()


class AccountEventsApi(APIView):
    permission_classes = requires(VIEW_ACCOUNTS)
    pagination_class = Pagination

    @extend_schema(
        tags=["accounts"],
        parameters=[PageSerializer],
        responses={200: StoredEventSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request, account_id: str):
        """The account's event stream, straight from the event store, in version order."""
        _validated_query(request, PageSerializer)
        # Read a page at a time: a long stream is never loaded whole for one page.
        events = StreamEvents(services().event_store, str(parse_account_id(account_id)))
        if not events:
            raise AccountNotFound(f"No bank account with id {account_id}")
        return _paginated(request, self, events, StoredEventSerializer)


class LedgerEntrySerializer(serializers.Serializer):
    version = serializers.IntegerField()
    kind = serializers.CharField()
    amount = MoneyField(positive=False)
    balance_after = MoneyField(positive=False, allow_negative=True)
    occurred_at = serializers.DateTimeField()
    event_id = serializers.UUIDField()


class AccountTransactionsApi(APIView):
    permission_classes = requires(VIEW_ACCOUNTS)
    pagination_class = Pagination

    @extend_schema(
        tags=["accounts"],
        parameters=[PageSerializer],
        responses={200: LedgerEntrySerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request, account_id: str):
        """The account's ledger: every movement with the balance after it."""
        _validated_query(request, PageSerializer)
        existing = _existing_account_id(account_id)
        return _paginated(request, self, selectors.ledger_list(account_id=existing), LedgerEntrySerializer)
