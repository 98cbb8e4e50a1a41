"""The staff permissions' migrations: the models need none they do not have, and
a database migrated before the read side took its permissions over (the rebuild
permission on `accounts`, the dead-letter grants recorded as an accounts
migration) comes out with every group and user keeping exactly its rights."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from tests.staff import staff_group

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_THE_MOVE = [("accounts", "0003_staff_groups"), ("projections", "0003_rebuild_job")]
OLD_DEAD_LETTER_MIGRATION = ("accounts", "0004_staff_see_dead_letters")
OLD_REBUILD = "accounts.rebuild_read_model"
NEW_REBUILD = "projections.rebuild_read_model"
# What the old accounts 0004 gave each group.
OLD_DEAD_LETTER_GRANTS = {
    "Auditor": ["view_deadletter"],
    "Teller": ["view_deadletter"],
    "Account manager": ["view_deadletter", "handle_deadletter"],
}


def names(permissions) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in permissions}


def rights() -> dict[str, set[str]]:
    """Every group's and every user's own permissions, by "group:NAME" and "user:NAME"."""
    return {
        **{f"group:{g.name}": names(g.permissions.all()) for g in Group.objects.all()},
        **{f"user:{u.username}": names(u.user_permissions.all()) for u in User.objects.all()},
    }


def permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)


@pytest.fixture(autouse=True)
def staff_groups():
    """The groups as a fresh `migrate` leaves them (a transactional test before this one may have flushed them)."""
    for name in OLD_DEAD_LETTER_GRANTS:
        staff_group(name)


@pytest.fixture
def database_before_the_move():
    """The test database taken back to its state before the move, as the old code left it:
    the old accounts 0004 applied (and recorded), then an administrator's own changes."""
    migrate(BEFORE_THE_MOVE)
    for name, codenames in OLD_DEAD_LETTER_GRANTS.items():
        Group.objects.get(name=name).permissions.add(
            *(Permission.objects.get(content_type__app_label="projections", codename=c) for c in codenames)
        )
    recorder = MigrationRecorder(connection)
    recorder.record_applied(*OLD_DEAD_LETTER_MIGRATION)
    # An administrator's changes since: a Teller no longer sees dead letters, a
    # custom group and one user may rebuild, another user only closes accounts.
    Group.objects.get(name="Teller").permissions.remove(permission("projections.view_deadletter"))
    Group.objects.create(name="Night shift").permissions.add(permission(OLD_REBUILD))
    User.objects.create_user(username="ops").user_permissions.add(permission(OLD_REBUILD))
    User.objects.create_user(username="closer").user_permissions.add(permission("accounts.close_account"))
    yield
    recorder.record_unapplied(*OLD_DEAD_LETTER_MIGRATION)  # the other tests' database has no such past
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_the_models_need_no_migration_the_repository_lacks():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_a_database_migrated_before_the_move_keeps_exactly_its_rights(database_before_the_move):
    before = rights()
    assert OLD_REBUILD in before["group:Account manager"]
    expected = {
        holder: {NEW_REBUILD if right == OLD_REBUILD else right for right in held} for holder, held in before.items()
    }

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert rights() == expected
    assert expected["group:Teller"] == {
        "projections.view_accountsummary",
        "projections.view_ledgerentry",
        "eventstore.view_storedeventrecord",
        "accounts.open_account",
        "accounts.move_money",
    }  # the removed dead-letter grant stays removed
    assert {"group:Night shift", "user:ops", "group:Account manager"} == {
        holder for holder, held in rights().items() if NEW_REBUILD in held
    }
    assert not Permission.objects.filter(content_type__app_label="accounts", codename="rebuild_read_model").exists()


def test_migrating_back_before_the_move_gives_the_old_permission_back():
    Group.objects.create(name="Night shift").permissions.add(permission(NEW_REBUILD))
    try:
        migrate(BEFORE_THE_MOVE)
        holders = {g.name for g in Group.objects.filter(permissions=permission(OLD_REBUILD))}
        assert holders == {"Night shift", "Account manager"}
        assert not Permission.objects.filter(content_type__app_label="projections", codename="rebuild_read_model")
        assert not Group.objects.filter(permissions__codename="view_deadletter").exists()
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert {g.name for g in Group.objects.filter(permissions=permission(NEW_REBUILD))} == {
        "Night shift",
        "Account manager",
    }
    assert {g.name for g in Group.objects.filter(permissions__codename="view_deadletter")} == set(
        OLD_DEAD_LETTER_GRANTS
    )
