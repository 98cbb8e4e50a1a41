"""Rebuilding the read model needs projections.rebuild_read_model, the read side's own permission.

It was accounts.rebuild_read_model. Every group and every user that had the old
one gets the new one, and the old row goes, so nobody gains or loses a right.
"""
from django.apps import apps as global_apps
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations

CODENAME = "rebuild_read_model"
NAME = "Can rebuild the read model"
OLD = ("accounts", "accountcommandpermissions")
NEW = ("projections", "rebuildjob")


def _permission(apps, using, app_label, model):
    Permission = apps.get_model("auth", "Permission")
    return (
        Permission.objects.using(using)
        .filter(content_type__app_label=app_label, content_type__model=model, codename=CODENAME)
        .first()
    )


def _hand_over(apps, using, old, new):
    """Give `new` to every group and user that has `old`, then delete `old` (and with it their grants of it)."""
    Group = apps.get_model("auth", "Group")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    for field in (Group._meta.get_field("permissions"), User._meta.get_field("user_permissions")):
        through = field.remote_field.through
        holder, permission = field.m2m_field_name(), field.m2m_reverse_field_name()
        holders = through.objects.using(using).filter(**{permission: old}).values_list(holder, flat=True)
        through.objects.using(using).bulk_create(
            [through(**{f"{holder}_id": holder_id, permission: new}) for holder_id in holders],
            ignore_conflicts=True,
        )
    old.delete()


def move_to_read_side(apps, schema_editor):
    using = schema_editor.connection.alias
    # Django creates permissions after the last migration; the new one is needed now.
    create_permissions(global_apps.get_app_config("projections"), verbosity=0, using=using, apps=apps)
    old = _permission(apps, using, *OLD)
    if old is not None:
        _hand_over(apps, using, old, _permission(apps, using, *NEW))


def move_back(apps, schema_editor):
    using = schema_editor.connection.alias
    new = _permission(apps, using, *NEW)
    if new is None:
        return
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    app_label, model = OLD
    content_type, _ = ContentType.objects.using(using).get_or_create(app_label=app_label, model=model)
    old, _ = Permission.objects.using(using).get_or_create(
        content_type=content_type, codename=CODENAME, defaults={"name": NAME}
    )
    _hand_over(apps, using, new, old)


class Migration(migrations.Migration):

    dependencies = [
        ('projections', '0004_staff_see_dead_letters'),
        ('accounts', '0005_rebuild_permission_leaves'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='rebuildjob',
            options={'ordering': ['-started_at'], 'permissions': [('rebuild_read_model', 'Can rebuild the read model')], 'verbose_name': 'read model rebuild'},
        ),
        migrations.RunPython(move_to_read_side, move_back),
    ]
