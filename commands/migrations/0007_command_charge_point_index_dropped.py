import django.db.models.deletion
from django.db import migrations, models

# The foreign key's own index: ``command_charger_latest`` (0006) leads with the same column.
_FOREIGN_KEY_INDEX = "commands_command_charge_point_id_cc224fed"


def _drop_foreign_key_index(apps, schema_editor):
    """``DROP INDEX CONCURRENTLY`` on PostgreSQL (commands go on being recorded), plain elsewhere.
    Only the index: Django's ``AlterField`` would drop and re-validate the foreign key too."""
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{_FOREIGN_KEY_INDEX}"')


def _create_foreign_key_index(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f'CREATE INDEX {concurrently}IF NOT EXISTS "{_FOREIGN_KEY_INDEX}" ON "commands_command" ("charge_point_id")'
    )


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY runs outside a transaction

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
            database_operations=[migrations.RunPython(_drop_foreign_key_index, _create_foreign_key_index)],
        ),
    ]
