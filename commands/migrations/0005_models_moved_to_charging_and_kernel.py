"""A command's API key is kernel.ApiKey now; InstalledChargingProfile moved to charging (same tables)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('commands', '0004_command_request_fingerprint'),
        ('kernel', '0001_api_key_from_csms'),
        ('charging', '0001_sessions_from_chargepoints_and_commands'),
    ]

    operations = [
        # State only: the table stays where it is (db_table), nothing is copied or renamed.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='command',
                    name='api_key',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to='kernel.apikey'),
                ),
                migrations.DeleteModel(
                    name='InstalledChargingProfile',
                ),
            ],
        ),
    ]
