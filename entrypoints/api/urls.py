"""The API's routes: the techbank course project's, route for route (/api/v1/), and the resource API."""

from django.urls import include, path, register_converter
from django.urls.converters import PathConverter

from entrypoints.api import account_commands, account_queries, rebuilds, techbank_commands, techbank_queries
from entrypoints.api.account_collection import AccountCollectionApi


class AnyTextConverter(PathConverter):
    """Like <path:>, line breaks too: a lookup by a holder no account can have finds none (204), not no route."""

    regex = r"[\s\S]+"


register_converter(AnyTextConverter, "text")

techbank_api = [
    path("openBankAccount", techbank_commands.OpenBankAccountApi.as_view()),
    path("depositFunds/<str:account_id>", techbank_commands.DepositFundsApi.as_view()),
    path("withdrawFunds/<str:account_id>", techbank_commands.WithdrawFundsApi.as_view()),
    path("closeBankAccount/<str:account_id>", techbank_commands.CloseBankAccountApi.as_view()),
    path("restoreReadDb", techbank_queries.RestoreReadDbApi.as_view()),
    path("bankAccountLookup/", techbank_queries.AllAccountsLookupApi.as_view()),
    path("bankAccountLookup/byId/<str:account_id>", techbank_queries.AccountByIdLookupApi.as_view()),
    path("bankAccountLookup/byHolder/<text:holder>", techbank_queries.AccountsByHolderLookupApi.as_view()),
    path(
        "bankAccountLookup/withBalance/<str:equality_type>/<str:balance>",
        techbank_queries.AccountsWithBalanceLookupApi.as_view(),
    ),
]

resource_api = [
    path("", AccountCollectionApi.as_view(), name="account-collection"),
    path("<str:account_id>/", account_queries.AccountDetailApi.as_view(), name="account-detail"),
    path("<str:account_id>/deposits", account_commands.AccountDepositApi.as_view(), name="account-deposits"),
    path("<str:account_id>/withdrawals", account_commands.AccountWithdrawApi.as_view(), name="account-withdrawals"),
    path("<str:account_id>/close", account_commands.AccountCloseApi.as_view(), name="account-close"),
    path("<str:account_id>/events", account_queries.AccountEventsApi.as_view(), name="account-events"),
    path(
        "<str:account_id>/transactions", account_queries.AccountTransactionsApi.as_view(), name="account-transactions"
    ),
]

rebuild_api = [
    path("", rebuilds.RebuildStartApi.as_view(), name="rebuild-collection"),
    path("<str:rebuild_id>", rebuilds.RebuildDetailApi.as_view(), name="rebuild-detail"),
]

urlpatterns = [
    path("v1/", include(techbank_api)),
    path("accounts/", include(resource_api)),
    path("rebuilds/", include(rebuild_api)),
]
