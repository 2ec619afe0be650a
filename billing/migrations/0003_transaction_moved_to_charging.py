"""A billing record's transaction is charging.Transaction now (the same table)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0002_initial'),
        ('charging', '0001_sessions_from_chargepoints_and_commands'),
    ]

    operations = [
        # State only: the table stays where it is (db_table), nothing is copied or renamed.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='billingrecord',
                    name='transaction',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='billing_record', to='charging.transaction'),
                ),
            ],
        ),
    ]
