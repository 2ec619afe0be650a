"""The API key model moved to the kernel app; its table csms_apikey stays (issue 16)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('csms', '0002_api_key_scope_expiry_last_used'),
        ('commands', '0005_models_moved_to_charging_and_kernel'),
    ]

    operations = [
        # State only: the table stays where it is (db_table), nothing is copied or renamed.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(
                    name='ApiKey',
                ),
            ],
        ),
    ]
