"""Staff users for tests: Django permissions by name, the migrated groups, token clients."""

import importlib
from functools import cache
from types import SimpleNamespace

from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import StateApps
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from entrypoints.drf.permissions import CLOSE_ACCOUNT, MOVE_MONEY, OPEN_ACCOUNT, REBUILD_READ_MODEL, VIEW_ACCOUNTS

# Every permission the API checks: what the "Account manager" group has.
ALL_ACCOUNT_PERMISSIONS = (VIEW_ACCOUNTS, OPEN_ACCOUNT, MOVE_MONEY, CLOSE_ACCOUNT, REBUILD_READ_MODEL)


def grant(user, *permissions: str) -> None:
    """Give `user` these Django permissions, each "app_label.codename"."""
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


# The data migrations that make the staff groups and give them their permissions, in order:
# (app label, migration, its forward function).
STAFF_MIGRATIONS = (
    ("accounts", "0003_staff_groups", "create_staff_groups"),
    ("projections", "0004_staff_see_dead_letters", "add_dead_letter_permissions"),
    ("projections", "0005_rebuild_read_model_permission", "move_to_read_side"),
)


@cache
def _models_at(app_label: str, migration: str) -> StateApps:
    """The models as that migration sees them (the rebuild permission was an accounts one at first)."""
    return MigrationLoader(connection).project_state((app_label, migration)).apps


def staff_group(name: str) -> Group:
    """A group the data migrations made. A transactional test's flush empties the
    tables after it, so it is made again here the same way, each migration with
    the models of its time (test_access.py checks that a fresh `migrate` makes them)."""
    if not Group.objects.filter(name=name).exists():
        schema_editor = SimpleNamespace(connection=connection)
        for app_label, migration, forwards in STAFF_MIGRATIONS:
            module = importlib.import_module(f"{app_label}.migrations.{migration}")
            getattr(module, forwards)(_models_at(app_label, migration), schema_editor)
    return Group.objects.get(name=name)


def token_client(user) -> APIClient:
    """A client that authenticates as a user would: with a DRF token header."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client
