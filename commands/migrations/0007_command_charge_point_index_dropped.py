import django.db.models.deletion
from django.db import migrations, models

from kernel import online_ddl


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY runs outside a transaction
    # The foreign key's own index: ``command_charger_latest`` (0006) leads with the same column.
    # Only the index: Django's ``AlterField`` would drop and re-validate the foreign key too.

    dependencies = [
        ("chargepoints", "0007_handshake_started_at"),
        ("commands", "0006_command_charger_latest"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="command",
                    name="charge_point",
                    field=models.ForeignKey(
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="commands",
                        to="chargepoints.chargepoint",
                    ),
                ),
            ],
            database_operations=[
                online_ddl.index_dropped(
                    "commands_command_charge_point_id_cc224fed", "commands_command", '("charge_point_id")'
                )
            ],
        ),
    ]
