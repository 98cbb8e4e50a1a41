"""The rebuild permission leaves the command side: it is projections.rebuild_read_model now.

State only (the model has no table). projections/migrations/0005 hands the old
permission's holders the new one and deletes the old row. There is no 0004 any
more: accounts 0004 (staff see dead letters) moved to projections/migrations/0004.
"""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_staff_groups'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='accountcommandpermissions',
            options={'default_permissions': (), 'managed': False, 'permissions': [('open_account', 'Can open accounts'), ('move_money', 'Can deposit and withdraw funds'), ('close_account', 'Can close accounts')]},
        ),
    ]
