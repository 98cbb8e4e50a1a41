from django.contrib import admin
from django.urls import include, path, register_converter
from django.urls.converters import PathConverter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.api import resources as account_commands
from accounts.api import techbank as techbank_commands
from projections.api import rebuilds as read_model_rebuilds
from projections.api import resources as account_queries
from projections.api import techbank as techbank_queries


class AnyTextConverter(PathConverter):
    """Like <path:>, line breaks too: a lookup by a holder no account can have finds none (204), not no route."""

    regex = r"[\s\S]+"


register_converter(AnyTextConverter, "text")


class AccountCollectionApi(account_queries.AccountListApi, account_commands.AccountOpenApi):
    """/api/accounts/: GET lists (read side), POST opens (command side)."""

    def get_permissions(self):
        # Each side keeps its own permission: listing needs the view permission, opening open_account.
        side = account_commands.AccountOpenApi if self.request.method == "POST" else account_queries.AccountListApi
        return [permission() for permission in side.permission_classes]


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
    path("", read_model_rebuilds.RebuildStartApi.as_view(), name="rebuild-collection"),
    path("<str:rebuild_id>", read_model_rebuilds.RebuildDetailApi.as_view(), name="rebuild-detail"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(techbank_api)),
    path("api/accounts/", include(resource_api)),
    path("api/rebuilds/", include(rebuild_api)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api-auth/", include("rest_framework.urls")),
]

handler400 = "techbank_site.api.errors.bad_request_view"
handler404 = "techbank_site.api.errors.not_found_view"
handler500 = "techbank_site.api.errors.server_error_view"
