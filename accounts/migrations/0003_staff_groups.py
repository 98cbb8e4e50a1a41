"""The staff groups (README, "Access"). Later changes to them are the administrators' own."""
from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = [
    ("projections", "view_accountsummary"),
    ("projections", "view_ledgerentry"),
    ("eventstore", "view_storedeventrecord"),
]
OPEN_AND_MOVE = [("accounts", "open_account"), ("accounts", "move_money")]
# The rebuild permission is the read side's now: projections/migrations/0005 moves it there.
CLOSE_AND_REBUILD = [("accounts", "close_account"), ("accounts", "rebuild_read_model")]

STAFF_GROUPS = {
    "Auditor": VIEW,
    "Teller": VIEW + OPEN_AND_MOVE,
    "Account manager": VIEW + OPEN_AND_MOVE + CLOSE_AND_REBUILD,
}


def create_staff_groups(apps, schema_editor):
    using = schema_editor.connection.alias
    # Django creates permissions after the last migration; these groups need them now.
    for app_label in {app_label for permissions in STAFF_GROUPS.values() for app_label, _ in permissions}:
        create_permissions(global_apps.get_app_config(app_label), verbosity=0, using=using, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, permissions in STAFF_GROUPS.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(
            *(
                Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)
                for app_label, codename in permissions
            )
        )


def remove_staff_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=STAFF_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_command_permissions"),
        ("projections", "0001_initial"),
        ("eventstore", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_staff_groups, remove_staff_groups)]
