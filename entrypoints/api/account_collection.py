"""/api/accounts/: one route, two sides: GET lists accounts (read side), POST opens one (command side)."""

from entrypoints.api import account_commands, account_queries


class AccountCollectionApi(account_queries.AccountListApi, account_commands.AccountOpenApi):
    """/api/accounts/: GET lists (read side), POST opens (command side)."""

    def get_permissions(self):
        # Each side keeps its own permission: listing needs the view permission, opening open_account.
        side = account_commands.AccountOpenApi if self.request.method == "POST" else account_queries.AccountListApi
        return [permission() for permission in side.permission_classes]
