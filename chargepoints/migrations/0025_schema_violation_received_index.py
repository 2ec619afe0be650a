"""The message log's hourly prune deletes the schema violations received before its cutoff: without
an index on their receipt (the one on it leads with the charger) each prune read the whole table, a
month of rows with their frames. Built without blocking the gateway's writes (``kernel.online_ddl``)."""

from django.db import migrations, models

from kernel import online_ddl


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY run outside a transaction

    dependencies = [
        ("chargepoints", "0024_charging_rate_units"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="schemaviolation",
                    index=models.Index(fields=["received_at"], name="schema_violation_received"),
                ),
            ],
            database_operations=[
                online_ddl.index_created(
                    "schema_violation_received", "chargepoints_schemaviolation", '("received_at")'
                ),
            ],
        ),
    ]
