"""The sessions models moved to the charging app; their tables stay (issue 16)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('chargepoints', '0005_schema_violation_frame'),
        ('charging', '0001_sessions_from_chargepoints_and_commands'),
        ('billing', '0003_transaction_moved_to_charging'),
        ('sites', '0002_transaction_moved_to_charging'),
    ]

    operations = [
        # State only: the tables stay where they are (charging's models name them in db_table).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='MeterSample'),
                migrations.DeleteModel(name='ReconciliationItem'),
                migrations.DeleteModel(name='Transaction'),
                migrations.DeleteModel(name='Reservation'),
                migrations.DeleteModel(name='LocalAuthList'),
                migrations.DeleteModel(name='IdTag'),
            ],
        ),
    ]
