"""Staff users for tests: Django permissions by name, the migrated groups, token clients."""

import importlib
from types import SimpleNamespace

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import connection
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


def staff_group(name: str) -> Group:
    """A group the data migration made. A transactional test's flush empties the
    tables after it, so it is made again here the same way (test_access.py checks
    that a fresh `migrate` makes them)."""
    if not Group.objects.filter(name=name).exists():
        schema_editor = SimpleNamespace(connection=connection)
        importlib.import_module("accounts.migrations.0003_staff_groups").create_staff_groups(apps, schema_editor)
        importlib.import_module("accounts.migrations.0004_staff_see_dead_letters").add_dead_letter_permissions(
            apps, schema_editor
        )
    return Group.objects.get(name=name)


def token_client(user) -> APIClient:
    """A client that authenticates as a user would: with a DRF token header."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client
