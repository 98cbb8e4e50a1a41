"""Who may call what: every account endpoint needs one Django permission.

Reading accounts needs `projections.view_accountsummary` and rebuilding the read
model `projections.rebuild_read_model` (on `projections.RebuildJob`); each command
needs its own permission on `accounts.AccountCommandPermissions`. Staff get them
through groups (README, "Access"). Anonymous requests stay 401: IsAuthenticated
comes first, and token authentication answers it with WWW-Authenticate.
"""

from rest_framework.permissions import BasePermission, IsAuthenticated

VIEW_ACCOUNTS = "projections.view_accountsummary"
OPEN_ACCOUNT = "accounts.open_account"
MOVE_MONEY = "accounts.move_money"
CLOSE_ACCOUNT = "accounts.close_account"
REBUILD_READ_MODEL = "projections.rebuild_read_model"

_ACTIONS = {
    VIEW_ACCOUNTS: "look up accounts",
    OPEN_ACCOUNT: "open accounts",
    MOVE_MONEY: "deposit or withdraw funds",
    CLOSE_ACCOUNT: "close accounts",
    REBUILD_READ_MODEL: "rebuild the read model",
}


class HasDjangoPermission(BasePermission):
    """Lets a request through if its user has the Django permission `perm` ("app_label.codename").

    DRF calls each entry of a view's permission_classes to get a checker; calling
    an instance returns it, as DRF's own `IsA & IsB` operands do, so
    `HasDjangoPermission("accounts.move_money")` can stand in that list.
    """

    def __init__(self, perm: str):
        self.perm = perm
        self.message = (
            f"You may not {_ACTIONS.get(perm, 'do this')}: that needs the permission {perm}. "
            "Ask an administrator to add you to a group that has it."
        )

    def __call__(self) -> "HasDjangoPermission":
        return self

    def has_permission(self, request, view) -> bool:
        return request.user.has_perm(self.perm)

    def __repr__(self) -> str:
        return f"HasDjangoPermission({self.perm!r})"


def requires(perm: str) -> list:
    """permission_classes for a view that needs `perm`: a signed-in user (else 401) who has it (else 403)."""
    return [IsAuthenticated, HasDjangoPermission(perm)]
