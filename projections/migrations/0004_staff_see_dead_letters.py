"""Staff see dead letters (poison events) in the admin; account managers may retry or resolve them.

This was accounts/migrations/0004_staff_see_dead_letters.py; it belongs to the
read side. A database where that one ran already has these grants, and an
administrator may have changed them since: there this does nothing, either way,
so the groups keep exactly the permissions they have.
"""
from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.db.migrations.recorder import MigrationRecorder

SEE_DEAD_LETTERS = [("projections", "view_deadletter")]
HANDLE_DEAD_LETTERS = [("projections", "handle_deadletter")]

ADDED = {
    "Auditor": SEE_DEAD_LETTERS,
    "Teller": SEE_DEAD_LETTERS,
    "Account manager": SEE_DEAD_LETTERS + HANDLE_DEAD_LETTERS,
}

# The same grants under their old name, recorded as applied on databases migrated before the move.
GRANTED_BEFORE_AS = ("accounts", "0004_staff_see_dead_letters")


def _granted_before(connection):
    return GRANTED_BEFORE_AS in MigrationRecorder(connection).applied_migrations()


def _permissions(apps, using, pairs):
    Permission = apps.get_model("auth", "Permission")
    return [
        Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in pairs
    ]


def add_dead_letter_permissions(apps, schema_editor):
    if _granted_before(schema_editor.connection):
        return
    using = schema_editor.connection.alias
    # Django creates permissions after the last migration; these groups need them now.
    create_permissions(global_apps.get_app_config("projections"), verbosity=0, using=using, apps=apps)
    Group = apps.get_model("auth", "Group")
    for name, pairs in ADDED.items():
        group = Group.objects.using(using).filter(name=name).first()
        if group is not None:  # an administrator may have removed it
            group.permissions.add(*_permissions(apps, using, pairs))


def remove_dead_letter_permissions(apps, schema_editor):
    if _granted_before(schema_editor.connection):
        return  # forwards did nothing there, so backwards does nothing either
    using = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    for name, pairs in ADDED.items():
        group = Group.objects.using(using).filter(name=name).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, using, pairs))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_staff_groups"),
        ("projections", "0003_rebuild_job"),
    ]

    operations = [migrations.RunPython(add_dead_letter_permissions, remove_dead_letter_permissions)]
